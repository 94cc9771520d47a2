"""The smear's cells GeoJSON is accepted by QuPath's importer (its schema, strict JSON)."""

from __future__ import annotations

import json

from omicslens.hemato.smear import analyse_smear, cells_geojson
from tests.core.test_qupath_geojson import assert_qupath_accepts
from tests.hemato.conftest import BCCD

FIELD = BCCD / "JPEGImages" / "BloodImage_00193.jpg"  # two white cells


def test_cells_geojson_validates_against_qupaths_schema() -> None:
    data = cells_geojson(analyse_smear(FIELD))
    assert len(data["features"]) == 2
    assert_qupath_accepts(json.loads(json.dumps(data, allow_nan=False)))
    for feature in data["features"]:
        assert feature["properties"]["objectType"] == "cell"
        assert feature["nucleusGeometry"]["type"] == "Polygon"
