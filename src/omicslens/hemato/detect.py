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

This module holds the public entry points, one field (:func:`detect_in_field`) and whole
tiled images (:func:`detect_white_cells`); the pieces live in
:mod:`~omicslens.hemato.detect_types` (settings, stain model, result records),
:mod:`~omicslens.hemato.segmentation` (nuclei and outlines in one field) and
:mod:`~omicslens.hemato.red_cell_mpp` (the resolution estimate), and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from omicslens.core.slide import Slide
from omicslens.hemato.detect_types import (
    DetectionResult,
    DetectionSettings,
    StainModel,
    WhiteCell,
)
from omicslens.hemato.imaging import downsample
from omicslens.hemato.red_cell_mpp import GRANULOMETRY_CALIBRATION as GRANULOMETRY_CALIBRATION
from omicslens.hemato.red_cell_mpp import (
    RED_CELL_DIAMETER_UM,
    MppEstimate,
    estimate_mpp_from_red_cells,
    estimate_slide_mpp,
    estimated_mpp_source,
)
from omicslens.hemato.segmentation import _detect_work, _to_level0

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
