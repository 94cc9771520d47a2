"""A reviewer's smear corrections, autosaved the moment they are made.

A hematologist may re-class dozens of cells before exporting; a crash (or a killed
napari) must not lose that work. Every correction is therefore written at once to a
small JSON file per image, under the per-user config folder (``$OMICSLENS_CONFIG_DIR``
if set, see :func:`omicslens.core.settings.config_dir`):

``<config>/smear-corrections/<image name>.<path key>.omicslens-corrections.json``

named like the regions autosave (:func:`omicslens.core.regions.autosave_path`), with a
short hash of the image's resolved path so two ``slide.tif`` in different folders do
not share one file. Each write keeps the previous versions as numbered backups
(:func:`omicslens.core.backups.write_text_keeping_backups`).

The file holds the image path, its content fingerprint
(:func:`omicslens.core.fingerprint.slide_fingerprint`), the typing model (name and
hash of its config and weights, which pins the exact version), and per corrected cell
its id, its centre (x, y in level-0 pixels) and the class the reviewer gave.

When the same image is analysed again, :func:`apply_corrections` re-applies a stored
correction only to a cell whose id *and* centre (within :data:`CENTRE_TOLERANCE_PX`)
match, and nothing at all when the image's content changed or another model typed it:
a class chosen for one cell must never land on another.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omicslens.core.backups import write_text_keeping_backups
from omicslens.core.fingerprint import slide_fingerprint
from omicslens.core.settings import config_dir
from omicslens.hemato.errors import HematoError

if TYPE_CHECKING:
    from omicslens.hemato.smear import SmearAnalysis

__all__ = [
    "CENTRE_TOLERANCE_PX",
    "Restored",
    "ReviewStoreError",
    "StoredCorrection",
    "StoredCorrections",
    "apply_corrections",
    "corrections_path",
    "load_corrections",
    "save_corrections",
]

KIND = "omicslens-smear-corrections"
FORMAT_VERSION = 1
STORE_FOLDER = "smear-corrections"
#: a stored correction applies to a new cell only if their centres are this close
CENTRE_TOLERANCE_PX = 2.0


class ReviewStoreError(HematoError, ValueError):
    """A corrections file exists but cannot be read (damaged, not ours, unreadable)."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class StoredCorrection:
    """One reviewer decision: the cell (id and level-0 centre) and its new class."""

    cell_id: int
    centre_x: float
    centre_y: float
    new_class: str


@dataclass
class StoredCorrections:
    """A corrections file as read back (``file`` is where it was read from)."""

    file: Path
    image: Path
    fingerprint: str
    model_name: str
    model_hash: str
    corrections: list[StoredCorrection] = field(default_factory=list)


@dataclass(frozen=True)
class Restored:
    """What :func:`apply_corrections` did: how many applied, and why others did not."""

    applied: int
    stored: int
    reason: str = ""  # empty when every stored correction found its cell

    @property
    def skipped(self) -> int:
        return self.stored - self.applied


def corrections_path(image: str | os.PathLike[str]) -> Path:
    """Where the corrections of ``image`` are autosaved (under the config folder)."""
    resolved = Path(image).resolve()
    key = hashlib.sha256(str(resolved).encode("utf-8")).hexdigest()[:12]
    return config_dir() / STORE_FOLDER / f"{resolved.name}.{key}.omicslens-corrections.json"


def save_corrections(analysis: SmearAnalysis, file: Path | None = None) -> Path:
    """Write every correction of ``analysis`` (atomically, keeping backups); returns the
    file. A system failure is an :class:`~omicslens.core.errors.OutputWriteError`."""
    target = corrections_path(analysis.path) if file is None else Path(file)
    cells = {cell.id: cell for cell in analysis.cells}
    rows: list[dict[str, Any]] = []
    for cell_id, new_class in sorted(analysis.corrections.items()):
        cell = cells.get(int(cell_id))
        if cell is None:  # not a cell of this analysis: nothing to anchor it to
            continue
        rows.append(
            {
                "id": int(cell_id),
                "centre_x": round(float(cell.centre_x), 3),
                "centre_y": round(float(cell.centre_y), 3),
                "class": str(new_class),
            }
        )
    fingerprint = slide_fingerprint(analysis.path)
    model = (analysis.types.model_name, analysis.types.model_hash)
    rows += _kept_from(target, fingerprint, model, cells, {row["id"] for row in rows})
    document = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "image": str(Path(analysis.path).resolve()),
        "fingerprint": fingerprint,
        "typing_model": {"name": model[0], "hash": model[1]},
        "corrections": rows,
    }
    return write_text_keeping_backups(target, json.dumps(document, indent=2) + "\n")


