"""Reading QuPath GeoJSON into regions: every form QuPath writes, typed errors for the rest.

Split out of :mod:`omicslens.core.regions` (which re-exports these names, including the
private ``_features``, ``_region`` and ``_OBJECT_TYPES`` that
:mod:`omicslens.core.session` parses embedded regions with). A malformed file or feature
is a :class:`RegionFileError` naming the file and the feature; repaired and skipped
geometries are reported with warnings.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import uuid
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape

from omicslens.core.errors import OmicsLensError
from omicslens.core.region_model import Colour, Region, _box_corners, _exterior, _polygonal

_OBJECT_TYPES = {
    "PathAnnotationObject": "annotation",
    "PathDetectionObject": "detection",
    "PathTileObject": "tile",
    "PathCellObject": "cell",
    "TMACoreObject": "tmaCore",
    "tma_core": "tmaCore",
    "PathRootObject": "root",
}
# properties read into Region fields; everything else goes to extra_properties
_KNOWN_PROPERTIES = {
    "objectType",
    "name",
    "classification",
    "isLocked",
    "color",
    "measurements",
    "omicslensShape",
    "omicslensId",
}


class RegionFileError(OmicsLensError, ValueError):
    """A regions file that is not QuPath-style GeoJSON we can read."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class RegionRepairedWarning(UserWarning):
    """An invalid geometry (e.g. a self-intersecting outline) was made valid on import."""


class RegionSkippedWarning(UserWarning):
    """An annotation was not imported because its geometry has no area (a point, a line)."""


