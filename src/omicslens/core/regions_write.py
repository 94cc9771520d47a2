"""Writing regions as QuPath GeoJSON that QuPath's strict importer accepts.

Split out of :mod:`omicslens.core.regions` (which re-exports these names): every
classification gets a colour (:func:`class_colour`), non-finite numbers become the strings
QuPath writes (:func:`json_safe`), ids become UUIDs, and files are written atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import mapping

from omicslens.core.atomic import write_bytes_atomic
from omicslens.core.region_model import Colour, Region

#: ids that are not UUIDs (QuPath needs UUIDs) are mapped to stable UUIDs in this namespace
_ID_NAMESPACE = uuid.UUID("6f6d6963-736c-656e-7300-726567696f6e")

#: QuPath's default colours for its standard classes (qupath-core PathClass defaults)
QUPATH_CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "Tumor": (200, 0, 0),
    "Stroma": (150, 200, 150),
    "Immune cells": (160, 90, 160),
    "Necrosis": (50, 50, 50),
    "Other": (255, 200, 0),
    "Region*": (0, 0, 180),
    "Ignore*": (180, 180, 180),
    "Positive": (200, 50, 50),
    "Negative": (112, 112, 225),
}


def class_colour(name: str) -> Colour:
    """The colour written for a class without one: QuPath's default for its standard
    classes (and a derived class's last part), else a stable colour from the name."""
    if name in QUPATH_CLASS_COLOURS:
        return QUPATH_CLASS_COLOURS[name]
    last = name.split(": ")[-1]
    if last in QUPATH_CLASS_COLOURS and last != name:
        return QUPATH_CLASS_COLOURS[last]
    digest = hashlib.sha256(name.encode()).digest()
    # keep channels in 40..215 so the colour is visible on white and on dark tissue
    return (40 + digest[0] % 176, 40 + digest[1] % 176, 40 + digest[2] % 176)


def json_safe(value: Any) -> Any:
    """Non-finite floats as the strings QuPath writes, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return number
    return value


def _geometry_json(geometry: Any) -> dict[str, Any]:
    data = mapping(geometry)
    return {"type": data["type"], "coordinates": json_safe(data["coordinates"])}


def _feature_id(region: Region) -> tuple[str, str | None]:
    try:
        return str(uuid.UUID(str(region.id))), None
    except ValueError:
        return str(uuid.uuid5(_ID_NAMESPACE, str(region.id))), str(region.id)


def region_to_feature(region: Region) -> dict[str, Any]:
    """One QuPath GeoJSON Feature (JSON-safe: no NaN, every classification coloured)."""
    geometry = _geometry_json(region.shape)
    if region.shape_type == "ellipse":
        geometry["isEllipse"] = True
    if region.plane:
        geometry["plane"] = dict(region.plane)
    properties: dict[str, Any] = {
        "objectType": region.object_type or "annotation",
        "name": region.name,
        "isLocked": bool(region.locked),
    }
    if region.shape_type not in ("polygon", "ellipse"):
        properties["omicslensShape"] = region.shape_type
    if region.classification:
        names = list(region.class_names)
        colour = region.class_color or class_colour(region.classification)
        classification: dict[str, Any] = {"name": names[0]} if len(names) == 1 else {"names": names}
        classification["color"] = [int(c) for c in colour[:3]]
        properties["classification"] = classification
    if region.color is not None:
        properties["color"] = [int(c) for c in region.color[:3]]
    if region.measurements:
        properties["measurements"] = {
            str(k): json_safe(float(v)) for k, v in region.measurements.items()
        }
    feature_id, original_id = _feature_id(region)
    if original_id is not None:
        properties["omicslensId"] = original_id
    for key, value in region.extra_properties.items():
        properties.setdefault(key, json_safe(value))
    feature: dict[str, Any] = {
        "type": "Feature",
        "id": feature_id,
        "geometry": geometry,
        "properties": properties,
    }
    if region.nucleus_geometry is not None:
        feature["nucleusGeometry"] = _geometry_json(region.nucleus_geometry)
    return feature


def regions_to_geojson(regions: Iterable[Region]) -> dict[str, Any]:
    features = [region_to_feature(r) for r in regions]
    # a GeoJSON foreign member (QuPath ignores it): says the file was written by us, so an
    # empty file (every region deleted, then autosaved) reads back as no regions
    return {
        "type": "FeatureCollection",
        "features": features,
        "omicslens": {"regions": len(features)},
    }


def write_regions(
    regions: list[Region], path: str | os.PathLike[str], overwrite: bool = False
) -> Path:
    """QuPath GeoJSON (``.geojson``, or gzipped ``.geojson.gz``), atomically."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    data = json.dumps(regions_to_geojson(regions), indent=1, allow_nan=False).encode()
    if target.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    return write_bytes_atomic(target, data)
