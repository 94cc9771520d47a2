"""The OME-Zarr prediction raster in napari-ome-zarr, the reader napari users have: it
used to crash with ``IndexError ... 'colormap' argument only provided 0 values``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from omicslens.core.exports import write_ome_zarr
from omicslens.core.grid import TileGrid

pytestmark = [
    pytest.mark.gui,
    pytest.mark.skipif(
        not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen",
        reason="needs a display: run under xvfb-run",
    ),
]

GRID = TileGrid(width=1000, height=700, mpp_x=0.5, mpp_y=0.5, patch_px=100, spacing_um=1.0)
NAMES = ["ERBB2", "CD74"]


def test_napari_ome_zarr_opens_the_raster(tmp_path: Path, make_napari_viewer) -> None:
    import napari_ome_zarr  # a testing dependency: the consumer itself, never skipped

    rasters = np.full((2, *GRID.shape), np.nan, dtype=np.float32)
    rasters[0, 0, :] = [1, 2, 3, 4, 5]
    rasters[1, 1, :] = [-1, -2, -3, -4, -5]
    path = write_ome_zarr(rasters, GRID, NAMES, tmp_path / "p.ome.zarr")

    reader = napari_ome_zarr.napari_get_reader(str(path))
    assert reader is not None
    layers = reader(str(path))
    assert layers
    data, kwargs, kind = layers[0]
    assert kind == "image"
    np.testing.assert_array_equal(np.asarray(data[0]), rasters)
    assert kwargs["channel_axis"] == 0
    assert [name.split(": ")[-1] for name in kwargs["name"]] == NAMES
    assert len(kwargs["colormap"]) == 2 and len(kwargs["contrast_limits"]) == 2

    viewer = make_napari_viewer(show=False)
    added = viewer.add_image(data, **kwargs)  # where the IndexError used to be raised
    assert [layer.name.split(": ")[-1] for layer in added] == NAMES
    assert added[0].contrast_limits[0] < added[0].contrast_limits[1]
    np.testing.assert_allclose(added[0].scale[-2:], (100.0, 100.0))  # micrometres per tile
