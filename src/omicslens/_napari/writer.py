"""napari writer contribution: a Shapes layer as QuPath GeoJSON annotations.

Vertices are written in the layer's data coordinates. For a layer made by the Regions
dock those are the slide's level-0 pixels, which is what QuPath expects. napari's save
dialog has already asked before replacing a file; the write itself is atomic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from omicslens.core.regions import Region, write_regions


def write_shapes_geojson(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    kinds = list(attributes.get("shape_type") or ["polygon"] * len(data))
    features = attributes.get("features")
    names: list[Any] = []
    if features is not None and "name" in features:
        names = list(features["name"])
    regions = []
    for index, vertices in enumerate(data):
        points = np.asarray(vertices, dtype=np.float64)[:, -2:][:, ::-1]  # (y, x) -> (x, y)
        if len(points) < 3:
            continue  # lines and paths are not regions
        name = names[index] if index < len(names) and names[index] else f"region {index + 1}"
        regions.append(Region(str(name), points, shape_type=str(kinds[index])))
    target = path if path.endswith((".geojson", ".geojson.gz")) else f"{path}.geojson"
    write_regions(regions, target, overwrite=True)
    return [target]
