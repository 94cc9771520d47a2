"""QuPath GeoJSON against QuPath itself: files written by QuPath's own exporter are imported
exactly (checked with shapely), and everything we write validates against the schema of
what QuPath's importer accepts (tests/data/qupath, see its README)."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon

from omicslens.core.regions import (
    Region,
    RegionFileError,
    RegionRepairedWarning,
    class_colour,
    read_regions,
    regions_to_geojson,
    write_regions,
)
from tests.conftest import DATA

QUPATH = DATA / "qupath"
SCHEMA = json.loads((QUPATH / "qupath_feature.schema.json").read_text())
FIXTURES = ["qupath-written-fc.geojson", "qupath-written-array.geojson"]


def assert_qupath_accepts(data: Any) -> None:
    """Valid against QuPath's importer schema, with UUID ids, and strict JSON (no NaN)."""
    jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
    json.dumps(data, allow_nan=False)


def load_written(path: Path) -> Any:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = raw.decode()
    assert "NaN," not in text and ": NaN" not in text and "Infinity," not in text
    # the strict parser refuses bare NaN / Infinity tokens
    return json.loads(text, parse_constant=lambda token: pytest.fail(f"bare {token} in JSON"))


def test_the_fixtures_themselves_satisfy_the_schema() -> None:
    for name in FIXTURES:
        assert_qupath_accepts(json.loads((QUPATH / name).read_text()))


@pytest.mark.parametrize("name", FIXTURES)
def test_qupath_export_imports_exactly(name: str) -> None:
    regions = read_regions(QUPATH / name)
    # the detection is skipped; the MultiPolygon stays one region
    assert [r.name for r in regions] == [
        "Tumour A",
        "Ring with hole",
        "Ellipse",
        "Glass corner",
        "Two parts",
    ]
    by_name = {r.name: r for r in regions}
    tumour, ring, ellipse, glass, parts = (by_name[n] for n in by_name)
    raw = json.loads((QUPATH / name).read_text())
    features = raw["features"] if isinstance(raw, dict) else raw
    assert [r.id for r in regions] == [f["id"] for f in features[:5]]

    # geometry, compared with shapely on the file's own coordinates
    for region, feature in zip(regions, features, strict=False):
        expected = shapely.geometry.shape(feature["geometry"])
        assert region.geometry.equals(expected), region.name
        assert region.area_px() == pytest.approx(expected.area)
        assert region.geometry.is_valid
    assert tumour.area_px() == pytest.approx(900 * 1000)
    assert isinstance(ring.geometry, Polygon) and len(ring.geometry.interiors) == 1
    assert ring.area_px() == pytest.approx(1500 * 700 - 900 * 400)  # the hole is not area
    assert isinstance(parts.geometry, MultiPolygon) and len(parts.geometry.geoms) == 2
    assert parts.area_px() == pytest.approx(2 * 150 * 150)
    assert parts.id == "324e201c-db6a-410e-9ded-e9083dfda0e9"
    assert ellipse.shape_type == "ellipse"
    assert ellipse.area_px() == pytest.approx(math.pi * 250 * 200, rel=2e-3)
    np.testing.assert_allclose(
        ellipse.vertices, [[1100, 300], [1600, 300], [1600, 700], [1100, 700]]
    )

    # classes, derived classes and their colours; lock state; measurements
    assert tumour.classification == "Tumor" and tumour.class_color == (200, 0, 0)
    assert ring.classification == "Tumor: Positive"
    assert ring.class_names == ("Tumor", "Positive") and ring.class_color == (200, 50, 50)
    assert glass.classification == "Glass" and glass.class_color == (0, 0, 255)
    assert ellipse.classification is None and parts.classification is None
    assert tumour.locked and not ring.locked and not glass.locked
    assert tumour.measurements == {"QuPath area": 123.0}
    assert all(r.object_type == "annotation" for r in regions)