def _colour(value: Any) -> Colour | None:
    """[r, g, b] (QuPath 0.4+) or a packed (A)RGB integer (older files)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"colour {value!r} is not [r, g, b]")
    if isinstance(value, int):
        return ((value >> 16) & 255, (value >> 8) & 255, value & 255)
    if (
        isinstance(value, list | tuple)
        and len(value) in (3, 4)
        and all(
            isinstance(c, int | float) and not isinstance(c, bool) and 0 <= c <= 255 for c in value
        )
    ):
        r, g, b = (int(c) for c in value[:3])
        return (r, g, b)
    raise ValueError(f"colour {value!r} is not [r, g, b] with values 0-255")


def _text(value: str, what: str) -> str:
    """A name as text every writer keeps: no NUL or other control character and no lone
    surrogate (they break CSV, h5ad and QuPath's own reader). Newlines and tabs are kept:
    QuPath allows multi-line names and our CSV writers quote them."""
    if not value.replace("\n", " ").replace("\t", " ").isprintable():
        raise ValueError(f"{what} {value[:40]!r} contains a control character or invalid text")
    return value


def _classification(value: Any) -> tuple[str | None, Colour | None]:
    """(class name as QuPath displays it, colour) from any form QuPath reads."""
    if value is None:
        return None, None
    if isinstance(value, str):  # QuPath accepts "Tumor" or "Tumor: Positive"
        return (_text(value.strip(), "classification") or None), None
    if not isinstance(value, dict):
        raise ValueError(f"classification {value!r} is neither a string nor an object")
    if not value:
        return None, None
    names: list[str] = []
    if value.get("names") is not None:
        listed = value["names"]
        if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
            raise ValueError(f"classification names {listed!r} are not a list of strings")
        names = list(listed)
    elif value.get("name") is not None:
        if not isinstance(value["name"], str):
            raise ValueError(f"classification name {value['name']!r} is not a string")
        names = [value["name"]]
        parent = value.get("parentClass")  # QuPath <= 0.1 files
        while isinstance(parent, dict) and isinstance(parent.get("name"), str):
            names.insert(0, parent["name"])
            parent = parent.get("parentClass")
    if not names:
        raise ValueError(f"classification {value!r} has neither a name nor names")
    colour = _colour(value["color"]) if "color" in value else _colour(value.get("colorRGB"))
    for name in names:
        _text(name, "classification name")
    return ": ".join(names), colour


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return float(value)  # "NaN", "Infinity", "-inf" and numbers written as text
    raise ValueError(f"{value!r} is not a number")


def _measurements(value: Any) -> dict[str, float]:
    """Both forms QuPath reads: {name: value} and the legacy [{name, value}]."""
    if value is None:
        return {}
    out: dict[str, float] = {}
    if isinstance(value, dict):
        for key, number in value.items():
            try:
                out[str(key)] = _number(number)
            except ValueError as error:
                raise ValueError(f"measurement {key!r}: {error}") from None
        return out
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, dict) or "name" not in item or "value" not in item:
                raise ValueError(f"measurement {item!r} is not {{name, value}}")
            try:
                out[str(item["name"])] = _number(item["value"])
            except ValueError as error:
                raise ValueError(f"measurement {item['name']!r}: {error}") from None
        return out
    raise ValueError(f"measurements {value!r} are neither an object nor a list")


def _geometry(value: Any, what: str) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is missing or not an object")
    kind = value.get("type")
    if kind == "GeometryCollection":
        if not isinstance(value.get("geometries"), list):
            raise ValueError(f"{what}: a GeometryCollection without 'geometries'")
    elif not isinstance(value.get("coordinates"), list):
        raise ValueError(f"{what}: a {kind or 'geometry without type'} without 'coordinates'")
    try:
        geometry = shape(
            {k: v for k, v in value.items() if k in ("type", "coordinates", "geometries")}
        )
    except (ValueError, TypeError, IndexError, AttributeError, shapely.errors.ShapelyError) as e:
        raise ValueError(f"{what}: unreadable {kind} ({e})") from None
    except RecursionError:
        raise ValueError(f"{what}: coordinates nested too deeply") from None
    if not np.isfinite(shapely.get_coordinates(geometry)).all():
        raise ValueError(f"{what}: coordinates that are not finite numbers (NaN or infinity)")
    return geometry


def _features(source: Path, data: Any) -> list[Any]:
    if isinstance(data, list):
        return data  # QuPath also exports a bare list of features
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise RegionFileError(
                source, f"'features' of the FeatureCollection is {features!r}, not a list"
            )
        return features
    if isinstance(data, dict) and data.get("type") == "Feature":
        return [data]
    raise RegionFileError(source, "expected a FeatureCollection or a list of Features")


def _region(
    source: Path, number: int, feature: dict[str, Any], properties: dict[str, Any], kind: str
) -> Region | None:
    label = f"feature {number}"
    if isinstance(properties.get("name"), str):
        label += f" ({properties['name'][:40]!r})"
    raw_geometry = feature.get("geometry")
    geometry = _geometry(raw_geometry, "geometry")
    if geometry.is_empty:
        raise ValueError("geometry is empty")
    if not isinstance(geometry, Polygon | MultiPolygon):
        polygonal = _polygonal(geometry)
        if polygonal is None:  # points and lines are not regions: say so, and go on
            warnings.warn(
                f"{source}: {label}: skipped, a {geometry.geom_type} has no area "
                "(only polygons are regions)",
                RegionSkippedWarning,
                stacklevel=4,
            )
            return None
        geometry = polygonal
    if not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        repaired = _polygonal(shapely.make_valid(geometry))
        if repaired is None or repaired.area == 0:
            raise ValueError(f"invalid geometry ({reason}) with no area once repaired")
        warnings.warn(
            f"{source}: {label}: invalid geometry ({reason}); made valid with "
            f"shapely.make_valid (area {geometry.area:.6g} -> {repaired.area:.6g} px²)",
            RegionRepairedWarning,
            stacklevel=4,
        )
        geometry = repaired
    if geometry.area == 0:
        raise ValueError("polygon with no area (fewer than 3 distinct vertices)")
    name = properties.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name {name!r} is not a string")
    if name:
        _text(name, "name")
    classification, class_colour_ = _classification(properties.get("classification"))
    is_ellipse = isinstance(raw_geometry, dict) and raw_geometry.get("isEllipse") is True
    shape_type = "ellipse" if is_ellipse else str(properties.get("omicslensShape") or "polygon")
    locked = properties.get("isLocked", False)
    if not isinstance(locked, bool):
        raise ValueError(f"isLocked {locked!r} is not true/false")
    nucleus = feature.get("nucleusGeometry")
    raw_id = properties.get("omicslensId") or feature.get("id")
    plane = raw_geometry.get("plane") if isinstance(raw_geometry, dict) else None
    return Region(
        name=name or f"region {number + 1}",
        vertices=_box_corners(geometry) if is_ellipse else _exterior(geometry),
        shape_type=shape_type,
        classification=classification,
        id=str(raw_id) if raw_id else str(uuid.uuid4()),
        measurements=_measurements(properties.get("measurements")),
        geometry=geometry,
        locked=locked,
        color=_colour(properties.get("color")),
        class_color=class_colour_,
        object_type=kind,
        nucleus_geometry=None if nucleus is None else _geometry(nucleus, "nucleusGeometry"),
        extra_properties={k: v for k, v in properties.items() if k not in _KNOWN_PROPERTIES},
        plane=plane if isinstance(plane, dict) else None,
    )


def read_regions(
    path: str | os.PathLike[str],
    object_types: Sequence[str] = ("annotation",),
    allow_empty: bool = False,
) -> list[Region]:
    """The regions of a QuPath GeoJSON file (FeatureCollection, Feature or a list).

    Only ``object_types`` are read (annotations by default: detections, tiles and cells
    are results, not regions; pass ``("cell",)`` to read cells with their nuclei). A
    MultiPolygon stays one region; holes are kept. Any malformed feature, or a file with
    no usable region (unless ``allow_empty``, or the file is one :func:`write_regions`
    wrote for an empty list), raises :class:`RegionFileError` naming the file and the
    problem. An invalid outline is repaired with ``shapely.make_valid`` and
    reported with a :class:`RegionRepairedWarning`.
    """
    source = Path(path)
    try:
        raw = source.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        data = json.loads(raw)
    except (OSError, ValueError, EOFError, zlib.error) as error:
        raise RegionFileError(source, f"not readable GeoJSON ({error})") from error
    except RecursionError:
        raise RegionFileError(source, "not readable GeoJSON (nested too deeply)") from None
    features = _features(source, data)
    if not features and isinstance(data, dict) and isinstance(data.get("omicslens"), dict):
        return []  # our own file with every region deleted: deliberately empty
    wanted = {_OBJECT_TYPES.get(t, t) for t in object_types}
    regions: list[Region] = []
    skipped: dict[str, int] = {}
    for number, feature in enumerate(features):
        if not isinstance(feature, dict) or feature.get("type", "Feature") != "Feature":
            raise RegionFileError(source, f"feature {number} is not a GeoJSON Feature")
        properties = feature.get("properties")
        properties = {} if properties is None else properties
        if not isinstance(properties, dict):
            raise RegionFileError(source, f"feature {number}: 'properties' is not an object")
        raw_kind = properties.get("objectType", "annotation")
        kind = _OBJECT_TYPES.get(str(raw_kind), str(raw_kind))
        if kind not in wanted:
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        try:
            region = _region(source, number, feature, properties, kind)
        except ValueError as error:
            name = properties.get("name")
            label = f"feature {number}" + (f" ({name!r})" if isinstance(name, str) else "")
            raise RegionFileError(source, f"{label}: {error}") from None
        if region is None:
            skipped["not a polygon"] = skipped.get("not a polygon", 0) + 1
        else:
            regions.append(region)
    if not regions and not allow_empty:
        detail = ", ".join(f"{n} {k}" for k, n in sorted(skipped.items())) or "no features"
        raise RegionFileError(
            source,
            f"no usable region ({' or '.join(sorted(wanted))} with a polygon): {detail}",
        )
    return regions
