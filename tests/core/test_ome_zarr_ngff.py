"""The OME-Zarr prediction raster against the OME-NGFF 0.4 validators themselves:
ome-zarr-models' v04 Image model and the official 0.4 JSON schemas (tests/data/ngff-0.4)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import zarr
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from omicslens.core.exports import write_ome_zarr
from omicslens.core.exports.zarr_raster import channel_window
from omicslens.core.grid import TileGrid
from tests.conftest import DATA

GRID = TileGrid(width=4000, height=2600, mpp_x=0.5, mpp_y=0.5, patch_px=100, spacing_um=1.0)
NAMES = ["ERBB2", "CD74", "MKI67", "empty"]


@pytest.fixture
def raster(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(3)
    rasters = np.full((len(NAMES), *GRID.shape), np.nan, dtype=np.float32)
    rasters[0] = rng.normal(2.0, 1.0, GRID.shape)
    rasters[1, :5] = rng.gamma(2.0, 3.0, (5, GRID.cols))
    rasters[1, 0, 0] = np.inf  # not a finite value: must not widen the window
    rasters[2] = 7.0  # constant
    # rasters[3] is all NaN (nothing predicted)
    return write_ome_zarr(rasters, GRID, NAMES, tmp_path / "p.ome.zarr"), rasters


def _attrs(path: Path) -> dict:
    return json.loads((path / ".zattrs").read_text())


def test_valid_for_ome_zarr_models_v04(raster: tuple[Path, np.ndarray]) -> None:
    from ome_zarr_models.v04.image import Image

    path, _ = raster
    image = Image.from_zarr(zarr.open_group(str(path), mode="r"))
    (multiscale,) = image.attributes.multiscales
    assert [a.name for a in multiscale.axes] == ["c", "y", "x"]
    assert len(multiscale.datasets) == 3
    omero = image.attributes.omero
    assert omero is not None and [c.label for c in omero.channels] == NAMES
    for channel in omero.channels:
        assert channel.color and channel.window is not None


def test_valid_for_the_official_ngff_04_schemas(raster: tuple[Path, np.ndarray]) -> None:
    path, _ = raster
    schemas = {
        name: json.loads((DATA / "ngff-0.4" / name).read_text())
        for name in ("image.schema", "strict_image.schema")
    }
    registry: Registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012))
        for schema in schemas.values()
    )
    attrs = _attrs(path)
    for schema in schemas.values():
        validator = jsonschema.Draft202012Validator(schema, registry=registry)
        errors = [e.message for e in validator.iter_errors(attrs)]
        assert errors == []


def test_channel_colours_and_windows_come_from_the_values(
    raster: tuple[Path, np.ndarray],
) -> None:
    path, rasters = raster
    channels = _attrs(path)["omero"]["channels"]
    assert len(channels) == len(rasters)
    for channel in channels:
        assert isinstance(channel["color"], str) and len(channel["color"]) == 6
        int(channel["color"], 16)
        window = channel["window"]
        assert set(window) == {"min", "max", "start", "end"}
        assert all(np.isfinite(v) for v in window.values())
        assert window["min"] <= window["start"] < window["end"] <= window["max"]
    erbb2, cd74, constant, empty = (c["window"] for c in channels)
    finite = rasters[0][np.isfinite(rasters[0])]
    assert erbb2["min"] == pytest.approx(float(finite.min()))
    assert erbb2["max"] == pytest.approx(float(finite.max()))
    assert erbb2["start"] == pytest.approx(float(np.percentile(finite, 1)))
    assert erbb2["end"] == pytest.approx(float(np.percentile(finite, 99)))
    assert np.isfinite(cd74["max"])  # the inf is ignored
    assert constant["min"] == 7.0 and constant["start"] == 7.0 and constant["end"] == 8.0
    assert empty == {"min": 0.0, "max": 1.0, "start": 0.0, "end": 1.0}
    assert len({c["color"] for c in channels}) == len(channels)
    assert channel_window(np.array([np.nan])) == empty


def test_wrong_shape_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outputs"):
        write_ome_zarr(np.zeros((2, 3, 3)), GRID, ["one"], tmp_path / "x.ome.zarr")
