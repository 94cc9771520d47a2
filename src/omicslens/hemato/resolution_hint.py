"""A resolution hint for a smear image that states none: the red-cell estimate.

When a file has no pixel size, the prompt that asks for one can offer what the red cells
say (:func:`omicslens.hemato.detect.estimate_slide_mpp`: the median red-cell diameter
against a typical 7.5 um). :func:`red_cell_estimate_for` never raises: anything that is
not a measurable smear (a fluorescence image, an H&E slide with no red cells, an
unreadable file) gives None, and the prompt then shows the usual histology hints.
"""

from __future__ import annotations

import os

from omicslens.core.resolution import PLAUSIBLE_MPP

__all__ = ["red_cell_estimate_for"]


def red_cell_estimate_for(path: str | os.PathLike[str]) -> tuple[float, str] | None:
    """``(um/px, one-line reason)`` estimated from the red cells of ``path``, or None.

    The reason reads like "median red cell 104.0 px = 7.5 um". Only 8-bit RGB images are
    measured; the file is opened with a placeholder resolution only to read pixels.
    """
    try:
        from omicslens.core.open import open_slide
        from omicslens.hemato.detect import estimate_slide_mpp

        with open_slide(path, mpp=1.0) as slide:
            if not slide.is_rgb:
                return None
            estimate = estimate_slide_mpp(slide)
    except Exception:  # a hint only: never stop the prompt that asked for it
        return None
    low, high = PLAUSIBLE_MPP
    if not low <= estimate.mpp <= high:
        return None
    reason = (
        f"median red cell {estimate.median_diameter_px:.1f} px = "
        f"{estimate.red_cell_diameter_um:g} um"
    )
    return float(estimate.mpp), reason
