"""While tiles stream in, the automatic contrast and the key move in the frame that draws
new tiles, at most once a second, and never in a frame of their own; the last tiles'
contrast is applied once updates pause."""

from __future__ import annotations

import numpy as np

from omicslens._napari import overlay as overlay_module
from omicslens._napari.overlay import PredictionOverlay
from omicslens.core.grid import TileGrid


def _overlay(viewer) -> PredictionOverlay:
    grid = TileGrid(width=640, height=640, mpp_x=0.5, mpp_y=0.5, patch_px=64, spacing_um=0.5)
    raster = np.full((grid.rows, grid.cols), np.nan, dtype=np.float32)
    return PredictionOverlay(viewer, grid, raster, "test", ["ERBB2"])


def test_streaming_contrast_moves_with_the_tiles_and_settles_after_a_pause(
    make_napari_viewer, qtbot, monkeypatch
) -> None:
    monkeypatch.setattr(overlay_module, "STREAMING_CONTRAST_MS", 1500)
    viewer = make_napari_viewer(show=True)
    overlay = _overlay(viewer)
    overlay._settle.setInterval(1500)
    overlay.update_tiles(np.array([0, 1]), np.array([0.0, 1.0]))  # first batch: at once
    assert overlay.layer.contrast_limits[1] < 1.0 + 1e-6
    assert "to 0.99" in overlay.legend.text.text  # the key in the same call
    key_after_first = overlay.legend.text.text

    overlay.update_tiles(np.array([2]), np.array([10.0]))  # inside the second: waits
    high_before = overlay.layer.contrast_limits[1]
    assert high_before < 2.0
    assert overlay.legend.text.text == key_after_first
    assert overlay._settle.isActive()

    qtbot.wait(100)
    overlay.update_tiles(np.array([3]), np.array([10.0]))  # still inside: restarts settling
    assert overlay._settle.remainingTime() > 1000
    assert overlay.layer.contrast_limits[1] == high_before  # no frame of its own
    qtbot.waitUntil(lambda: overlay.layer.contrast_limits[1] > 5.0, timeout=6000)
    assert "to 10" in overlay.legend.text.text  # the pause applied the last tiles' range


def test_after_a_second_the_next_tiles_rescale_in_their_own_call(
    make_napari_viewer, qtbot, monkeypatch
) -> None:
    monkeypatch.setattr(overlay_module, "STREAMING_CONTRAST_MS", 200)
    viewer = make_napari_viewer(show=True)
    overlay = _overlay(viewer)
    overlay.update_tiles(np.array([0, 1]), np.array([0.0, 1.0]))
    qtbot.wait(250)
    overlay.update_tiles(np.array([2, 3]), np.array([10.0, 10.0]))  # synchronous rescale
    assert overlay.layer.contrast_limits[1] > 5.0
    assert not overlay._settle.isActive()  # nothing left to draw in a frame of its own


def test_a_fixed_contrast_is_kept_while_tiles_arrive(make_napari_viewer, qtbot) -> None:
    viewer = make_napari_viewer(show=True)
    overlay = _overlay(viewer)
    overlay.set_fixed_contrast(0.25, 1.5)
    assert "colours 0.25 to 1.5" in overlay.legend.text.text
    overlay.update_tiles(np.array([0, 1]), np.array([0.0, 100.0]))
    qtbot.wait(100)
    assert tuple(overlay.layer.contrast_limits) == (0.25, 1.5)
