"""Predictions survive on disk, stay bounded in memory, and never leak across models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from omicslens.core.grid import TileGrid
from omicslens.core.store import CHUNK, PredictionStore, open_store

GRID = TileGrid(width=40000, height=30000, mpp_x=0.5, mpp_y=0.5, patch_px=100, spacing_um=1.0)
NAMES = ["ERBB2", "CD74", "MKI67"]


def _values(indices: np.ndarray) -> np.ndarray:
    return np.stack([indices * 1.0, indices * 2.0, -indices * 1.0], axis=1).astype(np.float32)


def test_put_get_and_done(tmp_path: Path) -> None:
    store = open_store(tmp_path, "slideA", "modelA", GRID, NAMES)
    indices = np.array([0, 5, GRID.size - 1, int(GRID.index(70, 130))])
    store.put(indices, _values(indices))
    np.testing.assert_array_equal(store.get(indices), _values(indices))
    assert store.is_done(np.array([0, 1])).tolist() == [True, False]
    assert np.isnan(store.get(np.array([1]))).all()
    raster = store.raster(1)
    assert raster.shape == GRID.shape
    assert raster[70, 130] == pytest.approx(2.0 * indices[3])
    assert np.count_nonzero(~np.isnan(raster)) == 4
    assert store.done_count == 4


def test_reopening_shows_earlier_predictions(tmp_path: Path) -> None:
    store = open_store(tmp_path, "slideA", "modelA", GRID, NAMES)
    indices = np.arange(0, GRID.size, 97)
    store.put(indices, _values(indices))
    store.flush()
    again = open_store(tmp_path, "slideA", "modelA", GRID, NAMES)
    assert again.done_count == len(indices)
    np.testing.assert_array_equal(again.get(indices), _values(indices))


def test_changed_model_or_grid_never_sees_stale_values(tmp_path: Path) -> None:
    store = open_store(tmp_path, "slideA", "modelA", GRID, NAMES)
    store.put(np.array([3]), _values(np.array([3])))
    store.flush()
    assert open_store(tmp_path, "slideA", "modelB", GRID, NAMES).done_count == 0
    moved = TileGrid(
        width=40000, height=30000, mpp_x=0.51, mpp_y=0.51, patch_px=100, spacing_um=1.0
    )
    assert open_store(tmp_path, "slideA", "modelA", moved, NAMES).done_count == 0


def test_memory_is_bounded_and_evicted_chunks_come_back_from_disk(tmp_path: Path) -> None:
    budget = 4 * CHUNK * CHUNK * 4 * len(NAMES)  # room for four chunks
    store = PredictionStore(GRID, NAMES, tmp_path / "s.zarr", memory_bytes=budget)
    indices = np.arange(GRID.size)  # touches every chunk (5 x 7 chunks)
    for start in range(0, GRID.size, 5000):
        batch = indices[start : start + 5000]
        store.put(batch, _values(batch))
        assert store.memory_bytes() <= budget + store.done_mask().nbytes
    np.testing.assert_array_equal(store.get(indices), _values(indices))


def test_memory_only_store_never_drops_results() -> None:
    store = PredictionStore(GRID, NAMES, folder=None, memory_bytes=1)
    indices = np.arange(GRID.size)
    store.put(indices, _values(indices))
    np.testing.assert_array_equal(store.get(indices), _values(indices))


def test_wrong_shape_is_rejected(tmp_path: Path) -> None:
    store = open_store(tmp_path, "s", "m", GRID, NAMES)
    with pytest.raises(ValueError, match="expected predictions of shape"):
        store.put(np.array([1, 2]), np.zeros((2, 2)))


def test_a_store_half_created_by_a_killed_run_is_rebuilt(tmp_path: Path) -> None:
    """Found by the kill test: a group whose arrays were never written crashed every
    rerun with KeyError('values'). The cache is recomputable, so it is rebuilt."""
    import zarr

    grid = TileGrid(width=1024, height=512, mpp_x=0.5, mpp_y=0.5, patch_px=64, spacing_um=1.0)
    folder = tmp_path / "cache.zarr"
    zarr.open_group(str(folder), mode="w").attrs.update({"grid": grid.signature()})
    store = PredictionStore(grid, ["A"], folder=folder)
    store.put(np.array([0, 1]), np.array([[1.0], [2.0]], np.float32))
    store.flush()
    reopened = PredictionStore(grid, ["A"], folder=folder)
    assert reopened.is_done(np.array([0, 1, 2])).tolist() == [True, True, False]
    np.testing.assert_array_equal(reopened.get(np.array([1])), [[2.0]])
    assert [path.name for path in tmp_path.iterdir()] == ["cache.zarr"]  # no temporaries
