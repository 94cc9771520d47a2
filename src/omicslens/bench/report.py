"""How every benchmark hands over its results: optional JSON and Markdown files, then
the Markdown on stdout (ready to paste into docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from omicslens.core.atomic import write_text_atomic


def machine_facts() -> dict[str, Any]:
    """Where a figure was measured, recorded next to it."""
    return {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def publish(
    markdown: str, payload: dict[str, Any], json_path: Path | None, markdown_path: Path | None
) -> None:
    """Write ``payload`` (plus :func:`machine_facts`) and ``markdown`` where asked, atomically,
    and print the Markdown."""
    if json_path:
        write_text_atomic(json_path, json.dumps({**payload, **machine_facts()}, indent=2))
    if markdown_path:
        write_text_atomic(markdown_path, markdown)
    print(markdown)
