"""Tissue detection finds the H&E and skips the glass, on real slides."""

from __future__ import annotations

import numpy as np

from omicslens.core import open_slide
from omicslens.core.grid import TileGrid
from omicslens.core.tissue import TissueMask, detect_tissue, detect_tissue_in_rgb, otsu_threshold
from tests.conftest import CMU1


def test_otsu_separates_two_populations() -> None:
    values = np.concatenate([np.full(1000, 0.1), np.full(1000, 0.7)])
    assert 0.1 < otsu_threshold(values) < 0.7


def test_blank_glass_has_no_tissue() -> None:
    glass = np.full((200, 200, 3), 245, dtype=np.uint8)
    glass += np.random.default_rng(0).integers(0, 6, glass.shape, dtype=np.uint8)
    mask, _ = detect_tissue_in_rgb(glass, um_per_px=8.0)
    assert not mask.any()


def test_cmu1_tissue_mask_matches_the_stained_region() -> None:
    with open_slide(CMU1) as slide:
        tissue = detect_tissue(slide)
        overview = slide.thumbnail(max_size=400)
        um_per_px = slide.mpp * slide.dimensions[0] / overview.shape[1]
    # CMU-1 small region: a strip of skin on glass, tissue roughly 30-70 % of the field
    assert 0.2 < tissue.fraction < 0.8
    mask, _ = detect_tissue_in_rgb(overview, um_per_px)
    assert abs(mask.mean() - tissue.fraction) < 0.05  # same answer at another overview size
    # tissue pixels are darker than the glass around them
    grey = overview.mean(axis=-1)
    assert grey[mask].mean() < grey[~mask].mean() - 30


def test_tile_fractions_use_the_mask_geometry() -> None:
    mask = np.zeros((100, 100), dtype=bool)
    mask[:, :50] = True  # left half tissue
    tissue = TissueMask(mask=mask, scale_x=10.0, scale_y=10.0, threshold=0.5)
    grid = TileGrid(width=1000, height=1000, mpp_x=1.0, mpp_y=1.0, patch_px=250, spacing_um=1.0)
    fractions = tissue.tile_fractions(grid)
    np.testing.assert_allclose(fractions, [[1, 1, 0, 0]] * 4)
    assert tissue.tissue_tiles(grid).sum() == 8
