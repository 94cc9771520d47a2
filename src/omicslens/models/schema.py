"""Check a config against WSInfer's own JSON schema, so our bundles stay WSInfer-compatible.

The schema ships with ``wsinfer-zoo`` (a test/dev dependency); we read it from that
package rather than copying it, so a schema change upstream shows up in our tests.
OmicsLens' own validation (:mod:`omicslens.models.config`) is stricter; this check only
answers "would WSInfer accept this config.json?".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any


def wsinfer_schema_path() -> Path | None:
    """Path of ``model-config.schema.json`` inside ``wsinfer_zoo``, or None if not installed."""
    try:
        files = resources.files("wsinfer_zoo")
    except ModuleNotFoundError:
        return None
    candidate = Path(str(files.joinpath("schemas", "model-config.schema.json")))
    return candidate if candidate.is_file() else None


def validate_against_wsinfer_schema(config: Mapping[str, Any]) -> list[str] | None:
    """Problems WSInfer's schema finds in ``config`` (empty list: compatible).

    Returns None when the schema is unavailable (``wsinfer-zoo`` not installed): "not
    checked" must not read as "compatible".
    """
    path = wsinfer_schema_path()
    if path is None:
        return None
    import jsonschema

    schema = json.loads(path.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema)
    problems = []
    for error in sorted(validator.iter_errors(dict(config)), key=lambda e: list(e.path)):
        where = _json_path(error.absolute_path) or "<root>"
        problems.append(f"{where}: {error.message}")
    return problems


def _json_path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