def test_holes_and_parts_count_in_contains() -> None:
    ring = read_regions(QUPATH / "qupath-written-fc.geojson")[1]
    inside = ring.contains(np.array([700, 1350, 2000, 1350]), np.array([2300, 2550, 2800, 3000]))
    assert inside.tolist() == [True, False, True, False]  # (1350, 2550) is in the hole
    parts = read_regions(QUPATH / "qupath-written-fc.geojson")[4]
    assert parts.contains(np.array([775, 1975, 1300]), np.array([1075, 1075, 1075])).tolist() == [
        True,
        True,
        False,
    ]


@pytest.mark.parametrize("name", FIXTURES)
def test_qupath_files_round_trip_every_property(name: str, tmp_path: Path) -> None:
    regions = read_regions(QUPATH / name)
    path = write_regions(regions, tmp_path / "again.geojson")
    written = load_written(path)
    assert_qupath_accepts(written)
    original = json.loads((QUPATH / name).read_text())
    original = original["features"] if isinstance(original, dict) else original
    for before, after in zip(original[:5], written["features"], strict=True):
        assert after["id"] == before["id"]
        assert after["geometry"]["type"] == before["geometry"]["type"]
        assert shapely.geometry.shape(after["geometry"]).equals(
            shapely.geometry.shape(before["geometry"])
        )
        assert after["geometry"].get("isEllipse", False) == before["geometry"].get(
            "isEllipse", False
        )
        for key in ("objectType", "name", "classification", "measurements"):
            assert after["properties"].get(key) == before["properties"].get(key), key
        assert after["properties"]["isLocked"] == before["properties"].get("isLocked", False)
    again = read_regions(path)
    for a, b in zip(regions, again, strict=True):
        assert (a.id, a.name, a.classification, a.class_color, a.locked, a.shape_type) == (
            b.id,
            b.name,
            b.classification,
            b.class_color,
            b.locked,
            b.shape_type,
        )
        assert a.geometry.equals(b.geometry) and a.measurements == b.measurements


def test_every_property_qupath_writes_round_trips(tmp_path: Path) -> None:
    """Object colour, legacy list measurements with NaN, cells with nuclei, a string
    classification, a packed-int colour and unknown properties."""
    features = [
        {
            "type": "Feature",
            "id": "11111111-2222-4333-8444-555555555555",
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 0]]]},
            "properties": {
                "objectType": "annotation",
                "name": "legacy",
                "color": [10, 20, 30],
                "classification": "Stroma",
                "measurements": [{"name": "a", "value": 1.5}, {"name": "b", "value": "NaN"}],
                "metadata": {"source": "scanner 3"},
            },
        },
        {
            "type": "Feature",
            "id": "21111111-2222-4333-8444-555555555555",
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [40, 0], [40, 40], [0, 0]]]},
            "nucleusGeometry": {
                "type": "Polygon",
                "coordinates": [[[5, 2], [15, 2], [15, 8], [5, 2]]],
            },
            "properties": {
                "objectType": "cell",
                "classification": {"name": "Immune cells", "colorRGB": -6268256},
                "measurements": {"Nucleus: Area": 30.0, "missing": "NaN"},
            },
        },
    ]
    source = tmp_path / "in.geojson"
    source.write_text(json.dumps(features))
    (legacy,) = read_regions(source)
    assert legacy.color == (10, 20, 30) and legacy.classification == "Stroma"
    assert legacy.measurements["a"] == 1.5 and math.isnan(legacy.measurements["b"])
    assert legacy.extra_properties == {"metadata": {"source": "scanner 3"}}
    (cell,) = read_regions(source, object_types=("cell",))
    assert cell.object_type == "cell" and cell.class_color == (160, 90, 160)
    assert cell.nucleus_geometry.area == pytest.approx(30.0)
    assert math.isnan(cell.measurements["missing"])

    path = write_regions([legacy, cell], tmp_path / "out.geojson.gz")
    written = load_written(path)
    assert_qupath_accepts(written)
    first, second = written["features"]
    assert first["properties"]["color"] == [10, 20, 30]
    assert first["properties"]["classification"] == {
        "name": "Stroma",
        "color": [150, 200, 150],  # QuPath's default colour for Stroma
    }
    assert first["properties"]["measurements"] == {"a": 1.5, "b": "NaN"}
    assert first["properties"]["metadata"] == {"source": "scanner 3"}
    assert second["properties"]["objectType"] == "cell"
    assert second["nucleusGeometry"]["type"] == "Polygon"
    back = read_regions(path, object_types=("annotation", "cell"))
    assert [r.object_type for r in back] == ["annotation", "cell"]
    assert back[1].nucleus_geometry.equals(cell.nucleus_geometry)
    assert math.isnan(back[0].measurements["b"])


