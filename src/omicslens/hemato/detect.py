"""White-cell detection and nucleus/cell segmentation on blood smears.

Classical image analysis, fast on a CPU and with no training data behind it:

1. **Stain model, per field.** Colours become optical densities after a white balance
   on the field's own glass (:mod:`omicslens.hemato.imaging`). In every Romanowsky stain
   (Wright, Giemsa, May-Grunwald-Giemsa, Leishman) a white-cell nucleus absorbs red
   light and lets blue through (it looks purple-blue) while a red cell does the
   opposite (it looks pink-orange), so the *nuclear score* ``OD_red - OD_blue`` is high
   on nuclei, near zero on glass and negative on red cells, whatever the camera or the
   stain intensity. Its threshold is Otsu's on the field, never below ``min_nucleus_od``
   above the field's median (a field without any white cell then finds none).
2. **Nuclei.** Score above threshold, a small opening, fragments closer than
   ``merge_gap_um`` merged into one nucleus (a neutrophil's lobes), groups larger than
   ``max_nucleus_extent_um`` split back into their fragments (two white cells touching),
   then a size filter in um^2 (platelets and debris are smaller than any nucleus).
3. **Cell outline.** Region growing from the nucleus along ``rays`` rays over the
   stained foreground (total optical density against a flat field fitted to the glass,
   which removes vignetting); a ray stops at glass and at red cells (pixels on the red
   side of the nuclear score). Rays that still run on into a touching cell are cut back
   to a robust radius (median of the rays times ``outline_clip``), so the outline stays
   star-shaped around the nucleus and never exceeds ``max_cell_radius_um``.

Everything runs at ``work_mpp`` (default 0.25 um/px), so parameters are physical and the
same settings serve a 0.08 um/px phone-camera field and a 0.25 um/px slide scan.

Large smears are processed tile by tile: windows of ``tile_um`` plus an ``overlap_um``
margin are read with :meth:`Slide.read_region` (from the pyramid level closest to
``work_mpp``), cells are kept only by the tile whose core holds their nucleus centre, so
a cell on a tile border is found once. Coordinates in the results are level-0 pixels.

Resolution: with no usable pixel size, :func:`estimate_mpp_from_red_cells` measures the
median red-cell diameter and assumes it is 7.5 um; the result says so in ``mpp_source``.
It is the only estimated resolution in OmicsLens and is never applied silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import ndimage

from omicslens.core.slide import Slide
from omicslens.hemato.errors import ResolutionEstimateError
from omicslens.hemato.imaging import (
    boundary_polygon,
    disk,
    downsample,
    optical_density,
    otsu_threshold,
    polygon_area,
    white_point,
)

__all__ = [
    "RED_CELL_DIAMETER_UM",
    "DetectionResult",
    "DetectionSettings",
    "MppEstimate",
    "StainModel",
    "WhiteCell",
    "detect_in_field",
    "detect_white_cells",
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


# -- one field ---------------------------------------------------------------------------
def detect_in_field(
    rgb: np.ndarray,
    mpp: float,
    settings: DetectionSettings | None = None,
    stain: StainModel | None = None,
    origin: tuple[float, float] = (0.0, 0.0),
) -> list[WhiteCell]:
    """White cells in one RGB image whose pixels are ``mpp`` um wide.

    ``origin`` is the level-0 position of the image's top-left corner (for tiles).
    ``stain`` defaults to this field's own statistics.
    """
    settings = settings or DetectionSettings()
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    rgb = np.ascontiguousarray(rgb[..., :3])
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB, got {rgb.dtype}")
    factor = max(1.0, settings.work_mpp / mpp)
    work = downsample(rgb, factor)
    scale_x = rgb.shape[1] / work.shape[1]
    scale_y = rgb.shape[0] / work.shape[0]
    work_mpp = mpp * (scale_x + scale_y) / 2.0
    local = replace(settings, work_mpp=work_mpp)
    stain = stain or StainModel.from_pixels(work, local)
    found = _detect_work(work, local, stain)
    cells = []
    for item in found:
        cells.append(_to_level0(item, scale_x, scale_y, origin, mpp, rgb.shape[:2]))
    return cells


@dataclass
class _Found:
    centre: tuple[float, float]
    nucleus_outline: np.ndarray
    outline: np.ndarray
    nucleus_area_um2: float
    nucleus_od: float
    lobes: int


def _detect_work(rgb: np.ndarray, settings: DetectionSettings, stain: StainModel) -> list[_Found]:
    px = settings.work_mpp
    density = optical_density(rgb, np.asarray(stain.white, np.float32))
    score = _smooth(density[..., 0] - density[..., 2], settings.smooth_um / px)
    candidate = score > stain.nucleus_threshold
    opening = settings.opening_um / px
    if opening >= 1.0:
        candidate = ndimage.binary_opening(candidate, structure=disk(opening))
    if not candidate.any():
        return []
    fragments, _ = ndimage.label(candidate)
    grown = ndimage.binary_dilation(candidate, structure=disk(settings.merge_gap_um / px / 2.0))
    groups, _count = ndimage.label(grown)
    stained = _foreground(rgb, settings)
    # red cells: stained and clearly on the red side of the nuclear score; the cytoplasm of
    # white cells is on the blue side of the glass, red cells well below it
    glass_level = float(np.median(score[~stained])) if (~stained).any() else 0.0
    red_level = float(np.median(score[stained & ~candidate])) if stained.any() else glass_level
    red_cut = (glass_level + red_level) / 2.0 if red_level < glass_level else -np.inf
    foreground = (stained & (score > red_cut)) | candidate

    min_area = settings.nucleus_min_area_um2 / (px * px)
    max_area = settings.nucleus_max_area_um2 / (px * px)
    max_extent = settings.max_nucleus_extent_um / px
    found: list[_Found] = []
    for index, window in enumerate(ndimage.find_objects(groups), start=1):
        if window is None:
            continue
        members = (groups[window] == index) & candidate[window]
        parts = _split_if_too_large(members, fragments[window], max_extent)
        for part in parts:
            area = float(part.sum())
            if area < min_area or area > max_area:
                continue
            offset = (window[1].start, window[0].start)
            item = _measure(part, offset, score, settings, stain, foreground)
            if item is not None:
                found.append(item)
    return found


def _split_if_too_large(
    members: np.ndarray, fragments: np.ndarray, max_extent: float
) -> list[np.ndarray]:
    ys, xs = np.nonzero(members)
    if len(xs) == 0:
        return []
    if max(xs.max() - xs.min(), ys.max() - ys.min()) + 1 <= max_extent:
        return [members]
    ids = np.unique(fragments[members])
    return [members & (fragments == value) for value in ids if value]


def _measure(
    part: np.ndarray,
    offset: tuple[int, int],
    score: np.ndarray,
    settings: DetectionSettings,
    stain: StainModel,
    foreground: np.ndarray,
) -> _Found | None:
    px = settings.work_mpp
    ys, xs = np.nonzero(part)
    values = score[ys + offset[1], xs + offset[0]]
    contrast = float(values.mean())
    if contrast - stain.nucleus_median < 1.5 * settings.min_nucleus_od:
        return None
    cx = float(xs.mean()) + offset[0] + 0.5
    cy = float(ys.mean()) + offset[1] + 0.5
    lobes = int(ndimage.label(part, structure=np.ones((3, 3), bool))[1])
    outline = _grow_outline(part, offset, (cx, cy), foreground, settings)
    # one polygon for the whole nucleus: lobes bridged by a closing as wide as the merge gap
    radius = max(1.0, settings.merge_gap_um / px / 2.0)
    pad = math.ceil(radius) + 1
    closed = ndimage.binary_closing(np.pad(part, pad), structure=disk(radius))
    closed = ndimage.binary_fill_holes(closed)[pad:-pad, pad:-pad] | part
    nucleus_outline = boundary_polygon(closed) + np.array(offset, dtype=np.float64)
    return _Found(
        centre=(cx, cy),
        nucleus_outline=nucleus_outline,
        outline=outline,
        nucleus_area_um2=float(part.sum()) * px * px,
        nucleus_od=contrast,
        lobes=lobes,
    )


def _grow_outline(
    part: np.ndarray,
    offset: tuple[int, int],
    centre: tuple[float, float],
    foreground: np.ndarray,
    settings: DetectionSettings,
) -> np.ndarray:
    """Star-shaped cell outline around a nucleus, (rays, 2) x, y in work pixels."""
    px = settings.work_mpp
    height, width = foreground.shape
    nucleus = np.zeros_like(foreground)
    nucleus[offset[1] : offset[1] + part.shape[0], offset[0] : offset[0] + part.shape[1]] = part
    angles = np.linspace(0.0, 2.0 * math.pi, settings.rays, endpoint=False)
    step = 0.5
    max_radius = settings.max_cell_radius_um / px
    radii_steps = np.arange(0.0, max_radius + step, step)
    dx, dy = np.cos(angles), np.sin(angles)
    xs = centre[0] - 0.5 + np.outer(dx, radii_steps)
    ys = centre[1] - 0.5 + np.outer(dy, radii_steps)
    xi = np.clip(np.round(xs).astype(np.int64), 0, width - 1)
    yi = np.clip(np.round(ys).astype(np.int64), 0, height - 1)
    inside_image = (xs >= -0.5) & (xs < width - 0.5) & (ys >= -0.5) & (ys < height - 0.5)
    on_nucleus = nucleus[yi, xi] & inside_image
    on_cell = (foreground[yi, xi] | on_nucleus) & inside_image
    # nucleus extent along each ray: last nucleus sample
    nucleus_reach = np.where(
        on_nucleus.any(axis=1),
        radii_steps[
            np.maximum(0, on_nucleus.shape[1] - 1 - np.argmax(on_nucleus[:, ::-1], axis=1))
        ],
        0.0,
    )
    cytoplasm = settings.min_cytoplasm_um / px
    radii = np.empty(len(angles))
    for ray in range(len(angles)):
        start = int(np.searchsorted(radii_steps, nucleus_reach[ray]))
        outside = np.nonzero(~on_cell[ray, start:])[0]
        stop = start + int(outside[0]) if len(outside) else len(radii_steps)
        radius = radii_steps[min(stop, len(radii_steps)) - 1] if stop > 0 else 0.0
        radii[ray] = max(radius, nucleus_reach[ray] + cytoplasm)
    # rays that ran into a touching red cell: clip to a robust radius, then smooth
    limit = float(np.median(radii)) * settings.outline_clip
    radii = np.minimum(radii, np.maximum(limit, nucleus_reach + cytoplasm))
    radii = np.minimum(radii, max_radius)
    padded = np.concatenate([radii[-2:], radii, radii[:2]])
    radii = np.median(np.lib.stride_tricks.sliding_window_view(padded, 5), axis=1)
    radii = np.maximum(radii, nucleus_reach + 0.5)
    outline = np.stack([centre[0] + dx * radii, centre[1] + dy * radii], axis=1)
    outline[:, 0] = np.clip(outline[:, 0], 0.0, width)
    outline[:, 1] = np.clip(outline[:, 1], 0.0, height)
    return outline


def _to_level0(
    item: _Found,
    scale_x: float,
    scale_y: float,
    origin: tuple[float, float],
    mpp: float,
    shape: tuple[int, int],
) -> WhiteCell:
    ox, oy = origin
    outline = item.outline * np.array([scale_x, scale_y]) + np.array([ox, oy])
    nucleus = item.nucleus_outline * np.array([scale_x, scale_y]) + np.array([ox, oy])
    x0, y0 = outline.min(axis=0)
    x1, y1 = outline.max(axis=0)
    cell_area = polygon_area(outline) * mpp * mpp
    return WhiteCell(
        centre_x=item.centre[0] * scale_x + ox,
        centre_y=item.centre[1] * scale_y + oy,
        box=(float(x0), float(y0), float(x1), float(y1)),
        outline=outline,
        nucleus=nucleus,
        nucleus_area_um2=item.nucleus_area_um2,
        cell_area_um2=cell_area,
        nucleus_od=item.nucleus_od,
        lobes=item.lobes,
    )


def _smooth(values: np.ndarray, sigma_px: float) -> np.ndarray:
    if sigma_px < 0.3:
        return values
    return np.asarray(ndimage.gaussian_filter(values, sigma_px), dtype=np.float32)


def _foreground(rgb: np.ndarray, settings: DetectionSettings) -> np.ndarray:
    """Anything stained (cells, cytoplasm included) against the glass around it.

    The white reference is a flat field: a quadratic surface fitted, per channel, to the
    upper envelope of the glass (the brightest, least dense pixels), which removes
    vignetting and uneven lighting; pale cytoplasm differs from the glass next to it by
    far less than the light falls off towards a field's corners. Stained means a total
    optical density above the glass noise (``foreground_sigmas`` robust deviations).
    """
    px = settings.work_mpp
    pixels = np.maximum(rgb.astype(np.float32), 1.0)
    logs = np.log10(pixels)
    density = optical_density(rgb)
    total = _smooth(density.sum(axis=-1), settings.smooth_um / px)
    glass = total < otsu_threshold(total)
    height, width = total.shape
    yy, xx = np.mgrid[0:height, 0:width]
    u = (xx.ravel() / max(1, width - 1)) * 2.0 - 1.0
    v = (yy.ravel() / max(1, height - 1)) * 2.0 - 1.0
    design = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
    flat = np.empty_like(logs)
    residual_sum = np.zeros(height * width, dtype=np.float64)
    keep = glass.ravel().copy()
    for channel in range(3):
        target = logs[..., channel].ravel().astype(np.float64)
        chosen = keep.copy()
        fitted = np.full_like(target, float(np.median(target[chosen])) if chosen.any() else 2.4)
        for _ in range(4):
            if chosen.sum() < 50:
                break
            rows = np.nonzero(chosen)[0]
            if len(rows) > 8_000:
                rows = rows[:: len(rows) // 8_000]
            sub = design[rows]
            gram = sub.T @ sub + 1e-9 * np.eye(sub.shape[1])
            coefficients = np.linalg.solve(gram, sub.T @ target[rows])
            fitted = design @ coefficients
            residual = target - fitted
            spread = 1.4826 * float(np.median(np.abs(residual[chosen]))) + 1e-4
            # the upper envelope: glass that is not darker than the fit by more than 1 spread
            chosen = keep & (residual > -spread)
        flat[..., channel] = fitted.reshape(height, width)
        residual_sum += (flat[..., channel] - logs[..., channel]).ravel()
    stained = _smooth(residual_sum.reshape(height, width), settings.smooth_um / px)
    final = keep & (
        stained.ravel() < np.quantile(stained.ravel()[keep], 0.9) if keep.any() else keep
    )
    values = stained.ravel()[final] if final.any() else stained.ravel()
    centre = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - centre))) + 1e-4
    threshold = min(centre + settings.foreground_sigmas * spread, otsu_threshold(stained))
    return np.asarray(stained > threshold)


def _glass_threshold(total: np.ndarray, sigmas: float) -> float:
    """Glass level plus ``sigmas`` times its spread: the mode of the total optical density
    and the spread of the values below it (glass is the darkest-free, most common colour).
    Never above Otsu's threshold, so a field mostly covered by cells still separates."""
    values = total.ravel()
    counts, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2.0
    mode = float(centres[int(np.argmax(ndimage.uniform_filter1d(counts.astype(float), 5)))])
    below = values[values <= mode]
    spread = float(np.sqrt(np.mean((below - mode) ** 2))) if below.size > 10 else 0.01
    return min(mode + sigmas * max(spread, 1e-3), otsu_threshold(values))


