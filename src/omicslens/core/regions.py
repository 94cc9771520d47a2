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

This module says where a slide's regions are autosaved (:func:`autosave_path`) and
re-exports the pieces: the region value (:mod:`omicslens.core.region_model`), the writer
(:mod:`omicslens.core.regions_write`) and the reader (:mod:`omicslens.core.regions_read`).
:func:`autosave_path` stays here, with this module's ``import os``: tests patch
``omicslens.core.regions.os.access``.
"""

from __future__ import annotations

import os
from pathlib import Path

from omicslens.core.region_model import ELLIPSE_VERTICES as ELLIPSE_VERTICES
from omicslens.core.region_model import Colour as Colour
from omicslens.core.region_model import Region as Region
from omicslens.core.region_model import _box_corners as _box_corners
from omicslens.core.region_model import _exterior as _exterior
from omicslens.core.region_model import _polygonal as _polygonal
from omicslens.core.region_model import ellipse_polygon as ellipse_polygon
from omicslens.core.regions_read import _KNOWN_PROPERTIES as _KNOWN_PROPERTIES
from omicslens.core.regions_read import _OBJECT_TYPES as _OBJECT_TYPES
from omicslens.core.regions_read import RegionFileError as RegionFileError
from omicslens.core.regions_read import RegionRepairedWarning as RegionRepairedWarning
from omicslens.core.regions_read import RegionSkippedWarning as RegionSkippedWarning
from omicslens.core.regions_read import _classification as _classification
from omicslens.core.regions_read import _colour as _colour
from omicslens.core.regions_read import _features as _features
from omicslens.core.regions_read import _geometry as _geometry
from omicslens.core.regions_read import _measurements as _measurements
from omicslens.core.regions_read import _number as _number
from omicslens.core.regions_read import _region as _region
from omicslens.core.regions_read import _text as _text
from omicslens.core.regions_read import read_regions as read_regions
from omicslens.core.regions_write import _ID_NAMESPACE as _ID_NAMESPACE
from omicslens.core.regions_write import QUPATH_CLASS_COLOURS as QUPATH_CLASS_COLOURS
from omicslens.core.regions_write import _feature_id as _feature_id
from omicslens.core.regions_write import _geometry_json as _geometry_json
from omicslens.core.regions_write import class_colour as class_colour
from omicslens.core.regions_write import json_safe as json_safe
from omicslens.core.regions_write import region_to_feature as region_to_feature
from omicslens.core.regions_write import regions_to_geojson as regions_to_geojson
from omicslens.core.regions_write import write_regions as write_regions

__all__ = [
    "ELLIPSE_VERTICES",
    "QUPATH_CLASS_COLOURS",
    "Colour",
    "Region",
    "RegionFileError",
    "RegionRepairedWarning",
    "RegionSkippedWarning",
    "autosave_path",
    "class_colour",
    "ellipse_polygon",
    "json_safe",
    "read_regions",
    "region_to_feature",
    "regions_to_geojson",
    "write_regions",
]


def autosave_path(slide_path: str | os.PathLike[str], data_dir: Path) -> Path:
    """Where a slide's regions are autosaved: beside the slide, or in ``data_dir`` (keyed by
    the slide's content fingerprint) when the slide's folder is not writable."""
    slide = Path(slide_path)
    beside = slide.with_name(slide.name + ".omicslens-regions.geojson")
    if os.access(slide.parent, os.W_OK):
        return beside
    from omicslens.core.fingerprint import slide_fingerprint

    return data_dir / "regions" / f"{slide_fingerprint(slide)}.geojson"
