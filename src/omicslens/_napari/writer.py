"""napari writer contribution: a Shapes layer as QuPath GeoJSON annotations.

QuPath wants level-0 pixels of the slide. A Shapes layer's data are in its own data
coordinates: level-0 pixels for a layer the Regions dock made (its ``scale`` is the
slide's um/px), but micrometres for a Shapes layer made with napari's own button over a
slide shown in micrometres. So the vertices go through the layer's ``scale`` and
``translate`` to world coordinates, then through the slide layer's transform back to
level-0 pixels. The slide is the OmicsLens slide layer of the current viewer; with none
(a bare Shapes layer), data coordinates are written as they are. napari's save dialog
has already asked before replacing a file; the write itself is atomic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from omicslens.core.regions import Region, write_regions


def _slide_transform() -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, translate) of the current viewer's OmicsLens slide layer, as (y, x)."""
    try:
        import napari

        from omicslens._napari.layers import slide_of

        viewer = napari.current_viewer()
    except ImportError:  # pragma: no cover - napari is a dependency
        return None
    if viewer is None:
        return None
    for layer in viewer.layers:
        if slide_of(layer) is not None:
            return np.asarray(layer.scale[-2:], float), np.asarray(layer.translate[-2:], float)
    return None


def to_level0(
    vertices: np.ndarray,
    scale: Any,
    translate: Any,
    slide: tuple[np.ndarray, np.ndarray] | None,
) -> np.ndarray:
    """(N, 2) (y, x) data coordinates of a layer -> (N, 2) (x, y) slide level-0 pixels."""
    points = np.asarray(vertices, dtype=np.float64)[:, -2:]
    if slide is not None:
        layer_scale = np.asarray(scale if scale is not None else (1, 1), float)[-2:]
        layer_shift = np.asarray(translate if translate is not None else (0, 0), float)[-2:]
        world = points * layer_scale + layer_shift
        points = (world - slide[1]) / slide[0]
    return points[:, ::-1]


def write_shapes_geojson(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    kinds = list(attributes.get("shape_type") or ["polygon"] * len(data))
    features = attributes.get("features")
    names: list[Any] = []
    if features is not None and "name" in features:
        names = list(features["name"])
    slide = _slide_transform()
    regions = []
    for index, vertices in enumerate(data):
        points = to_level0(vertices, attributes.get("scale"), attributes.get("translate"), slide)
        if len(points) < 3:
            continue  # lines and paths are not regions
        name = names[index] if index < len(names) and names[index] else f"region {index + 1}"
        regions.append(Region(str(name), points, shape_type=str(kinds[index])))
    target = path if path.endswith((".geojson", ".geojson.gz")) else f"{path}.geojson"
    write_regions(regions, target, overwrite=True)
    return [target]
