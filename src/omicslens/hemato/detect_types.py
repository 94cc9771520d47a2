"""The detector's settings, the per-field stain model and the records it returns.

Split out of :mod:`omicslens.hemato.detect` so the single-field segmentation
(:mod:`omicslens.hemato.segmentation`), the slide-level tiling in
:mod:`~omicslens.hemato.detect` and the callers that only pass settings or read cells
(crops, typing, the smear pipeline) share one small module of plain types. The stain model
and its thresholds are described in the docstring of :mod:`omicslens.hemato.detect`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from omicslens.hemato.imaging import optical_density, otsu_threshold, white_point
from omicslens.hemato.red_cell_mpp import MppEstimate

__all__ = ["DetectionResult", "DetectionSettings", "StainModel", "WhiteCell"]


@dataclass(frozen=True)
class DetectionSettings:
    """Physical parameters of the detector (all lengths in um, areas in um^2)."""

    work_mpp: float = 0.25
    smooth_um: float = 0.35
    min_nucleus_od: float = 0.05
    opening_um: float = 0.35
    merge_gap_um: float = 2.0
    max_nucleus_extent_um: float = 18.0
    nucleus_min_area_um2: float = 18.0
    nucleus_max_area_um2: float = 250.0
    foreground_sigmas: float = 3.0
    glass_window_um: float = 25.0
    rays: int = 72
    max_cell_radius_um: float = 11.0
    min_cytoplasm_um: float = 0.75
    outline_clip: float = 1.2
    tile_um: float = 500.0
    overlap_um: float = 40.0

    def __post_init__(self) -> None:
        if not (self.work_mpp > 0 and math.isfinite(self.work_mpp)):
            raise ValueError(f"work_mpp must be a positive number, got {self.work_mpp!r}")
        if self.overlap_um < 2 * self.max_cell_radius_um:
            raise ValueError("overlap_um must be at least one cell diameter (2 x max radius)")


@dataclass(frozen=True)
class StainModel:
    """Per-field colour statistics the thresholds come from (see the module docstring)."""

    white: tuple[float, float, float]
    nucleus_threshold: float
    nucleus_median: float

    @classmethod
    def from_pixels(cls, rgb: np.ndarray, settings: DetectionSettings) -> StainModel:
        """Estimate from an RGB field (or a mosaic of sample tiles) at ``work_mpp``."""
        white = white_point(rgb)
        density = optical_density(rgb, white)
        score = _smooth(density[..., 0] - density[..., 2], settings.smooth_um / settings.work_mpp)
        median = float(np.median(score))
        threshold = max(otsu_threshold(score), median + settings.min_nucleus_od)
        return cls(
            white=(float(white[0]), float(white[1]), float(white[2])),
            nucleus_threshold=threshold,
            nucleus_median=median,
        )


@dataclass
class WhiteCell:
    """One detected white cell; coordinates in level-0 pixels of the image it came from."""

    centre_x: float
    centre_y: float
    box: tuple[float, float, float, float]
    outline: np.ndarray
    nucleus: np.ndarray
    nucleus_area_um2: float
    cell_area_um2: float
    nucleus_od: float
    lobes: int
    id: int = -1

    @property
    def area_um2(self) -> float:
        return self.cell_area_um2

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass
class DetectionResult:
    """Cells of one image plus the resolution they were measured at, and where it came from."""

    cells: list[WhiteCell]
    mpp: float
    mpp_source: str
    image_size: tuple[int, int]
    settings: DetectionSettings
    mpp_estimate: MppEstimate | None = None
    tiles: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def _smooth(values: np.ndarray, sigma_px: float) -> np.ndarray:
    if sigma_px < 0.3:
        return values
    return np.asarray(ndimage.gaussian_filter(values, sigma_px), dtype=np.float32)
