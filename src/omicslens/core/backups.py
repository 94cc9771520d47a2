"""Autosave that never loses an edit: rotate the previous file into numbered backups.

An autosave overwrites the same file on every change, so one bad change (the user
deletes every region, a bug writes an empty list) would otherwise destroy the earlier
work with no way back. Before replacing a file whose content changes, the previous
content moves to ``<stem>.backup-1<suffix>`` and older backups shift one number up
(``backup-1`` is the newest); the oldest beyond ``keep`` is dropped. Writing the same
content again does nothing, so an idle autosave timer does not push real backups out.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from omicslens.core.atomic import write_bytes_atomic, write_text_atomic
from omicslens.core.errors import OutputWriteError

#: how many earlier versions of an autosaved file are kept beside it
KEEP_BACKUPS = 5


def backup_path(path: str | os.PathLike[str], n: int) -> Path:
    """Backup number ``n`` (1 = newest) of ``path``: ``abc.geojson`` ->
    ``abc.backup-1.geojson``. Only the last suffix moves behind the number
    (``x.omicslens.json`` -> ``x.omicslens.backup-1.json``), so the backup keeps the
    extension that tells programs how to open it."""
    if n < 1:
        raise ValueError(f"backup number must be 1 or more, not {n}")
    target = Path(path)
    return target.with_name(f"{target.stem}.backup-{n}{target.suffix}")


def _backup_number(path: Path, candidate: Path) -> int | None:
    pattern = rf"{re.escape(path.stem)}\.backup-([1-9][0-9]*){re.escape(path.suffix)}"
    match = re.fullmatch(pattern, candidate.name)
    return int(match.group(1)) if match else None


def backup_paths(path: str | os.PathLike[str]) -> list[Path]:
    """The backups of ``path`` that exist, newest (``backup-1``) first."""
    target = Path(path)
    try:
        candidates = list(target.parent.iterdir())
    except OSError:
        return []
    numbered: list[tuple[int, Path]] = []
    for candidate in candidates:
        number = _backup_number(target, candidate)
        if number is not None and candidate.is_file():
            numbered.append((number, candidate))
    return [candidate for _, candidate in sorted(numbered)]


def _rotate(target: Path, previous: bytes, keep: int) -> None:
    """Shift backups one number up (the one at ``keep`` is overwritten, so dropped) and
    store ``previous`` as backup 1. Backup 1 is written as a copy rather than renaming
    ``target`` away, so ``target`` exists at every moment, even if we crash here."""
    for n in range(keep - 1, 0, -1):
        source = backup_path(target, n)
        if source.exists():
            try:
                os.replace(source, backup_path(target, n + 1))
            except OSError as error:
                raise OutputWriteError(backup_path(target, n + 1), error) from error
    write_bytes_atomic(backup_path(target, 1), previous)


def write_text_keeping_backups(
    path: str | os.PathLike[str], text: str, keep: int = KEEP_BACKUPS
) -> Path:
    """Write ``text`` to ``path`` atomically, keeping up to ``keep`` earlier versions.

    Why: deleting all regions autosaves an empty file; that must not destroy the previous
    autosave, so the user's earlier work stays in backup 1. When ``path`` exists and its
    content differs from ``text``, backups rotate (``keep-1 -> keep``, ..., ``1 -> 2``) and
    the old content becomes backup 1; then ``text`` is written. Identical content: no
    rotation and no write. The first write creates no backup. Parent folders are created.
    A system failure is an :class:`OutputWriteError` naming the file. Returns ``path``.
    """
    if keep < 0:
        raise ValueError(f"keep must be 0 or more, not {keep}")
    target = Path(path)
    data = text.encode("utf-8")
    try:
        previous: bytes | None = target.read_bytes()
    except FileNotFoundError:
        previous = None
    except OSError as error:
        raise OutputWriteError(target, error) from error
    if previous == data:
        return target
    if previous is not None and keep > 0:
        _rotate(target, previous, keep)
    write_text_atomic(target, text)
    return target
