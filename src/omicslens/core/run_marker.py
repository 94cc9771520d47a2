"""Which outputs in a folder belong to a run of ours that never finished.

A job that writes several files (``predict``: tiles.csv, tiles.h5ad, ...; ``smear``:
cells.csv, cells.geojson, ...) can be killed between two of them. Each file is written
atomically, so none is ever half there, but the folder then holds a *mix*: some files of
the new run, some missing. The user's rule "never overwrite a finished result without
--force" must not block the rerun that finishes such a folder, so:

- :func:`begin_run` writes a marker (``.omicslens-running.json``) before the first output;
- :func:`end_run` removes it after the last one (after ``done.json``, where there is one);
- while the marker is there, the outputs beside it are ours to replace
  (:func:`unfinished_run`), and the temporaries our killed atomic writers left
  (``.<name>.<random>.tmp`` files and ``.<name>.<random>/`` folders) are removed by
  :func:`clean_stale_temporaries`.

A finished run's outputs (no marker) are never replaced without ``force``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omicslens.core.atomic import write_text_atomic

RUNNING_FILE = ".omicslens-running.json"


def unfinished_run(folder: str | Path, done_file: str | None = None) -> bool:
    """An earlier run of ours wrote (some) outputs in ``folder`` and never finished.

    ``done_file``: the job's own completion record (``done.json`` for ``predict``);
    when it exists, the run finished, whatever the marker says."""
    folder = Path(folder)
    if not (folder / RUNNING_FILE).is_file():
        return False
    return done_file is None or not (folder / done_file).is_file()


def begin_run(folder: str | Path, record: dict[str, Any]) -> Path:
    """Mark ``folder`` as being written by this run (before its first output)."""
    return write_text_atomic(Path(folder) / RUNNING_FILE, json.dumps(record, default=str))


def end_run(folder: str | Path) -> None:
    """This run's outputs are complete (call after the last one is written)."""
    (Path(folder) / RUNNING_FILE).unlink(missing_ok=True)


def clean_stale_temporaries(folder: str | Path, names: Iterable[str]) -> int:
    """Remove what killed atomic writers left for the outputs ``names``; returns how many.

    Only our own temporary names are matched (``.<name>.<anything>``), never a user file;
    the marker's own temporaries are always included.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for name in (*names, RUNNING_FILE):
        for leftover in folder.glob(f".{name}.*"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed += 1
    return removed
