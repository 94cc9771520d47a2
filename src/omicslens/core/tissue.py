"""Tissue detection on a thumbnail, so background (glass) tiles are never predicted.

Follows the approach WSInfer and most WSI pipelines use: a low-resolution overview,
a per-pixel "is stained" score, Otsu's threshold, a morphological clean-up, then the
fraction of tissue under each tile. The score is the HSV saturation: H&E tissue is
coloured, glass is near-white and grey, pen marks are usually caught by the
``max_value`` guard (very dark) or their hue rarely matters at tile level.

Defaults (adjustable in the GUI and the CLI): overview at about 8 um/px, a tile is tissue
when at least 25 % of it is tissue (WSInfer's default patch filter is similar in spirit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from omicslens.core.grid import TileGrid
from omicslens.core.slide import Slide


@dataclass(frozen=True)
class TissueSettings:
    overview_um_per_px: float = 8.0
    min_saturation: float = 0.05  # floor under Otsu, so a blank slide finds no tissue
    max_brightness: float = 0.96  # pixels brighter than this (0..1) are glass
    min_dark: float = 0.08  # darker than this (0..1): pen/black debris, not tissue
    closing_um: float = 48.0
    min_object_um2: float = 20_000.0
    min_tile_fraction: float = 0.25


@dataclass(frozen=True)
class TissueMask:
    """A boolean mask over the slide, ``scale_x``/``scale_y`` level-0 pixels per mask pixel."""

    mask: np.ndarray
    scale_x: float
    scale_y: float
    threshold: float

    @property
    def fraction(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0

    def tile_fractions(self, grid: TileGrid) -> np.ndarray:
        """(rows, cols) float32 fraction of tissue under each tile, via a summed-area table."""
        integral = np.zeros((self.mask.shape[0] + 1, self.mask.shape[1] + 1), dtype=np.float64)
        integral[1:, 1:] = np.cumsum(np.cumsum(self.mask, axis=0, dtype=np.float64), axis=1)
        h, w = self.mask.shape
        xs = np.arange(grid.cols + 1) * grid.tile_w / self.scale_x
        ys = np.arange(grid.rows + 1) * grid.tile_h / self.scale_y
        xi = np.clip(np.round(xs).astype(np.int64), 0, w)
        yi = np.clip(np.round(ys).astype(np.int64), 0, h)
        total = (
            integral[np.ix_(yi[1:], xi[1:])]
            - integral[np.ix_(yi[:-1], xi[1:])]
            - integral[np.ix_(yi[1:], xi[:-1])]
            + integral[np.ix_(yi[:-1], xi[:-1])]
        )
        # divide by the nominal tile area in mask pixels (tiles past the edge count glass)
        nominal = (grid.tile_w / self.scale_x) * (grid.tile_h / self.scale_y)
        return np.clip(total / max(nominal, 1e-9), 0.0, 1.0).astype(np.float32)

    def tissue_tiles(self, grid: TileGrid, min_fraction: float = 0.25) -> np.ndarray:
        """(rows, cols) bool: tiles with at least ``min_fraction`` tissue."""
        return self.tile_fractions(grid) >= min_fraction


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1]: values above it form the second class."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    hist = hist.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    weight0 = np.cumsum(hist)
    weight1 = weight0[-1] - weight0
    mean0 = np.cumsum(hist * centres) / np.maximum(weight0, 1e-12)
    total_mean = (hist * centres).sum()
    mean1 = (total_mean - np.cumsum(hist * centres)) / np.maximum(weight1, 1e-12)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    # the middle of the optimal plateau; the threshold is the upper edge of that bin
    return float(edges[int(best[len(best) // 2]) + 1])


def detect_tissue_in_rgb(
    rgb: np.ndarray, um_per_px: float, settings: TissueSettings | None = None
) -> tuple[np.ndarray, float]:
    """Tissue mask of an RGB overview whose pixels are ``um_per_px`` wide; and the threshold."""
    settings = settings or TissueSettings()
    image = rgb[..., :3].astype(np.float32) / 255.0
    brightest = image.max(axis=-1)
    darkest = image.min(axis=-1)
    saturation = np.where(brightest > 0, (brightest - darkest) / np.maximum(brightest, 1e-6), 0)
    saturation = ndimage.median_filter(saturation, size=3)
    threshold = max(otsu_threshold(saturation), settings.min_saturation)
    mask = (saturation > threshold) & (brightest < settings.max_brightness)
    mask &= brightest > settings.min_dark
    radius = max(1, round(settings.closing_um / um_per_px / 2))
    structure = np.ones((2 * radius + 1, 2 * radius + 1), dtype=bool)
    mask = ndimage.binary_closing(mask, structure=structure, border_value=0)
    mask = ndimage.binary_fill_holes(mask)
    labels, count = ndimage.label(mask)
    if count:
        min_pixels = settings.min_object_um2 / (um_per_px * um_per_px)
        sizes = np.bincount(labels.ravel())
        keep = sizes >= min_pixels
        keep[0] = False
        mask = keep[labels]
    return mask.astype(bool), threshold


def detect_tissue(slide: Slide, settings: TissueSettings | None = None) -> TissueMask:
    """Tissue mask of a :class:`~omicslens.core.Slide` from an overview near 8 um/px."""
    settings = settings or TissueSettings()
    width, height = slide.dimensions
    mpp = float(slide.mpp)
    longer_um = max(width, height) * mpp
    max_size = int(np.clip(longer_um / settings.overview_um_per_px, 64, 4096))
    overview = slide.thumbnail(max_size=max_size)
    scale_x = width / overview.shape[1]
    scale_y = height / overview.shape[0]
    um_per_px = (scale_x * slide.mpp_x + scale_y * slide.mpp_y) / 2
    mask, threshold = detect_tissue_in_rgb(overview, um_per_px, settings)
    return TissueMask(mask=mask, scale_x=scale_x, scale_y=scale_y, threshold=threshold)
