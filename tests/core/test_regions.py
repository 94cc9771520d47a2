"""Regions: QuPath GeoJSON round trip, point-in-polygon, and statistics on the tile grid
checked against a direct numpy/scipy computation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from omicslens.core.grid import TileGrid
from omicslens.core.region_stats import (
    benjamini_hochberg,
    compare,
    rest_of_tissue,
    summarise,
    tiles_in_region,
    top_outputs,
)
from omicslens.core.regions import Region, RegionFileError, read_regions, write_regions
from omicslens.core.store import PredictionStore

GRID = TileGrid(width=2000, height=2000, mpp_x=0.5, mpp_y=0.5, patch_px=100, spacing_um=1.0)
NAMES = ["ERBB2", "CD74", "MKI67"]


def test_geojson_round_trip_is_exact(tmp_path: Path) -> None:
    regions = [
        Region(
            "tumour",
            np.array([[10.5, 20.25], [400.0, 20.0], [380.0, 300.0]]),
            classification="Tumor",
        ),
        Region(
            "stroma box",
            np.array([[0, 0], [50, 0], [50, 60], [0, 60]], float),
            shape_type="rectangle",
        ),
    ]
    for name in ("r.geojson", "r.geojson.gz"):
        path = write_regions(regions, tmp_path / name)
        back = read_regions(path)
        assert [r.name for r in back] == ["tumour", "stroma box"]
        assert [r.id for r in back] == [r.id for r in regions]
        assert back[0].classification == "Tumor" and back[1].shape_type == "rectangle"
        for a, b in zip(regions, back, strict=True):
            np.testing.assert_array_equal(a.vertices, b.vertices)
    data = json.loads((tmp_path / "r.geojson").read_text())
    assert data["features"][0]["properties"]["objectType"] == "annotation"
    with pytest.raises(FileExistsError):
        write_regions(regions, tmp_path / "r.geojson")


def test_qupath_export_with_detections_and_multipolygons(tmp_path: Path) -> None:
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 0]]]},
            "properties": {"objectType": "detection"},
        },
        {
            "type": "Feature",
            "id": "x",
            "geometry": {
                "type": "MultiPolygon",
                "coordinates": [
                    [[[0, 0], [10, 0], [10, 10], [0, 0]]],
                    [[[20, 20], [30, 20], [30, 30], [20, 20]]],
                ],
            },
            "properties": {"objectType": "annotation", "name": "islands"},
        },
    ]
    (tmp_path / "q.geojson").write_text(json.dumps(features))
    regions = read_regions(tmp_path / "q.geojson")
    # a MultiPolygon stays one region, with its own id; both parts count
    assert [(r.name, r.id) for r in regions] == [("islands", "x")]
    assert regions[0].area_px() == pytest.approx(2 * 50.0)
    assert regions[0].contains(np.array([8, 28, 15]), np.array([2, 22, 15])).tolist() == [
        True,
        True,
        False,
    ]
    grid = TileGrid(width=40, height=40, mpp_x=0.5, mpp_y=0.5, patch_px=5, spacing_um=1.0)
    np.testing.assert_array_equal(
        tiles_in_region(grid, regions[0]),
        np.flatnonzero(regions[0].contains(*grid.centres(np.arange(grid.size)).T)),
    )
    (tmp_path / "bad.geojson").write_text("{not json")
    with pytest.raises(RegionFileError, match=r"bad\.geojson"):
        read_regions(tmp_path / "bad.geojson")


def test_point_in_polygon_and_area() -> None:
    square = Region("s", np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float))
    assert square.contains(np.array([5, 15, -1]), np.array([5, 5, 5])).tolist() == [
        True,
        False,
        False,
    ]
    assert square.area_px() == pytest.approx(100.0)
    triangle = Region("t", np.array([[0, 0], [10, 0], [0, 10]], float))
    assert triangle.contains(np.array([2, 8]), np.array([2, 8])).tolist() == [True, False]


def _even_odd(vertices: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The old hand-written crossing test, as a reference."""
    inside = np.zeros(x.shape, dtype=bool)
    vx, vy = vertices[:, 0], vertices[:, 1]
    for i in range(len(vx)):
        x1, y1, x2, y2 = vx[i - 1], vy[i - 1], vx[i], vy[i]
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = (x2 - x1) * (y - y1) / (y2 - y1) + x1
        inside ^= crosses & (x < at)
    return inside