# -- resolution from red cells -----------------------------------------------------------
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


# -- whole images and slides -------------------------------------------------------------
def detect_white_cells(
    slide: Slide,
    mpp: float | None = None,
    settings: DetectionSettings | None = None,
    mpp_source: str | None = None,
) -> DetectionResult:
    """Detect white cells on a whole slide or field, tile by tile.

    ``mpp`` overrides the slide's own resolution (``mpp_source`` then says where it came
    from, default "given"); pass ``mpp=None`` to use the slide's. To estimate from red
    cells, call :func:`estimate_slide_mpp` first and pass its ``mpp`` and ``source``
    (:func:`omicslens.hemato.smear.analyse_smear` does this when the file states none).
    """
    settings = settings or DetectionSettings()
    if mpp is None:
        mpp = slide.mpp
        mpp_source = mpp_source or slide.resolution.source
    else:
        mpp_source = mpp_source or "given"
    width, height = slide.dimensions
    downsample_wanted = max(1.0, settings.work_mpp / mpp)
    level = slide.best_level_for_downsample(downsample_wanted)
    level_down = slide.downsamples[level]
    level_mpp = mpp * level_down
    tiles = list(_tiles(width, height, mpp, settings))
    stain = _slide_stain_model(slide, tiles, level, level_down, level_mpp, settings)
    cells: list[WhiteCell] = []
    for core, window in tiles:
        x0, y0, x1, y1 = window
        lx, ly = math.floor(x0 / level_down), math.floor(y0 / level_down)
        lw = max(1, math.ceil((x1 - x0) / level_down))
        lh = max(1, math.ceil((y1 - y0) / level_down))
        pixels = slide.read_region(lx, ly, lw, lh, level=level)
        if slide.channels >= 3:
            pixels = pixels[..., :3]
        origin = (lx * level_down, ly * level_down)
        found = detect_in_field(pixels, level_mpp, settings, stain=stain, origin=(0.0, 0.0))
        for cell in found:
            cell = _scale_cell(cell, level_down, origin, width, height)
            cx0, cy0, cx1, cy1 = core
            if cx0 <= cell.centre_x < cx1 and cy0 <= cell.centre_y < cy1:
                cells.append(cell)
    cells.sort(key=lambda cell: (round(cell.centre_y), cell.centre_x))
    for index, cell in enumerate(cells, start=1):
        cell.id = index
    return DetectionResult(
        cells=cells,
        mpp=mpp,
        mpp_source=str(mpp_source),
        image_size=(width, height),
        settings=settings,
        tiles=len(tiles),
    )


