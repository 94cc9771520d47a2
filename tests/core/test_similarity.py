"""Similarity search over predicted tiles, checked against a direct computation."""

from __future__ import annotations

import numpy as np
import pytest

from omicslens.core.grid import TileGrid
from omicslens.core.similarity import similarity_to
from omicslens.core.store import PredictionStore

GRID = TileGrid(width=2000, height=2000, mpp_x=1.0, mpp_y=1.0, patch_px=100, spacing_um=1.0)


def test_similar_tiles_are_the_ones_with_the_same_profile() -> None:
    rng = np.random.default_rng(1)
    store = PredictionStore(GRID, ["a", "b", "c", "d"])
    done = np.arange(0, GRID.size, 3)
    values = rng.normal(size=(len(done), 4))
    twins = [done[50], done[100]]  # two far-away tiles share tile 0's profile
    values[np.isin(done, twins)] = values[0] * 2.0  # same direction, different magnitude
    store.put(done, values.astype(np.float32))
    result = similarity_to(store, int(done[0]), top=5)
    standard = (values - values.mean(0)) / values.std(0)
    expected = (
        standard @ standard[0] / (np.linalg.norm(standard, axis=1) * np.linalg.norm(standard[0]))
    )
    np.testing.assert_allclose(result.raster.ravel()[done], expected, rtol=1e-4, atol=1e-5)
    assert np.isnan(result.raster.ravel()[1])  # unpredicted
    assert {i for i, _ in result.ranked[:2]} == set(int(t) for t in twins)
    assert all(
        abs(int(GRID.row_col(i)[0]) - 0) > 1 or abs(int(GRID.row_col(i)[1])) > 1
        for i, _ in result.ranked
    )
    with pytest.raises(ValueError, match="no prediction"):
        similarity_to(store, 1)
