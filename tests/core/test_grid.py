"""The model's tile grid maps micrometres onto level-0 pixels exactly."""

from __future__ import annotations

import numpy as np
import pytest

from omicslens.core.grid import TileGrid


def test_tile_size_follows_model_spacing_not_scanner_pixels() -> None:
    grid = TileGrid(width=2220, height=2967, mpp_x=0.499, mpp_y=0.499, patch_px=224, spacing_um=0.5)
    assert grid.tile_um == pytest.approx(112.0)
    assert grid.tile_w == pytest.approx(224 * 0.5 / 0.499)
    assert grid.cols == 10  # 2220 / 224.449 = 9.89 -> 10 (last column runs past the edge)
    assert grid.rows == 14  # 2967 / 224.449 = 13.2 -> 14


def test_exact_multiple_has_no_extra_column() -> None:
    grid = TileGrid(width=448, height=224, mpp_x=0.5, mpp_y=0.5, patch_px=224, spacing_um=0.5)
    assert grid.shape == (1, 2)


def test_tiles_in_rect_are_exactly_the_overlapping_ones() -> None:
    grid = TileGrid(width=1000, height=1000, mpp_x=1.0, mpp_y=1.0, patch_px=100, spacing_um=1.0)
    tiles = grid.tiles_in_rect(150, 250, 350, 260)
    rows, cols = grid.row_col(tiles)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(2, 1), (2, 2), (2, 3)]
    assert len(grid.tiles_in_rect(-500, -500, -10, -10)) == 0
    assert len(grid.tiles_in_rect(0, 0, 5000, 5000)) == 100


def test_centre_first_orders_by_distance() -> None:
    grid = TileGrid(width=500, height=500, mpp_x=1.0, mpp_y=1.0, patch_px=100, spacing_um=1.0)
    ordered = grid.centre_first(grid.tiles_in_rect(0, 0, 500, 500), 250, 250)
    assert ordered[0] == grid.index(2, 2)
    centres = grid.centres(ordered)
    distance = np.hypot(centres[:, 0] - 250, centres[:, 1] - 250)
    assert np.all(np.diff(distance) >= -1e-9)


def test_bounds_and_signature() -> None:
    grid = TileGrid(width=1000, height=800, mpp_x=0.25, mpp_y=0.25, patch_px=224, spacing_um=0.5)
    x, y, w, h = grid.bounds(int(grid.index(1, 2)))
    assert (x, y, w, h) == pytest.approx((896.0, 448.0, 448.0, 448.0))
    other = TileGrid(width=1000, height=800, mpp_x=0.26, mpp_y=0.26, patch_px=224, spacing_um=0.5)
    assert grid.signature() != other.signature()


@pytest.mark.parametrize("field", ["width", "patch_px", "mpp_x", "spacing_um"])
def test_invalid_grid_is_rejected(field: str) -> None:
    kwargs = dict(width=10, height=10, mpp_x=1.0, mpp_y=1.0, patch_px=4, spacing_um=1.0)
    kwargs[field] = 0
    with pytest.raises(ValueError, match=field):
        TileGrid(**kwargs)  # type: ignore[arg-type]


def test_context_window_is_centred_on_a_smaller_tile() -> None:
    # a model that sees 448 um of context (320 px at 1.4 um/px) to predict a 112 um tile
    grid = TileGrid(
        width=4000,
        height=4000,
        mpp_x=0.5,
        mpp_y=0.5,
        patch_px=320,
        spacing_um=1.4,
        tile_size_um=112.0,
    )
    assert grid.tile_um == pytest.approx(112.0)
    assert grid.window_um == pytest.approx(448.0)
    assert grid.cols == 18  # 2000 um / 112 um
    x, y, w, h = grid.bounds(int(grid.index(2, 3)))
    wx, wy, ww, wh = grid.window(int(grid.index(2, 3)))
    assert (ww, wh) == pytest.approx((896.0, 896.0))
    assert (wx + ww / 2, wy + wh / 2) == pytest.approx((x + w / 2, y + h / 2))
    plain = TileGrid(width=4000, height=4000, mpp_x=0.5, mpp_y=0.5, patch_px=320, spacing_um=1.4)
    assert plain.signature() != grid.signature()


@pytest.mark.parametrize(
    "grid",
    [
        TileGrid(20000, 20000, 0.2527, 0.2527, 224, 0.5),
        TileGrid(99999, 77777, 0.5, 0.4999, 224, 0.5, 55.0),
        TileGrid(1001, 999, 0.3, 0.3, 7, 0.25),  # 5.83 px tiles: every rounding case
    ],
)
def test_bounds_int_many_rounds_each_tile_edge_as_python_does(grid: TileGrid) -> None:
    indices = np.arange(grid.size) if grid.size < 50_000 else np.arange(0, grid.size, 37)
    expected = []
    for index in indices.tolist():  # from the fractional bounds, with Python's round
        x, y, w, h = grid.bounds(index)
        expected.append((round(x), round(y), round(x + w) - round(x), round(y + h) - round(y)))
    assert grid.bounds_int(int(indices[-1])) == expected[-1]
    assert np.array_equal(grid.bounds_int_many(indices), expected)
    assert grid.bounds_int_many(np.empty(0, dtype=np.int64)).shape == (0, 4)