def _tiles(
    width: int, height: int, mpp: float, settings: DetectionSettings
) -> Iterator[tuple[tuple[float, float, float, float], tuple[int, int, int, int]]]:
    """(core, window) rectangles in level-0 pixels; cores tile the image exactly."""
    core = max(64, round(settings.tile_um / mpp))
    margin = math.ceil(settings.overlap_um / mpp)
    if width <= core + 2 * margin and height <= core + 2 * margin:
        yield (0.0, 0.0, float(width), float(height)), (0, 0, width, height)
        return
    for y in range(0, height, core):
        for x in range(0, width, core):
            cx1, cy1 = min(width, x + core), min(height, y + core)
            window = (
                max(0, x - margin),
                max(0, y - margin),
                min(width, cx1 + margin),
                min(height, cy1 + margin),
            )
            yield (float(x), float(y), float(cx1), float(cy1)), window


def _slide_stain_model(
    slide: Slide,
    tiles: list[tuple[tuple[float, float, float, float], tuple[int, int, int, int]]],
    level: int,
    level_down: float,
    level_mpp: float,
    settings: DetectionSettings,
) -> StainModel | None:
    """One stain model for a tiled slide, from up to 16 tiles spread evenly over it.

    A single field (one tile) returns None: the field's own statistics are used.
    """
    if len(tiles) <= 1:
        return None
    picks = np.linspace(0, len(tiles) - 1, num=min(16, len(tiles))).round().astype(int)
    samples = []
    side = round(200.0 / settings.work_mpp)  # 200 um of each sampled tile
    for index in np.unique(picks):
        _, (x0, y0, x1, y1) = tiles[index]
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        size = math.ceil(side * settings.work_mpp / level_mpp)
        pixels = slide.read_region(
            int(cx / level_down) - size // 2, int(cy / level_down) - size // 2, size, size, level
        )[..., :3]
        samples.append(downsample(pixels, max(1.0, settings.work_mpp / level_mpp)))
    smallest = min(sample.shape[0] for sample in samples)
    mosaic = np.concatenate([sample[:smallest, :smallest] for sample in samples], axis=1)
    return StainModel.from_pixels(mosaic, settings)


def _scale_cell(
    cell: WhiteCell, factor: float, origin: tuple[float, float], width: int, height: int
) -> WhiteCell:
    ox, oy = origin
    outline = cell.outline * factor + np.array([ox, oy])
    outline[:, 0] = np.clip(outline[:, 0], 0, width)
    outline[:, 1] = np.clip(outline[:, 1], 0, height)
    nucleus = cell.nucleus * factor + np.array([ox, oy])
    x0, y0 = outline.min(axis=0)
    x1, y1 = outline.max(axis=0)
    return replace(
        cell,
        centre_x=cell.centre_x * factor + ox,
        centre_y=cell.centre_y * factor + oy,
        box=(float(x0), float(y0), float(x1), float(y1)),
        outline=outline,
        nucleus=nucleus,
    )
