"""Exports re-read by their consumers: CSV, QuPath GeoJSON, AnnData, OME-Zarr."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from omicslens.core.exports import TileTable, write_csv, write_geojson, write_h5ad, write_ome_zarr
from omicslens.core.exports.tables import _TILE_NAMESPACE, tile_ids
from omicslens.core.grid import TileGrid

GRID = TileGrid(width=1000, height=700, mpp_x=0.5, mpp_y=0.5, patch_px=100, spacing_um=1.0)
NAMES = ["ERBB2", "CD74"]


@pytest.fixture
def table() -> TileTable:
    indices = np.array([0, 3, 7, GRID.size - 1])
    values = np.stack([indices * 0.5, -indices * 1.0], axis=1).astype(np.float32)
    return TileTable(GRID, indices, values, NAMES, slide_id="abc")


def test_csv_is_wsinfer_style(table: TileTable, tmp_path: Path) -> None:
    path = write_csv(table, tmp_path / "tiles.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "minx,miny,width,height,pred_ERBB2,pred_CD74"
    assert lines[2].split(",")[:4] == ["600", "0", "200", "200"]  # tile 3: col 3 of 5
    assert float(lines[2].split(",")[4]) == pytest.approx(1.5)
    with pytest.raises(FileExistsError, match="exists"):
        write_csv(table, path)
    assert (path.stat().st_mode & 0o777) != 0o600  # a normal file, not mkstemp's mode


def test_geojson_follows_qupath_structure(table: TileTable, tmp_path: Path) -> None:
    path = write_geojson(table, tmp_path / "tiles.geojson.gz")
    data = json.loads(gzip.decompress(path.read_bytes()))
    assert data["type"] == "FeatureCollection" and len(data["features"]) == 4
    feature = data["features"][1]
    uuid.UUID(feature["id"])
    assert feature["properties"]["objectType"] == "tile"
    assert feature["properties"]["measurements"] == {"ERBB2": 1.5, "CD74": -3.0}
    assert feature["geometry"]["coordinates"][0][0] == [600, 0]
    again = write_geojson(table, tmp_path / "again.geojson.gz")
    ids = [f["id"] for f in json.loads(gzip.decompress(again.read_bytes()))["features"]]
    assert ids == [f["id"] for f in data["features"]]  # stable ids across runs


def test_tile_ids_are_the_uuid5_of_slide_and_index() -> None:
    indices = np.array([0, 9, 10, 123456789])
    for slide_id in ("", "abc", "sha256:0f/ü"):
        expected = [str(uuid.uuid5(_TILE_NAMESPACE, f"{slide_id}/{i}")) for i in indices]
        assert tile_ids(slide_id, indices) == expected


def test_non_finite_values_are_written_as_qupath_strings(tmp_path: Path) -> None:
    values = np.array([[np.nan, 1.0], [np.inf, -np.inf]], dtype=np.float32)
    table = TileTable(GRID, np.array([1, 2]), values, NAMES, slide_id="abc")
    data = json.loads(write_geojson(table, tmp_path / "t.geojson").read_text())
    measurements = [f["properties"]["measurements"] for f in data["features"]]
    assert measurements == [
        {"ERBB2": "NaN", "CD74": 1.0},
        {"ERBB2": "Infinity", "CD74": "-Infinity"},
    ]
    rows = write_csv(table, tmp_path / "t.csv").read_text().splitlines()[1:]
    assert [row.split(",")[4:] for row in rows] == [["nan", "1"], ["inf", "-inf"]]


def test_float32_values_keep_their_exact_value_in_geojson(tmp_path: Path) -> None:
    values = np.array([[0.1, 1e-30]], dtype=np.float32)
    table = TileTable(GRID, np.array([5]), values, NAMES)
    data = json.loads(write_geojson(table, tmp_path / "t.geojson").read_text())
    written = data["features"][0]["properties"]["measurements"]
    assert [written[name] for name in NAMES] == [float(v) for v in values[0]]


def test_h5ad_opens_in_anndata(table: TileTable, tmp_path: Path) -> None:
    import anndata

    path = write_h5ad(table, tmp_path / "tiles.h5ad")
    adata = anndata.read_h5ad(path)
    assert list(adata.var_names) == NAMES
    np.testing.assert_allclose(adata.X, table.values)
    np.testing.assert_allclose(adata.obsm["spatial"][1], [700.0, 100.0])  # centre of tile 3
    assert adata.uns["omicslens"]["mpp"] == pytest.approx(0.5)


def test_ome_zarr_validates_and_reopens(table: TileTable, tmp_path: Path) -> None:
    rasters = np.full((2, *GRID.shape), np.nan, dtype=np.float32)
    rows, cols = GRID.row_col(table.indices)
    rasters[:, rows, cols] = table.values.T
    path = write_ome_zarr(rasters, GRID, NAMES, tmp_path / "p.ome.zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    nodes = list(Reader(parse_url(str(path)))())
    assert nodes and any(isinstance(spec, Multiscales) for spec in nodes[0].specs)
    assert [axis["unit"] for axis in nodes[0].metadata["axes"][1:]] == ["micrometer"] * 2
    level0 = np.asarray(nodes[0].data[0])
    np.testing.assert_array_equal(level0, rasters)
    from omicslens._napari.reader import napari_get_reader

    layers = napari_get_reader(str(path))(str(path))
    _data, kwargs, kind = layers[0]
    assert kind == "image" and kwargs["scale"] == pytest.approx((100.0, 100.0))
    assert kwargs["name"][0].startswith("ERBB2")


def test_region_crop_as_ome_tiff(tmp_path: Path) -> None:
    import tifffile

    from omicslens.core import open_slide
    from omicslens.core.exports.crop import write_region_ome_tiff
    from omicslens.core.regions import Region
    from omicslens.core.store import PredictionStore
    from tests.conftest import CMU1

    with open_slide(CMU1) as slide:
        grid = TileGrid.for_slide(slide, patch_px=100, spacing_um=1.0)  # 200 px tiles
        store = PredictionStore(grid, NAMES)
        tiles = grid.tiles_in_rect(0, 0, 2220, 2967)
        store.put(tiles, np.stack([tiles * 1.0, -tiles * 1.0], 1))
        region = Region("r", np.array([[250, 450], [850, 450], [850, 1050], [250, 1050]], float))
        path = write_region_ome_tiff(slide, region, store, [0, 1], tmp_path / "r.ome.tif")
        expected_rgb = slide.read_region(250, 450, 600, 600)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and len(tif.series) == 2
        rgb, overlay = tif.series[0].asarray(), tif.series[1].asarray()
        assert 'PhysicalSizeX="0.499"' in tif.ome_metadata
    np.testing.assert_array_equal(rgb, expected_rgb)
    assert overlay.shape == (2, 600, 600)
    # pixel (0, 0) is level-0 (250, 450): tile col 250 // 200.4 = 1, row 450 // 200.4 = 2
    assert overlay[0, 0, 0] == grid.index(2, 1)
    with pytest.raises(FileExistsError):
        write_region_ome_tiff(slide, region, store, [0], path)
