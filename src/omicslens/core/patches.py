"""Cut model patches out of a slide at the model's spacing.

A tile's level-0 box is fractional (see :mod:`omicslens.core.grid`). We read from the
most downsampled pyramid level that is still at least as fine as the model needs (so no
detail is invented by upsampling), then resample the exact sub-pixel box to
``patch_px`` x ``patch_px`` with Pillow, whose resize filters are antialiased when
shrinking. Pixels past the slide edge are glass (white).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from omicslens.core.grid import TileGrid
from omicslens.core.slide import Slide


def read_patch(slide: Slide, grid: TileGrid, index: int) -> np.ndarray:
    """One tile's input window as (patch_px, patch_px, 3) uint8 RGB at the model's spacing."""
    x, y, w, h = grid.window(index)
    return read_window(slide, x, y, w, h, grid.patch_px)


def read_centred(slide: Slide, cx: float, cy: float, size_um: float, out_px: int) -> np.ndarray:
    """A square of ``size_um`` centred on level-0 point (cx, cy), as ``out_px`` pixels.

    Used for spot-centred training patches and for context windows around a tile.
    """
    w, h = size_um / slide.mpp_x, size_um / slide.mpp_y
    return read_window(slide, cx - w / 2, cy - h / 2, w, h, out_px)


def read_window(slide: Slide, x: float, y: float, w: float, h: float, out_px: int) -> np.ndarray:
    """The level-0 box (x, y, w, h), fractional, resampled to (out_px, out_px, 3) uint8."""
    needed = min(w, h) / out_px  # level-0 pixels per output pixel
    level = slide.best_level_for_downsample(needed)
    down_x = slide.level_shapes[0][1] / slide.level_shapes[level][1]
    down_y = slide.level_shapes[0][0] / slide.level_shapes[level][0]
    lx, ly, lw, lh = x / down_x, y / down_y, w / down_x, h / down_y
    ix, iy = math.floor(lx), math.floor(ly)
    iw = max(1, math.ceil(lx + lw) - ix)
    ih = max(1, math.ceil(ly + lh) - iy)
    region = slide.read_region(ix, iy, iw, ih, level=level)
    return _to_patch(region, (lx - ix, ly - iy, lx - ix + lw, ly - iy + lh), out_px)


def read_patches(slide: Slide, grid: TileGrid, indices: np.ndarray) -> np.ndarray:
    """Several tiles stacked as (N, patch_px, patch_px, 3) uint8."""
    out = np.empty((len(indices), grid.patch_px, grid.patch_px, 3), dtype=np.uint8)
    for position, index in enumerate(indices):
        out[position] = read_patch(slide, grid, int(index))
    return out


def _to_patch(region: np.ndarray, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    rgb = _as_rgb8(region)
    exact = (0.0, 0.0, float(size), float(size))
    if rgb.shape[:2] == (size, size) and all(
        abs(a - b) < 1e-6 for a, b in zip(box, exact, strict=True)
    ):
        return rgb  # already the patch: no resampling
    image = Image.fromarray(rgb)
    resized = image.resize((size, size), resample=Image.Resampling.BILINEAR, box=box)
    return np.asarray(resized)


def _as_rgb8(region: np.ndarray) -> np.ndarray:
    """Any slide pixels as contiguous uint8 RGB (drop alpha, replicate grey, scale 16-bit)."""
    if region.dtype != np.uint8:
        top = float(np.iinfo(region.dtype).max) if region.dtype.kind in "ui" else 1.0
        region = np.clip(region.astype(np.float32) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if region.ndim == 2:
        region = region[..., None]
    channels = region.shape[2]
    if channels == 1:
        region = np.repeat(region, 3, axis=2)
    elif channels >= 3:
        region = region[..., :3]
    else:
        region = np.repeat(region[..., :1], 3, axis=2)
    return np.ascontiguousarray(region)
