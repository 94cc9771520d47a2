"""Patches are cut at the model's spacing, from the right level, with real pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from omicslens.core import open_slide
from omicslens.core.grid import TileGrid
from omicslens.core.patches import read_patch, read_patches
from tests.conftest import CMU1


def test_patch_at_native_spacing_is_the_raw_region() -> None:
    with open_slide(CMU1) as slide:
        grid = TileGrid.for_slide(slide, patch_px=64, spacing_um=slide.mpp)
        index = int(grid.index(3, 4))
        x, y, _, _ = grid.bounds(index)
        patch = read_patch(slide, grid, index)
        raw = slide.read_region(round(x), round(y), 64, 64)
    assert patch.shape == (64, 64, 3) and patch.dtype == np.uint8
    np.testing.assert_array_equal(patch, raw)


def test_patch_at_coarser_spacing_is_an_antialiased_downsample() -> None:
    with open_slide(CMU1) as slide:
        grid = TileGrid.for_slide(slide, patch_px=32, spacing_um=slide.mpp * 4)
        index = int(grid.index(5, 3))
        x, y, _, _ = grid.bounds(index)
        patch = read_patch(slide, grid, index).astype(float)
        raw = slide.read_region(round(x), round(y), 128, 128).astype(float)
    block_mean = raw.reshape(32, 4, 32, 4, 3).mean(axis=(1, 3))
    assert np.abs(patch - block_mean).mean() < 6  # bilinear-antialiased vs box filter


def test_patch_reads_from_the_pyramid_level_nearest_above(tmp_path: Path, he_pixels) -> None:
    # level 1 has a distinct colour, so we can tell which level a patch came from
    base = he_pixels[:800, :800]
    level1 = np.zeros((400, 400, 3), dtype=np.uint8)
    level1[..., 2] = 200
    path = tmp_path / "two-levels.ome.tif"
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        options = dict(tile=(128, 128), photometric="rgb", compression="zlib")
        tif.write(
            base, subifds=1, metadata={"PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25}, **options
        )
        tif.write(level1, subfiletype=1, **options)
    with open_slide(path) as slide:
        assert slide.level_count == 2
        coarse = TileGrid.for_slide(slide, patch_px=50, spacing_um=0.5)  # 2x down: level 1
        fine = TileGrid.for_slide(slide, patch_px=50, spacing_um=0.4)  # 1.6x: level 0
        assert read_patch(slide, coarse, 0)[..., 0].max() == 0  # level 1 has no red
        assert read_patch(slide, fine, 0)[..., 0].mean() > 100  # real H&E from level 0


def test_edge_tiles_are_padded_with_glass() -> None:
    with open_slide(CMU1) as slide:
        grid = TileGrid.for_slide(slide, patch_px=224, spacing_um=0.5)
        last = grid.size - 1
        patches = read_patches(slide, grid, np.array([0, last]))
    assert patches.shape == (2, 224, 224, 3)
    # 2220 px wide: the last column covers 2020..2244 px, so its right side is outside
    assert (patches[1][:, -10:] == 255).all()
