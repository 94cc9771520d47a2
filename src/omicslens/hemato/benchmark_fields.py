"""Fields of a Pascal VOC smear collection as the benchmarks read them.

Split out of :mod:`omicslens.hemato.benchmark` (which re-exports these names): a field's
pixels as a slide reader decodes them, and pixels in memory as a :class:`Slide`, with the
annotation names of white cells. None of it runs the detector.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omicslens.core.errors import MissingResolutionError
from omicslens.core.levels import NativeLevel
from omicslens.core.open import open_slide
from omicslens.core.pyramid import add_lazy_pyramid
from omicslens.core.resolution import override
from omicslens.core.slide import Slide, SlideParts
from omicslens.hemato.errors import UnsupportedSmearError

__all__ = ["WHITE_CELL_NAMES", "array_slide", "read_field"]

WHITE_CELL_NAMES = ("WBC", "white blood cell", "leukocyte", "white_blood_cell")


def read_field(path: str | Path) -> tuple[np.ndarray, float | None]:
    """A field's RGB uint8 pixels as a slide reader decodes them, and the file's own um/px
    (None when the file states none)."""
    try:
        slide = open_slide(path)
        file_mpp: float | None = slide.mpp
    except MissingResolutionError:
        slide = open_slide(path, mpp=1.0)  # placeholder: only pixels are read
        file_mpp = None
    with slide:
        if not slide.is_rgb:
            raise UnsupportedSmearError(Path(path), "perturbations need an 8-bit RGB image")
        width, height = slide.dimensions
        pixels = np.ascontiguousarray(slide.read_region(0, 0, width, height)[..., :3])
    return pixels, file_mpp


def array_slide(pixels: np.ndarray, name: str = "<in memory>") -> Slide:
    """An (H, W, 3) uint8 array as a :class:`Slide` with a placeholder 1 um/px (pass the
    real one to the detector), with the same computed pyramid a decoded file gets."""
    level = NativeLevel(np.ascontiguousarray(pixels), "YXS")
    parts = SlideParts(format="array", levels=[level], resolution=None)
    parts.levels = add_lazy_pyramid(parts.levels, decoded_whole=True)
    return Slide(Path(name), parts, override(1.0))
