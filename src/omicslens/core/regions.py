"""Regions a user draws or imports, in level-0 pixels, and QuPath GeoJSON for them.

A region is a named polygon (rectangles and ellipses are kept as their polygon, with the
shape type remembered so napari can redraw them as such). QuPath GeoJSON is the exchange
format: a FeatureCollection of ``annotation`` objects with a UUID ``id``, the polygon in
level-0 pixels, ``name``, ``classification`` and ``measurements``. Reading what we wrote
gives back exactly the same vertices, names and classes.
"""

from __future__ import annotations

import gzip
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.atomic import write_bytes_atomic
from omicslens.core.errors import OmicsLensError


class RegionFileError(OmicsLensError, ValueError):
    """A regions file that is not QuPath-style GeoJSON we can read."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}")


@dataclass
class Region:
    name: str
    vertices: np.ndarray  # (N, 2) x, y level-0 pixels, not closed
    shape_type: str = "polygon"  # polygon | rectangle | ellipse (how napari draws it)
    classification: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    measurements: dict[str, float] = field(default_factory=dict)

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Even-odd point-in-polygon test for level-0 points (vectorised over points)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        inside = np.zeros(x.shape, dtype=bool)
        vx, vy = self.vertices[:, 0], self.vertices[:, 1]
        for i in range(len(vx)):
            x1, y1, x2, y2 = vx[i - 1], vy[i - 1], vx[i], vy[i]
            crosses = (y1 > y) != (y2 > y)
            with np.errstate(divide="ignore", invalid="ignore"):
                at = (x2 - x1) * (y - y1) / (y2 - y1) + x1
            inside ^= crosses & (x < at)
        return inside

    def area_px(self) -> float:
        """Polygon area in level-0 pixels (shoelace)."""
        x, y = self.vertices[:, 0], self.vertices[:, 1]
        return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def regions_to_geojson(regions: list[Region]) -> dict[str, Any]:
    features = []
    for region in regions:
        ring = [[float(x), float(y)] for x, y in region.vertices]
        ring.append(ring[0])
        properties: dict[str, Any] = {
            "objectType": "annotation",
            "name": region.name,
            "isLocked": False,
            "omicslensShape": region.shape_type,
        }
        if region.classification:
            properties["classification"] = {"name": region.classification}
        if region.measurements:
            properties["measurements"] = {k: float(v) for k, v in region.measurements.items()}
        features.append(
            {
                "type": "Feature",
                "id": region.id,
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": properties,
            }
        )
    return {"type": "FeatureCollection", "features": features}


def write_regions(
    regions: list[Region], path: str | os.PathLike[str], overwrite: bool = False
) -> Path:
    """QuPath GeoJSON (``.geojson``, or gzipped ``.geojson.gz``), atomically."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    data = json.dumps(regions_to_geojson(regions), indent=1).encode()
    if target.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    return write_bytes_atomic(target, data)


def read_regions(path: str | os.PathLike[str]) -> list[Region]:
    """Annotations (polygons, and each polygon of a multipolygon) of a QuPath GeoJSON file.

    Detections, tiles and cells are skipped: they are results, not regions.
    """
    source = Path(path)
    try:
        raw = source.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        data = json.loads(raw)
    except (OSError, ValueError, EOFError) as error:
        raise RegionFileError(source, f"not readable GeoJSON ({error})") from error
    if isinstance(data, list):
        features = data  # QuPath also exports a bare list of features
    elif isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features", [])
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    else:
        raise RegionFileError(source, "expected a FeatureCollection or a list of Features")
    regions = []
    for number, feature in enumerate(features):
        properties = feature.get("properties") or {}
        if properties.get("objectType", "annotation") != "annotation":
            continue
        geometry = feature.get("geometry") or {}
        kind = geometry.get("type")
        if kind == "Polygon":
            polygons = [geometry["coordinates"]]
        elif kind == "MultiPolygon":
            polygons = geometry["coordinates"]
        else:
            continue
        classification = properties.get("classification") or {}
        base_name = properties.get("name") or f"region {number + 1}"
        for part, rings in enumerate(polygons):
            outer = np.asarray(rings[0], dtype=np.float64)
            if len(outer) > 1 and np.allclose(outer[0], outer[-1]):
                outer = outer[:-1]
            if len(outer) < 3:
                raise RegionFileError(source, f"feature {number}: polygon with < 3 vertices")
            regions.append(
                Region(
                    name=base_name if len(polygons) == 1 else f"{base_name} ({part + 1})",
                    vertices=outer,
                    shape_type=properties.get("omicslensShape", "polygon"),
                    classification=classification.get("name"),
                    id=str(feature.get("id") or uuid.uuid4())
                    if len(polygons) == 1
                    else str(uuid.uuid4()),
                    measurements=dict(properties.get("measurements") or {}),
                )
            )
    return regions


def autosave_path(slide_path: str | os.PathLike[str], data_dir: Path) -> Path:
    """Where a slide's regions are autosaved: beside the slide, or in ``data_dir`` (keyed by
    the slide's content fingerprint) when the slide's folder is not writable."""
    slide = Path(slide_path)
    beside = slide.with_name(slide.name + ".omicslens-regions.geojson")
    if os.access(slide.parent, os.W_OK):
        return beside
    from omicslens.core.fingerprint import slide_fingerprint

    return data_dir / "regions" / f"{slide_fingerprint(slide)}.geojson"
