"""The :class:`Region` value: a named shapely polygon in level-0 pixels with QuPath's properties.

Split out of :mod:`omicslens.core.regions` so the GeoJSON reader
(:mod:`omicslens.core.regions_read`) and writer (:mod:`omicslens.core.regions_write`) can
both build on the region and its geometry helpers (ellipses, bounding boxes, the polygonal
part of a repaired geometry) without importing each other. How ``vertices`` relates to the
geometry is described in :mod:`omicslens.core.regions`, which re-exports everything here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

#: vertices of an ellipse's polygon (QuPath's own export uses 100)
ELLIPSE_VERTICES = 100

Colour = tuple[int, int, int]


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