def test_a_classification_always_has_a_colour(tmp_path: Path) -> None:
    regions = [
        Region("a", np.array([[0, 0], [5, 0], [5, 5]], float), classification="Tumor"),
        Region("b", np.array([[0, 0], [5, 0], [5, 5]], float), classification="My class"),
        Region("c", np.array([[0, 0], [5, 0], [5, 5]], float), classification="Tumor: Positive"),
        Region(
            "d",
            np.array([[0, 0], [5, 0], [5, 5]], float),
            classification="Mine",
            class_color=(1, 2, 3),
            measurements={"nan": float("nan"), "inf": float("inf"), "n": np.float32(2.5)},
        ),
    ]
    data = regions_to_geojson(regions)
    classes = [f["properties"]["classification"] for f in data["features"]]
    assert classes[0] == {"name": "Tumor", "color": [200, 0, 0]}
    assert classes[1]["name"] == "My class" and classes[1]["color"] == list(
        class_colour("My class")
    )
    assert class_colour("My class") == class_colour("My class")  # stable across runs
    assert classes[2] == {"names": ["Tumor", "Positive"], "color": [200, 50, 50]}
    assert classes[3] == {"name": "Mine", "color": [1, 2, 3]}
    measurements = data["features"][3]["properties"]["measurements"]
    assert measurements == {"nan": "NaN", "inf": "Infinity", "n": 2.5}
    json.dumps(data, allow_nan=False)
    finite = regions_to_geojson(regions[:3])
    assert_qupath_accepts(finite)
    path = write_regions(regions, tmp_path / "r.geojson")
    back = read_regions(path)
    assert math.isnan(back[3].measurements["nan"]) and back[3].measurements["inf"] == math.inf


def test_shapes_drawn_in_napari_write_valid_qupath(tmp_path: Path) -> None:
    box = np.array([[100, 200], [300, 200], [300, 400], [100, 400]], float)
    regions = [
        Region("poly", np.array([[0, 0], [50, 0], [50, 60]], float)),
        Region("rect", box, shape_type="rectangle"),
        Region("ell", box, shape_type="ellipse"),  # napari: the 4 corners of the box
        Region("odd id", box, id="not-a-uuid"),
    ]
    assert regions[2].area_px() == pytest.approx(math.pi * 100 * 100, rel=1e-3)
    assert regions[1].area_px() == pytest.approx(200 * 200)
    path = write_regions(regions, tmp_path / "r.geojson")
    written = load_written(path)
    assert_qupath_accepts(written)
    assert written["features"][2]["geometry"]["isEllipse"] is True
    back = read_regions(path)
    assert [r.shape_type for r in back] == ["polygon", "rectangle", "ellipse", "polygon"]
    np.testing.assert_allclose(back[2].vertices, box)  # redrawn as an ellipse in napari
    assert back[2].area_px() == pytest.approx(regions[2].area_px())
    assert back[3].id == "not-a-uuid"  # kept, while the file holds a UUID for QuPath


def test_invalid_geometry_is_repaired_and_said_so(tmp_path: Path) -> None:
    bowtie = [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]
    path = tmp_path / "bow.geojson"
    path.write_text(
        json.dumps(
            [
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": bowtie},
                    "properties": {"objectType": "annotation", "name": "bowtie"},
                }
            ]
        )
    )
    with pytest.warns(RegionRepairedWarning, match=r"bow\.geojson.*bowtie.*Self-intersection"):
        (region,) = read_regions(path)
    assert region.geometry.is_valid and region.area_px() == pytest.approx(50.0)
    drawn = Region("drawn bowtie", np.array(bowtie[0][:-1], float))
    assert drawn.area_px() == pytest.approx(50.0) and drawn.geometry.is_valid