def _kept_from(
    target: Path,
    fingerprint: str,
    model: tuple[str, str],
    cells: dict[int, Any],
    saved_ids: set[int],
) -> list[dict[str, Any]]:
    """What must survive this save of the store already at ``target``.

    Never drop a reviewer's decision: stored corrections whose cell this analysis does
    not hold (not found again) stay in the file. A store made on another image content
    or another typing model is moved aside to ``*.superseded-<time>.json`` (not rotated
    away with the backups) before the new one replaces it.
    """
    try:
        stored = load_corrections(target, file=target)
    except ReviewStoreError:
        stored = None  # unreadable: the backups rotation keeps it as backup 1
    if stored is None:
        return []
    if (stored.fingerprint, (stored.model_name, stored.model_hash)) != (fingerprint, model):
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = target.with_name(target.name.replace(".json", f".superseded-{stamp}.json"))
        write_text_keeping_backups(aside, target.read_text(encoding="utf-8"))
        return []
    kept = []
    for row in stored.corrections:
        cell = cells.get(row.cell_id)
        found = cell is not None and (
            math.hypot(cell.centre_x - row.centre_x, cell.centre_y - row.centre_y)
            <= CENTRE_TOLERANCE_PX
        )
        if not found and row.cell_id not in saved_ids:
            kept.append(
                {
                    "id": row.cell_id,
                    "centre_x": row.centre_x,
                    "centre_y": row.centre_y,
                    "class": row.new_class,
                }
            )
    return kept


def load_corrections(
    image: str | os.PathLike[str], file: Path | None = None
) -> StoredCorrections | None:
    """The stored corrections of ``image``; None when there are none. A file that is
    there but cannot be read is a :class:`ReviewStoreError` naming it."""
    source = corrections_path(image) if file is None else Path(file)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise ReviewStoreError(source, f"cannot read the saved corrections ({error})") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReviewStoreError(
            source, f"the saved corrections are not valid JSON ({error})"
        ) from error
    return _parse(source, data)


def _parse(source: Path, data: Any) -> StoredCorrections:
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ReviewStoreError(source, f"not an OmicsLens corrections file (kind {KIND!r})")
    try:
        model = data["typing_model"]
        corrections = [
            StoredCorrection(
                cell_id=int(row["id"]),
                centre_x=float(row["centre_x"]),
                centre_y=float(row["centre_y"]),
                new_class=str(row["class"]),
            )
            for row in data["corrections"]
        ]
        return StoredCorrections(
            file=source,
            image=Path(str(data["image"])),
            fingerprint=str(data["fingerprint"]),
            model_name=str(model["name"]),
            model_hash=str(model["hash"]),
            corrections=corrections,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ReviewStoreError(
            source, f"the saved corrections are malformed ({error!r})"
        ) from error


def apply_corrections(analysis: SmearAnalysis, stored: StoredCorrections) -> Restored:
    """Re-apply ``stored`` to a new ``analysis`` of the same image and model: only to
    cells whose id and centre (within 2 px) match. A changed image or another typing
    model applies nothing; :attr:`Restored.reason` says why."""
    total = len(stored.corrections)
    if slide_fingerprint(analysis.path) != stored.fingerprint:
        return Restored(0, total, "the image changed since they were made")
    if (stored.model_name, stored.model_hash) != (
        analysis.types.model_name,
        analysis.types.model_hash,
    ):
        return Restored(
            0, total, f"they were made on cells typed by another model ({stored.model_name})"
        )
    applied = match_corrections(analysis, stored.corrections)
    reason = "" if applied == total else "the cells were not found again at the same place"
    return Restored(applied, total, reason)


def match_corrections(analysis: SmearAnalysis, corrections: Iterable[StoredCorrection]) -> int:
    """Set each correction on the cell with its id and centre (within 2 px); return how
    many found their cell. Detection is deterministic, so a cell found again has the same
    id at the same place; a cell that moved is another cell and gets nothing. Sessions
    and the autosave both restore through here."""
    cells = {cell.id: cell for cell in analysis.cells}
    applied = 0
    for correction in corrections:
        cell = cells.get(correction.cell_id)
        if cell is None:
            continue
        dx, dy = cell.centre_x - correction.centre_x, cell.centre_y - correction.centre_y
        if math.hypot(dx, dy) <= CENTRE_TOLERANCE_PX:
            analysis.corrections[cell.id] = correction.new_class
            applied += 1
    return applied
