"""Per-user settings that outlive a session, starting with remembered resolutions.

When a slide states no resolution, napari asks the user once; the answer is stored here
keyed by the slide's content fingerprint, so renaming or moving the file keeps it. The
folder is ``$OMICSLENS_CONFIG_DIR`` if set, else the platform's user config folder.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from platformdirs import user_config_dir

from omicslens.core.atomic import write_text_atomic
from omicslens.core.fingerprint import slide_fingerprint
from omicslens.core.resolution import override

_RESOLUTIONS_FILE = "resolutions.json"


def config_dir() -> Path:
    configured = os.environ.get("OMICSLENS_CONFIG_DIR")
    return Path(configured) if configured else Path(user_config_dir("omicslens", appauthor=False))


def _load(file: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def remembered_mpp(slide_path: str | os.PathLike[str]) -> float | None:
    """The resolution a user gave earlier for this slide's content, if any."""
    entry = _load(config_dir() / _RESOLUTIONS_FILE).get(slide_fingerprint(slide_path))
    if not entry:
        return None
    value = entry.get("mpp")
    return float(value) if isinstance(value, (int, float)) else None


def remember_mpp(slide_path: str | os.PathLike[str], mpp: float) -> None:
    """Store ``mpp`` for this slide's content (validated; atomic write)."""
    checked = override(mpp).mpp
    file = config_dir() / _RESOLUTIONS_FILE
    data = _load(file)
    data[slide_fingerprint(slide_path)] = {
        "mpp": checked,
        "last_path": str(Path(slide_path).resolve()),
    }
    write_text_atomic(file, json.dumps(data, indent=2, sort_keys=True))


def cache_dir() -> Path:
    """Where predictions are cached: ``$OMICSLENS_CACHE_DIR`` or the user cache folder."""
    from platformdirs import user_cache_dir

    configured = os.environ.get("OMICSLENS_CACHE_DIR")
    return Path(configured) if configured else Path(user_cache_dir("omicslens", appauthor=False))


def bytes_from_environment(name: str, default: float, unit: int = 2**20) -> int:
    """A size given in ``unit`` (MiB by default) by the environment variable ``name``, in
    bytes; ``default`` (in ``unit``) when unset, unreadable, negative or not finite.
    Zero is allowed (it switches caches off)."""
    text = os.environ.get(name, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        value = default
    if not math.isfinite(value) or value < 0:
        value = default
    return int(value * unit)