def _feature(geometry: Any = None, **properties: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": geometry
        if geometry is not None
        else {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 0]]]},
        "properties": {"objectType": "annotation", **properties},
    }


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"type": "FeatureCollection", "features": None}, r"'features'.*None"),
        ({"type": "FeatureCollection", "features": []}, r"no usable region"),
        (
            {
                "type": "FeatureCollection",
                "features": [_feature({"type": "Point", "coordinates": [1, 1]})],
            },
            r"no usable region.*1 not a polygon",
        ),
        ([_feature({"type": "Polygon"}, name="empty")], r"feature 0 \('empty'\).*coordinates"),
        ([_feature({"type": "Polygon", "coordinates": [[[0, "a"]]]})], r"feature 0"),
        ([_feature(classification=7)], r"classification 7"),
        ([_feature(classification={"color": [1, 2, 3]})], r"neither a name nor names"),
        ([_feature(classification={"name": "T", "color": "red"})], r"colour 'red'"),
        ([_feature(measurements={"a": "lots"})], r"measurement 'a'"),
        ([_feature(measurements=[{"name": "a"}])], r"not \{name, value\}"),
        ([_feature(measurements=5)], r"neither an object nor a list"),
        ([_feature(name=5)], r"name 5"),
        ([_feature(isLocked="yes")], r"isLocked"),
        ([_feature({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]})], r"no area"),
        ([_feature(), "not a feature"], r"feature 1 is not a GeoJSON Feature"),
        (
            [_feature({"type": "Polygon", "coordinates": [[[0, 0], [1e400, 0], [1, 1], [0, 0]]]})],
            r"not finite",
        ),
        ([{"type": "Feature", "geometry": None, "properties": {}}], r"geometry is missing"),
        ([{"type": "Feature", "properties": []}], r"'properties' is not an object"),
        ({"type": "Topology"}, r"expected a FeatureCollection"),
        ([_feature(objectType="detection")], r"no usable region.*1 detection"),
    ],
)
def test_malformed_files_give_a_typed_error(tmp_path: Path, content: Any, problem: str) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps(content))
    with pytest.raises(RegionFileError, match=problem) as caught:
        read_regions(path)
    assert caught.value.path == path and "bad.geojson" in str(caught.value)


def test_a_string_classification_is_read(tmp_path: Path) -> None:
    path = tmp_path / "s.geojson"
    path.write_text(json.dumps([_feature(classification="Tumor: Positive")]))
    (region,) = read_regions(path)
    assert region.classification == "Tumor: Positive" and region.class_names == (
        "Tumor",
        "Positive",
    )
    path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    assert read_regions(path, allow_empty=True) == []
    # our own autosave after every region was deleted reads back as no regions
    ours = write_regions([], tmp_path / "autosave.geojson")
    assert_qupath_accepts(load_written(ours))
    assert read_regions(ours) == []


def test_tile_geojson_export_is_accepted_by_qupath(tmp_path: Path) -> None:
    from omicslens.core.exports import TileTable, write_geojson
    from omicslens.core.grid import TileGrid

    grid = TileGrid(width=1000, height=700, mpp_x=0.5, mpp_y=0.5, patch_px=100, spacing_um=1.0)
    values = np.array([[1.0, np.nan], [2.0, 3.0]], dtype=np.float32)
    table = TileTable(grid, np.array([0, 3]), values, ["A", "B"], slide_id="s")
    path = write_geojson(table, tmp_path / "tiles.geojson")
    written = load_written(path)
    assert_qupath_accepts(written)
    assert written["features"][0]["properties"]["measurements"] == {"A": 1.0, "B": "NaN"}