def test_shapely_contains_matches_the_crossing_test_on_a_big_region() -> None:
    t = np.linspace(0, 2 * np.pi, 5000, endpoint=False)
    r = 1 + 0.3 * np.sin(7 * t)
    vertices = np.stack([1000 + 900 * r * np.cos(t), 1000 + 900 * r * np.sin(t)], 1)
    region = Region("star", vertices)
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-200, 2200, (2, 20_000))
    np.testing.assert_array_equal(region.contains(x, y), _even_odd(vertices, x, y))
    x_, y_ = vertices[:, 0], vertices[:, 1]
    shoelace = abs(np.dot(x_, np.roll(y_, -1)) - np.dot(y_, np.roll(x_, -1))) / 2
    assert region.area_px() == pytest.approx(shoelace)
    inside = tiles_in_region(GRID, region)
    centres = GRID.centres(np.arange(GRID.size))
    np.testing.assert_array_equal(
        inside, np.flatnonzero(_even_odd(vertices, centres[:, 0], centres[:, 1]))
    )


def test_holes_leave_tiles_out() -> None:
    from shapely.geometry import Polygon

    outer = [(0, 0), (2000, 0), (2000, 2000), (0, 2000)]
    hole = [(600, 600), (1400, 600), (1400, 1400), (600, 1400)]
    ring = Region("ring", np.array(outer, float), geometry=Polygon(outer, [hole]))
    np.testing.assert_array_equal(ring.vertices, outer)
    assert ring.area_px() == pytest.approx(2000**2 - 800**2)
    inside = tiles_in_region(GRID, ring)
    assert len(inside) == 100 - 16  # the 4 x 4 tiles of the hole are out
    centres = GRID.centres(inside)
    in_hole = (centres > 600).all(1) & (centres < 1400).all(1)
    assert not in_hole.any()


def _store() -> tuple[PredictionStore, np.ndarray]:
    rng = np.random.default_rng(0)
    store = PredictionStore(GRID, NAMES)
    tissue = np.ones(GRID.shape, dtype=bool)
    tissue[:, :2] = False
    done = np.flatnonzero(tissue.ravel())[::2]  # half the tissue tiles predicted
    values = rng.normal(size=(len(done), 3)).astype(np.float32)
    rows, _ = GRID.row_col(done)
    values[:, 0] += (rows < 5) * 2.0  # ERBB2 high in the top rows
    store.put(done, values)
    return store, tissue


def test_summary_matches_a_direct_computation() -> None:
    store, tissue = _store()
    region = Region("top", np.array([[0, 0], [2000, 0], [2000, 1000], [0, 1000]], float))
    summary = summarise(region, store, tissue)
    centres = GRID.centres(np.arange(GRID.size))
    inside = np.flatnonzero(centres[:, 1] < 1000)
    on_tissue = inside[tissue.ravel()[inside]]
    done = on_tissue[store.is_done(on_tissue)]
    assert summary.tiles == len(inside) == 50  # rows 0-4 of the 10 x 10 grid
    assert summary.tissue_tiles == len(on_tissue) and summary.predicted == len(done)
    assert summary.unpredicted == len(on_tissue) - len(done) > 0
    np.testing.assert_allclose(summary.mean, store.get(done).mean(0), rtol=1e-5)
    np.testing.assert_allclose(summary.sd, store.get(done).std(0, ddof=1), rtol=1e-4)
    assert summary.area_mm2 == pytest.approx(2000 * 1000 * 0.25 / 1e6)
    assert top_outputs(summary, NAMES, 1)[0][0] == "ERBB2"


def test_region_vs_rest_matches_scipy_and_bh() -> None:
    store, tissue = _store()
    region = Region("top", np.array([[0, 0], [2000, 0], [2000, 1000], [0, 1000]], float))
    inside = tiles_in_region(GRID, region)
    inside = inside[tissue.ravel()[inside]]
    rest = rest_of_tissue(GRID, tissue, inside)
    result = compare(store, inside, rest)
    a = store.get(inside[store.is_done(inside)])
    b = store.get(rest[store.is_done(rest)])
    expected = stats.mannwhitneyu(a, b, alternative="two-sided", axis=0)
    np.testing.assert_allclose(result.p, expected.pvalue)
    np.testing.assert_allclose(result.difference, a.mean(0) - b.mean(0), rtol=1e-5)
    assert result.q[0] < 1e-3 and min(result.q[1:]) > 0.05  # only ERBB2 differs
    assert result.n_a == len(a) and result.n_b == len(b)


def test_benjamini_hochberg() -> None:
    q = benjamini_hochberg(np.array([0.01, 0.04, 0.03, np.nan]))
    np.testing.assert_allclose(q[:3], [0.03, 0.04, 0.04])
    assert np.isnan(q[3])


