"""Regions a user draws or imports, in level-0 pixels, and QuPath GeoJSON for them.

A region is a shapely ``Polygon`` or ``MultiPolygon`` (holes kept) in level-0 pixels, with
the properties QuPath writes: ``id``, ``name``, ``classification`` (its name, or the names
of a derived class, and its colour), ``isLocked``, the object ``color``, ``measurements``,
``objectType`` and, for cells, the ``nucleusGeometry``. Reading a file QuPath exported and
writing it again keeps all of them; anything else in ``properties`` is carried unchanged.

QuPath's importer is strict, so what we write always parses there: a classification always
has a colour (the region's own, else QuPath's default for the standard classes, else one
derived from the class name), non-finite numbers are written as the strings QuPath itself
writes (``"NaN"``, ``"Infinity"``), never as bare ``NaN`` tokens, and ids are UUIDs.

``Region.vertices`` stays the simple form the napari Regions dock draws: the exterior ring
of the first polygon (not closed), or, for an ellipse, the four corners of its bounding box
(napari's ellipse form). ``contains`` and ``area_px`` use the full geometry (holes, every
part of a multipolygon, the ellipse itself rather than its box).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import uuid
import warnings
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape

from omicslens.core.atomic import write_bytes_atomic
from omicslens.core.errors import OmicsLensError

#: ids that are not UUIDs (QuPath needs UUIDs) are mapped to stable UUIDs in this namespace
_ID_NAMESPACE = uuid.UUID("6f6d6963-736c-656e-7300-726567696f6e")
#: vertices of an ellipse's polygon (QuPath's own export uses 100)
ELLIPSE_VERTICES = 100

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


Colour = tuple[int, int, int]


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


def ellipse_polygon(corners: np.ndarray, n: int = ELLIPSE_VERTICES) -> Polygon:
    """The ellipse inscribed in a (possibly rotated) box given by its 4 corners in order,
    as napari stores an ellipse, polygonised with ``n`` vertices."""
    c = np.asarray(corners, dtype=np.float64)[:4, :2]
    centre = c.mean(axis=0)
    half_a = (c[1] - c[0]) / 2  # along the first side
    half_b = (c[3] - c[0]) / 2  # along the second side
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = centre + np.outer(np.cos(t), half_a) + np.outer(np.sin(t), half_b)
    return Polygon(ring)


def _box_corners(geometry: Any) -> np.ndarray:
    x0, y0, x1, y1 = geometry.bounds
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _exterior(geometry: Any) -> np.ndarray:
    first = geometry.geoms[0] if isinstance(geometry, MultiPolygon) else geometry
    ring = np.asarray(first.exterior.coords, dtype=np.float64)[:, :2]
    return ring[:-1] if len(ring) > 1 and np.array_equal(ring[0], ring[-1]) else ring


def _polygonal(geometry: Any) -> Polygon | MultiPolygon | None:
    """The polygonal part of a geometry (what make_valid may return), or None."""
    if isinstance(geometry, Polygon | MultiPolygon):
        return None if geometry.is_empty else geometry
    parts = [g for g in getattr(geometry, "geoms", []) if isinstance(g, Polygon | MultiPolygon)]
    polygons: list[Polygon] = []
    for part in parts:
        polygons.extend(part.geoms if isinstance(part, MultiPolygon) else [part])
    polygons = [p for p in polygons if not p.is_empty]
    if not polygons:
        return None
    return polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)


@dataclass
class Region:
    """A named region in level-0 pixels, with the properties of a QuPath object.

    ``Region(name, vertices)`` makes a simple polygon; pass ``geometry`` (a shapely
    Polygon or MultiPolygon) for holes and several parts. ``classification`` is the class
    name as QuPath displays it, derived classes joined by ``": "`` (``"Tumor: Positive"``).
    """

    name: str
    vertices: np.ndarray  # (N, 2) x, y level-0 pixels, not closed (see the module doc)
    shape_type: str = "polygon"  # polygon | rectangle | ellipse (how napari draws it)
    classification: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    measurements: dict[str, float] = field(default_factory=dict)
    geometry: Any = None  # shapely Polygon | MultiPolygon; built from vertices when None
    locked: bool = False
    color: Colour | None = None  # the object's own colour (QuPath ``color``)
    class_color: Colour | None = None  # the classification's colour, when it had one
    object_type: str = "annotation"
    nucleus_geometry: Any = None  # shapely geometry of a cell's nucleus
    extra_properties: dict[str, Any] = field(default_factory=dict)
    plane: dict[str, Any] | None = None  # QuPath ``geometry.plane`` (z, t, c)

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, dtype=np.float64).reshape(-1, 2)
        if self.geometry is None:
            self._from_vertices = True
            self.geometry = self._build_from_vertices()
        else:
            self._from_vertices = False
            polygonal = _polygonal(self.geometry)
            if polygonal is None:
                raise ValueError(f"region {self.name!r}: geometry has no area")
            self.geometry = polygonal
        self._built_for = self.vertices
        shapely.prepare(self.geometry)

    def _build_from_vertices(self) -> Polygon | MultiPolygon:
        if self.shape_type == "ellipse" and len(self.vertices) == 4:
            polygon = ellipse_polygon(self.vertices)
        else:
            polygon = Polygon(self.vertices)
        if not polygon.is_valid:  # a self-intersecting outline: the even-odd reading
            repaired = _polygonal(shapely.make_valid(polygon))
            if repaired is not None:
                return repaired
        return polygon

    @property
    def shape(self) -> Polygon | MultiPolygon:
        """The geometry, rebuilt if ``vertices`` was replaced after construction."""
        if self._from_vertices and self.vertices is not self._built_for:
            self.vertices = np.asarray(self.vertices, dtype=np.float64).reshape(-1, 2)
            self.geometry = self._build_from_vertices()
            self._built_for = self.vertices
            shapely.prepare(self.geometry)
        return self.geometry

    @property
    def class_names(self) -> tuple[str, ...]:
        """The parts of a derived class (``("Tumor", "Positive")``); () when unclassified."""
        return tuple(self.classification.split(": ")) if self.classification else ()

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """minx, miny, maxx, maxy of the whole geometry."""
        x0, y0, x1, y1 = self.shape.bounds
        return float(x0), float(y0), float(x1), float(y1)

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Which level-0 points lie inside (holes excluded, every part of a multipolygon
        included); vectorised with shapely."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        return np.asarray(shapely.contains_xy(self.shape, x, y), dtype=bool)

    def area_px(self) -> float:
        """Area in level-0 square pixels (holes subtracted, all parts added)."""
        return float(self.shape.area)

    def ellipse_corners(self) -> np.ndarray:
        """The 4 corners of the bounding box (how napari draws an ellipse)."""
        return _box_corners(self.shape)


# ---------------------------------------------------------------- writing


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


# ---------------------------------------------------------------- reading


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


def autosave_path(slide_path: str | os.PathLike[str], data_dir: Path) -> Path:
    """Where a slide's regions are autosaved: beside the slide, or in ``data_dir`` (keyed by
    the slide's content fingerprint) when the slide's folder is not writable."""
    slide = Path(slide_path)
    beside = slide.with_name(slide.name + ".omicslens-regions.geojson")
    if os.access(slide.parent, os.W_OK):
        return beside
    from omicslens.core.fingerprint import slide_fingerprint

    return data_dir / "regions" / f"{slide_fingerprint(slide)}.geojson"
