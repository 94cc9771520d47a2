"""The pixel size of a smear estimated from its red cells.

Split out of :mod:`omicslens.hemato.detect`: the estimate is a measurement of its own
(granulometry of the red-cell mask, no white-cell detection involved), used by the smear
pipeline before any detection when a file states no resolution, and by the crop readers.
It is the only estimated resolution in OmicsLens and is never applied silently: results
say so in ``mpp_source`` (:func:`estimated_mpp_source`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from omicslens.core.slide import Slide
from omicslens.hemato.errors import ResolutionEstimateError
from omicslens.hemato.imaging import downsample, optical_density, otsu_threshold

__all__ = [
    "GRANULOMETRY_CALIBRATION",
    "RED_CELL_DIAMETER_UM",
    "MppEstimate",
    "estimate_mpp_from_red_cells",
    "estimate_slide_mpp",
    "estimated_mpp_source",
]

#: Typical diameter of a normal red cell on a dried, stained smear (um).
RED_CELL_DIAMETER_UM = 7.5


def estimated_mpp_source(diameter_um: float = RED_CELL_DIAMETER_UM) -> str:
    """The ``mpp_source`` text written whenever the resolution was estimated from red cells."""
    return f"estimated from median red-cell diameter ({diameter_um:g} um)"


@dataclass(frozen=True)
class MppEstimate:
    """A pixel size estimated from red cells, and how it was measured."""

    mpp: float
    median_diameter_px: float
    red_cell_diameter_um: float
    samples: int
    source: str


#: The granulometric median diameter of the red-cell mask runs small against the annotated
#: red-cell boxes (pale rims fall below the threshold; elongated cells are measured across
#: their width). This factor maps one onto the other; it is the median ratio over the BCCD
#: *training* fields (train.txt only; see docs/hematology.md for the validation fields).
GRANULOMETRY_CALIBRATION = 1.383

#: Red cells are measured where they are about this many pixels across (scale-free method).
_MEASURE_DIAMETER_PX = 40.0


def estimate_mpp_from_red_cells(
    rgb: np.ndarray, diameter_um: float = RED_CELL_DIAMETER_UM
) -> MppEstimate:
    """Estimate um/px of ``rgb`` from the median red-cell diameter (``diameter_um``).

    Red cells are the stained foreground (green optical density above Otsu's threshold,
    holes filled, white-cell nuclei removed); their typical size is measured by
    granulometry, the median of the area-weighted size spectrum of openings with disks,
    which counts a disk as a disk even where cells touch or overlap. A first pass on a
    coarse copy finds the scale, the second measures where cells are about 40 pixels
    across, so the result does not depend on the image's own pixel size. Raises
    :class:`ResolutionEstimateError` when there are too few red cells to measure.
    """
    rgb = np.ascontiguousarray(rgb[..., :3])
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB, got {rgb.dtype}")
    factor = max(1.0, max(rgb.shape[:2]) / 512.0)
    diameter, samples = _red_cell_diameter(downsample(rgb, factor))
    if math.isfinite(diameter) and diameter > 0:
        factor = max(1.0, factor * diameter / _MEASURE_DIAMETER_PX)
        diameter, samples = _red_cell_diameter(downsample(rgb, factor))
    diameter_px = diameter * factor * GRANULOMETRY_CALIBRATION
    if not (math.isfinite(diameter_px) and diameter_px > 2.0) or samples < 3:
        raise ResolutionEstimateError(
            None, "too few red cells to estimate the resolution from their diameter"
        )
    return MppEstimate(
        mpp=diameter_um / diameter_px,
        median_diameter_px=float(diameter_px),
        red_cell_diameter_um=diameter_um,
        samples=samples,
        source=estimated_mpp_source(diameter_um),
    )


def _red_cell_diameter(rgb: np.ndarray) -> tuple[float, int]:
    """Granulometric median red-cell diameter in pixels of ``rgb``, and about how many
    cells' worth of area it rests on."""
    density = optical_density(rgb)
    nuclear = density[..., 0] - density[..., 2]
    green = density[..., 1]
    nuclei = nuclear > max(otsu_threshold(nuclear), float(np.median(nuclear)) + 0.05)
    nuclei = ndimage.binary_dilation(nuclei, iterations=3)
    if nuclei.all():
        return math.nan, 0
    foreground = green > otsu_threshold(green[~nuclei])
    foreground = ndimage.binary_opening(foreground, iterations=1)
    foreground = ndimage.binary_fill_holes(foreground) & ~nuclei
    if foreground.sum() < 50:
        return math.nan, 0
    distance = ndimage.distance_transform_edt(foreground)
    top = float(np.percentile(distance[foreground], 99.5))
    radii = np.unique(np.round(np.geomspace(1.0, max(2.0, top * 1.2), 28)).astype(int))
    remaining = []
    for radius in radii:
        eroded = distance > radius
        if not eroded.any():
            remaining.append(0.0)
            continue
        opened = ndimage.distance_transform_edt(~eroded) <= radius
        remaining.append(float((opened & foreground).sum()))
    spectrum = np.maximum(-np.diff(np.asarray(remaining)), 0.0)
    if spectrum.sum() <= 0:
        return math.nan, 0
    centres = (radii[:-1] + radii[1:]) / 2.0
    cumulative = np.cumsum(spectrum) / spectrum.sum()
    radius = float(np.interp(0.5, cumulative, centres))
    samples = round(foreground.sum() / (math.pi * radius * radius)) if radius > 0 else 0
    return 2.0 * radius, samples


def estimate_slide_mpp(
    slide: Slide, diameter_um: float = RED_CELL_DIAMETER_UM, max_windows: int = 5
) -> MppEstimate:
    """Estimate a slide's um/px from red cells in up to ``max_windows`` level-0 windows.

    Small images are measured whole; larger ones in 2048-pixel windows at the centre and
    around it, and the median of the window estimates is used.
    """
    width, height = slide.dimensions
    window = 2048
    if max(width, height) <= window * 1.5:
        pixels = slide.read_region(0, 0, width, height)
        estimate = estimate_mpp_from_red_cells(pixels, diameter_um)
        return estimate
    centres = [(0.5, 0.5), (0.3, 0.3), (0.7, 0.7), (0.3, 0.7), (0.7, 0.3)][:max_windows]
    estimates = []
    for fx, fy in centres:
        x = int(fx * width - window / 2)
        y = int(fy * height - window / 2)
        pixels = slide.read_region(max(0, x), max(0, y), window, window)
        try:
            estimates.append(estimate_mpp_from_red_cells(pixels, diameter_um))
        except ResolutionEstimateError:
            continue
    if not estimates:
        raise ResolutionEstimateError(slide.path, "no red cells found to estimate the resolution")
    values = np.array([item.mpp for item in estimates])
    best = estimates[int(np.argsort(values)[len(values) // 2])]
    return replace(best, samples=sum(item.samples for item in estimates))