def test_autosave_beside_the_slide_or_in_the_data_folder(tmp_path: Path, monkeypatch) -> None:
    from omicslens.core import regions as regions_module
    from omicslens.core.regions import autosave_path

    slide = tmp_path / "s.svs"
    slide.write_bytes(b"slide bytes")
    assert autosave_path(slide, tmp_path / "data") == tmp_path / "s.svs.omicslens-regions.geojson"
    monkeypatch.setattr(regions_module.os, "access", lambda *args: False)  # read-only folder
    fallback = autosave_path(slide, tmp_path / "data")
    assert fallback.parent == tmp_path / "data" / "regions" and fallback.suffix == ".geojson"


# -- malformed QuPath GeoJSON (issue 13 fuzz): typed errors naming file and feature ------
def _square_feature(**properties: object) -> dict:
    ring = [[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"objectType": "annotation", **properties},
    }


def _write(tmp_path: Path, document: object, name: str = "in.geojson") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def test_deeply_nested_json_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.geojson"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RegionFileError, match="nested too deeply") as raised:
        read_regions(path)
    assert str(path) in str(raised.value)


def test_deeply_nested_coordinates_name_the_feature(tmp_path: Path) -> None:
    nested = "[" * 900 + "1" + "]" * 900  # parses as JSON, but is no geometry
    text = json.dumps([_square_feature(name="fine"), _square_feature(name="deep")])
    head, _, tail = text.rpartition('"coordinates": ')
    tail = tail[tail.index("]]]") + 3 :]
    path = tmp_path / "deep.geojson"
    path.write_text(head + '"coordinates": ' + nested + tail)
    with pytest.raises(RegionFileError, match=r"feature 1 \('deep'\)") as raised:
        read_regions(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    "name", ["a\x00b", "bell\x07", "a\ud800"], ids=["nul", "bell", "surrogate"]
)
def test_names_with_control_characters_are_refused(tmp_path: Path, name: str) -> None:
    """A NUL made regions.csv unreadable; a lone surrogate could not be written at all."""
    document = {
        "type": "FeatureCollection",
        "features": [_square_feature(name="ok"), _square_feature(name=name)],
    }
    path = tmp_path / "names.geojson"
    path.write_text(json.dumps(document))  # ensure_ascii: the surrogate as an escape
    with pytest.raises(RegionFileError, match=r"feature 1.*name") as raised:
        read_regions(path)
    assert str(path) in str(raised.value)


def test_multi_line_names_are_kept(tmp_path: Path) -> None:
    """QuPath allows newlines and tabs in names; our CSV writers quote them."""
    document = {"type": "FeatureCollection", "features": [_square_feature(name="a\nb\tc")]}
    path = tmp_path / "names.geojson"
    path.write_text(json.dumps(document))
    assert [region.name for region in read_regions(path)] == ["a\nb\tc"]


def test_classification_with_a_control_character_is_refused(tmp_path: Path) -> None:
    feature = _square_feature(classification={"name": "T\x00", "color": [1, 2, 3]})
    path = _write(tmp_path, [feature])
    with pytest.raises(RegionFileError, match=r"feature 0.*classification"):
        read_regions(path)


def test_colour_components_outside_0_255_are_refused(tmp_path: Path) -> None:
    feature = _square_feature(classification={"name": "T", "color": [1e308, -5, 3]})
    with pytest.raises(RegionFileError, match=r"feature 0.*0-255"):
        read_regions(_write(tmp_path, [feature]))


def test_a_point_annotation_is_skipped_with_a_warning_naming_it(tmp_path: Path) -> None:
    from omicslens.core.regions import RegionSkippedWarning

    point = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [5, 5]},
        "properties": {"objectType": "annotation", "name": "dot"},
    }
    path = _write(tmp_path, [_square_feature(name="square"), point])
    with pytest.warns(RegionSkippedWarning, match=r"feature 1 \('dot'\).*Point") as caught:
        regions = read_regions(path)
    assert [r.name for r in regions] == ["square"]
    assert str(path) in str(caught[0].message)


def test_a_collection_of_only_points_is_an_error_not_zero_regions(tmp_path: Path) -> None:
    point = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 5]}}
    path = _write(tmp_path, {"type": "FeatureCollection", "features": [point, point]})
    with pytest.warns(UserWarning), pytest.raises(RegionFileError, match="no usable region"):
        read_regions(path)


def test_corrupt_gzip_is_a_typed_error(tmp_path: Path) -> None:
    import gzip

    data = bytearray(gzip.compress(json.dumps([_square_feature()]).encode()))
    data[20:30] = b"\xff" * 10
    path = tmp_path / "bad.geojson.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(RegionFileError) as raised:
        read_regions(path)
    assert str(path) in str(raised.value)
