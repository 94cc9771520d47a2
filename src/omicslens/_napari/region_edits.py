"""Undo, redo and autosave of the regions drawn in a napari Shapes layer.

Why here and not in napari: napari's Shapes layer has no undo, and a region deleted by
a slip of the Delete key is an afternoon's annotation gone. Every settled change of the
layer (a shape drawn, moved, deleted, renamed) is recorded as a :data:`Snapshot` in an
:class:`~omicslens.core.history.EditHistory`, and autosaved with rotating backups
(:func:`~omicslens.core.backups.write_text_keeping_backups`): deleting every region
writes an empty file, but the regions it replaced stay in ``*.backup-1.geojson``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.backups import write_text_keeping_backups
from omicslens.core.history import EditHistory
from omicslens.core.regions import Region, regions_to_geojson

#: napari shape types OmicsLens keeps as they are (everything else becomes a polygon)
KEPT_SHAPES = ("polygon", "rectangle", "ellipse")


@dataclass(frozen=True)
class ShapeRecord:
    """One shape as the layer holds it: (y, x) vertices in level-0 pixels."""

    name: str
    kind: str
    vertices: tuple[tuple[float, float], ...]
    id: str = ""  # the QuPath object id, kept across edits (new shapes get one on settle)


Snapshot = tuple[ShapeRecord, ...]


def layer_names(layer: Any) -> list[str]:
    """The region names of the layer's features ("" where none is given)."""
    return _column(layer, "name")


def _column(layer: Any, name: str) -> list[str]:
    values = list(layer.features[name]) if name in layer.features else []
    return [
        str(values[i]) if i < len(values) and str(values[i] or "") not in ("", "nan") else ""
        for i in range(len(layer.data))
    ]


def complete_features(layer: Any) -> None:
    """Give shapes drawn since the last call a name (``region N``, drawn on the canvas)
    and an id of their own (a stable QuPath id, and an autosave that changes only when a
    region does)."""
    ids, names = _column(layer, "id"), layer_names(layer)
    if all(ids) and all(names):
        return
    layer.features = {
        "name": [n or f"region {i + 1}" for i, n in enumerate(names)],
        "id": [i or str(uuid.uuid4()) for i in ids],
    }
    layer.refresh_text()


def snapshot(layer: Any) -> Snapshot:
    names = layer_names(layer)
    ids = _column(layer, "id")
    return tuple(
        ShapeRecord(
            names[i] or f"region {i + 1}",
            str(kind),
            tuple(map(tuple, np.round(np.asarray(data, dtype=float), 3).tolist())),
            ids[i],
        )
        for i, (data, kind) in enumerate(zip(layer.data, layer.shape_type, strict=True))
    )


def regions_of(records: Snapshot) -> list[Region]:
    """Regions (x, y level-0 pixels) of a snapshot."""
    out = []
    for r in records:
        extra = {"id": r.id} if r.id else {}
        out.append(
            Region(r.name, np.asarray(r.vertices, dtype=float)[:, ::-1], shape_type=r.kind, **extra)
        )
    return out


def add_shapes(layer: Any, records: Snapshot) -> None:
    """Append ``records`` to the layer, names included (one data event per shape)."""
    names, ids = layer_names(layer), _column(layer, "id")
    for record in records:
        kind = record.kind if record.kind in KEPT_SHAPES else "polygon"
        layer.add(np.asarray(record.vertices, dtype=float), shape_type=kind)
    layer.features = {
        "name": [*names, *[r.name for r in records]],
        "id": [*ids, *[r.id or str(uuid.uuid4()) for r in records]],
    }


def replace_shapes(layer: Any, records: Snapshot) -> None:
    """Make the layer hold exactly ``records``."""
    if len(layer.data):
        layer.selected_data = set(range(len(layer.data)))
        layer.remove_selected()
    layer.features = {"name": [], "id": []}
    add_shapes(layer, records)


class RegionEdits:
    """History and autosave of one Shapes layer of regions."""

    def __init__(self, layer: Any, autosave: Path | None) -> None:
        self.layer = layer
        self.autosave = autosave
        self.history: EditHistory[Snapshot] = EditHistory(snapshot(layer))
        self._applying = False  # an undo/redo being applied is not a new edit

    def settle(self) -> bool:
        """Record the layer's current state (after an edit) and autosave it; whether it
        was a change."""
        if self._applying:
            return False
        complete_features(self.layer)
        changed = self.history.record(snapshot(self.layer))
        self.save()
        return changed

    def undo(self) -> bool:
        return self._apply(self.history.undo())

    def redo(self) -> bool:
        return self._apply(self.history.redo())

    def _apply(self, records: Snapshot | None) -> bool:
        if records is None:
            return False
        self._applying = True
        try:
            replace_shapes(self.layer, records)
        finally:
            self._applying = False
        self.save()
        return True

    def save(self) -> None:
        """Autosave (atomic, previous content kept as a backup); an empty layer creates no
        file, but empties an existing one (its regions stay in the backup)."""
        if self.autosave is None:
            return
        regions = regions_of(snapshot(self.layer))
        if not regions and not self.autosave.exists():
            return
        text = json.dumps(regions_to_geojson(regions), indent=1, allow_nan=False)
        write_text_keeping_backups(self.autosave, text)
