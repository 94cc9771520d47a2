"""Nuclei and cell outlines in one field, at the detector's working resolution.

Split out of :mod:`omicslens.hemato.detect`, which keeps the public entry points
(:func:`~omicslens.hemato.detect.detect_in_field` and the tiled
:func:`~omicslens.hemato.detect.detect_white_cells`): this module holds steps 2 and 3 of
the method described there (nuclei from the nuclear score, star-shaped cell outlines grown
over the flat-field corrected stained foreground) and the mapping of what it finds back to
level-0 pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from omicslens.hemato.detect_types import DetectionSettings, StainModel, WhiteCell, _smooth
from omicslens.hemato.imaging import (
    boundary_polygon,
    disk,
    optical_density,
    otsu_threshold,
    polygon_area,
)


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
