"""The napari Shapes layer that holds a slide's regions, and edits made to it directly.

Split out of :mod:`omicslens._napari.regions_widget` so that the Regions dock keeps to
statistics and wiring: this module creates the layer in the slide's level-0 pixels with
the dock's look (cyan outlines, names beside each region), says where its autosave lives,
adds regions without duplicating those already drawn, and renames one. Plain functions of
the layer; the dock decides when to call them and what to refresh after.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from omicslens._napari.region_edits import ShapeRecord, add_shapes, snapshot
from omicslens.core.regions import Region


def add_regions_layer(viewer: Any, slide_layer: Any, slide: Any) -> Any:
    """A new, empty "regions" Shapes layer over ``slide_layer`` (data in level-0 pixels)."""
    shapes = viewer.add_shapes(
        name="regions",
        scale=tuple(slide_layer.scale[-2:]),
        units=("um", "um"),
        edge_color="cyan",
        face_color=[0, 1, 1, 0.1],
    )
    # napari draws shape edges in data units (level-0 pixels); ~0.7 % of the slide
    # width keeps them visible when the whole slide is on screen
    width = slide.dimensions[0] if slide is not None else 1000
    shapes.current_edge_width = max(2.0, width / 150)
    # names on the canvas, beside each region
    shapes.text = {"string": "{name}", "color": "cyan", "size": 11, "anchor": "upper_left"}
    shapes.features = {"name": [], "id": []}
    return shapes


def autosave_path_of(slide: Any) -> Path | None:
    """Where the regions of ``slide`` are saved as they change (None: no slide file)."""
    from omicslens.core.regions import autosave_path
    from omicslens.core.settings import config_dir

    slide_path = getattr(slide, "path", None)
    return autosave_path(slide_path, config_dir()) if slide_path else None


def add_regions(shapes: Any, regions: list[Region]) -> int:
    """Add ``regions`` to the layer, skipping those already in it (same name and
    outline). Returns how many were added."""
    present = {(r.name, r.vertices) for r in snapshot(shapes)}
    records = []
    for region in regions:
        vertices = tuple(map(tuple, np.round(region.vertices[:, ::-1], 3).tolist()))
        if (region.name, vertices) in present:
            continue
        present.add((region.name, vertices))
        records.append(ShapeRecord(region.name, region.shape_type, vertices, region.id))
    if records:
        add_shapes(shapes, tuple(records))
    return len(records)


def rename_shape(shapes: Any, names: list[str], index: int, name: str) -> bool:
    """Give the ``index``-th shape (of those named ``names``) the name ``name``, on the
    canvas too. False, and nothing changed, for a bad index or an empty or same name."""
    new = name.strip()
    if not 0 <= index < len(names) or not new or new == names[index]:
        return False
    names = list(names)
    names[index] = new
    features = shapes.features.copy()
    features["name"] = names
    shapes.features = features
    shapes.refresh_text()
    return True
