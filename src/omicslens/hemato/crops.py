"""Crop collections: images that each show one centred white cell.

This is how hematologists hold single-cell data: CellaVision-type analysers export one
image per cell, and the public AML cohorts are folders of single-cell crops per patient.
A crop rarely states its resolution and usually shows too few red cells to estimate it,
so typing a crop must not depend on one:

1. **Find the cell.** With a known pixel size the white-cell detector runs on the crop as
   on a smear field. Without one, the pixel size is estimated from the red cells around
   the white cell when the crop shows enough of them (as for a smear field; on crops of
   twice a white cell's box cut from the BCCD validation fields this works on 86 of 87),
   so a platelet or debris is measured at its true, too-small size and the detector
   rejects it. Otherwise, the crop's scale is set from its central nucleus: the
   nuclear-score blobs (``OD_red - OD_blue``, Otsu) near the centre are taken to cover
   :data:`NOMINAL_NUCLEUS_UM2` (the median white-cell nucleus of the BCCD training
   fields, measured the same way), which puts the scale within 0.75-1.31 of the
   field's red-cell scale (10th-90th percentile) on crops of the BCCD validation
   fields; the detector runs at that scale. The detected cell whose centre is closest
   to the crop's centre is the crop's cell.
2. **Normalise it** to the model's cell patch exactly as in a smear: its box times the
   bundle's ``box_scale``, resized to ``load_size`` square. The typing model never sees
   the (guessed) pixel size, only the cell's box, so the guess cannot mis-size the cell.
3. **No cell found** (debris, a platelet clump, an empty crop, a cell cut by the border):
   the whole crop is typed and the row is flagged ``review`` with the reason
   ``no white cell found``; such a crop is never silently counted as a normal cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from omicslens.hemato.detect import (
    DetectionSettings,
    WhiteCell,
    detect_in_field,
    estimate_mpp_from_red_cells,
)
from omicslens.hemato.errors import HematoError, ResolutionEstimateError
from omicslens.hemato.imaging import optical_density, otsu_threshold, white_point

#: Image files a crop collection may hold (case-insensitive suffixes).
CROP_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})

#: Median area (um^2) of the central nuclear-score blobs, measured as
#: :func:`nucleus_scale_mpp` measures them, in crops cut around the 202 annotated white
#: cells of the BCCD *training* fields (train.txt, box x 2) at each field's resolution
#: estimated from its red cells (quartiles 45 and 79 um^2; docs/hematology.md).
NOMINAL_NUCLEUS_UM2 = 62.0

#: The most pixels a crop may have (a crop, not a slide: 4096^2).
MAX_CROP_PIXELS = 4096 * 4096


class CropReadError(HematoError, ValueError):
    """A crop image that cannot be read (names the file and the problem)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class CropFile:
    """One crop image and the group it belongs to (the folder given, e.g. a patient)."""

    path: Path
    group: str


@dataclass
class CropCell:
    """The white cell found in one crop (crop pixels) and how its scale was set."""

    crop: CropFile
    cell: WhiteCell
    found: bool
    mpp: float
    mpp_source: str
    size: tuple[int, int]  # (width, height) of the crop

    @property
    def reason(self) -> str:
        return "" if self.found else "no white cell found"


def collect_crops(paths: Sequence[str | Path]) -> list[CropFile]:
    """Crop files under ``paths`` (files, or folders searched recursively), in order.

    A folder given on the command line is a group (a patient): every crop below it
    belongs to it, whatever the sub-folders. A file given directly belongs to the group
    of its parent folder's name. Hidden files and folders are skipped.
    """
    found: list[CropFile] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            group = path.resolve().name or str(path)
            for item in sorted(_walk(path)):
                key = item.resolve()
                if key not in seen:
                    seen.add(key)
                    found.append(CropFile(item, group))
        elif path.is_file():
            if path.suffix.lower() not in CROP_SUFFIXES:
                raise CropReadError(
                    path, f"not a crop image (expected one of {', '.join(sorted(CROP_SUFFIXES))})"
                )
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(CropFile(path, path.resolve().parent.name))
        else:
            raise CropReadError(path, "no such file or folder")
    return found


def _walk(folder: Path) -> Iterable[Path]:
    for item in folder.rglob("*"):
        relative = item.relative_to(folder).parts
        if any(part.startswith(".") for part in relative):
            continue
        if item.is_file() and item.suffix.lower() in CROP_SUFFIXES:
            yield item


def read_crop(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a crop image; :class:`CropReadError` for anything else."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_CROP_PIXELS:
                raise CropReadError(
                    path,
                    f"{width} x {height} px is too large for a single-cell crop "
                    "(open it as a smear with `omicslens smear`)",
                )
            if width < 8 or height < 8:
                raise CropReadError(path, f"{width} x {height} px is too small for a cell")
            rgb = np.asarray(image.convert("RGB"))
    except CropReadError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise CropReadError(path, f"not a readable image ({error})") from error
    except Image.DecompressionBombError as error:
        raise CropReadError(path, f"refused as a decompression bomb ({error})") from error
    return np.ascontiguousarray(rgb)


def nucleus_scale_mpp(rgb: np.ndarray, nucleus_um2: float = NOMINAL_NUCLEUS_UM2) -> float | None:
    """um/px that makes the crop's central nucleus ``nucleus_um2``; None if none is seen.

    The nucleus is the union of nuclear-score blobs whose centre lies within a third of
    the crop's short side from its centre (a neutrophil's lobes count together).
    """
    density = optical_density(rgb, white_point(rgb))
    score = ndimage.gaussian_filter(density[..., 0] - density[..., 2], 1.0)
    threshold = max(otsu_threshold(score), float(np.median(score)) + 0.05)
    mask = score > threshold
    if not mask.any():
        return None
    labels, count = ndimage.label(mask)
    if count == 0:
        return None
    height, width = mask.shape
    centres = ndimage.center_of_mass(mask, labels, range(1, count + 1))
    areas = ndimage.sum(mask, labels, range(1, count + 1))
    reach = min(height, width) / 3.0
    total = 0.0
    for (cy, cx), area in zip(centres, np.atleast_1d(areas), strict=True):
        if math.hypot(cy - height / 2, cx - width / 2) <= reach:
            total += float(area)
    # blobs of a few pixels are noise, not a nucleus
    if total < max(16.0, 0.002 * height * width):
        return None
    return math.sqrt(nucleus_um2 / total)


def find_crop_cell(
    rgb: np.ndarray,
    crop: CropFile,
    mpp: float | None = None,
    settings: DetectionSettings | None = None,
) -> CropCell:
    """The white cell centred in ``rgb`` (see the module docstring)."""
    height, width = rgb.shape[:2]
    scales = _scales(rgb, mpp)  # red-cell and nucleus estimates: measured once
    for used, source in scales:
        cells = detect_in_field(rgb, used, settings=settings)
        best = _centred(cells, width, height)
        if best is not None:
            return CropCell(crop, best, True, float(used), source, (width, height))
    tried = [source for _, source in scales]
    whole = WhiteCell(
        centre_x=width / 2.0,
        centre_y=height / 2.0,
        box=(0.0, 0.0, float(width), float(height)),
        outline=np.array(
            [[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]], dtype=np.float64
        ),
        nucleus=np.zeros((0, 2)),
        nucleus_area_um2=float("nan"),
        cell_area_um2=float("nan"),
        nucleus_od=float("nan"),
        lobes=0,
    )
    source = "; ".join(tried) if tried else "no scale: no nucleus seen"
    return CropCell(crop, whole, False, math.nan, source, (width, height))


#: A central blob measured at the red cells' scale this much coarser than a nominal
#: nucleus (nucleus-scale um/px over red-cell um/px) is too small to be a white cell's
#: nucleus: 95 % of the BCCD validation white-cell crops are below 1.42, half of the
#: platelet crops above 2.0 (docs/hematology.md).
MAX_SCALE_RATIO = 1.5


def _scales(rgb: np.ndarray, mpp: float | None) -> list[tuple[float, str]]:
    """Pixel sizes to try, best first: given; the crop's red cells; its nucleus.

    The nucleus scale is tried after the red cells' only when the two roughly agree or
    the red cells could not be measured: a crop whose central object is far smaller
    than a nucleus at its red cells' scale (a platelet, debris) must not be blown up to
    a white cell.
    """
    if mpp is not None:
        return [(float(mpp), "given")]
    scales: list[tuple[float, str]] = []
    nucleus = nucleus_scale_mpp(rgb)
    nucleus_source = f"crop scale from its nucleus (nominal {NOMINAL_NUCLEUS_UM2:g} um^2)"
    try:
        estimate = estimate_mpp_from_red_cells(rgb)
    except ResolutionEstimateError:
        estimate = None
    if estimate is not None and math.isfinite(estimate.mpp) and estimate.mpp > 0:
        scales.append((estimate.mpp, f"crop's red cells ({estimate.source})"))
        if nucleus is not None and nucleus / estimate.mpp <= MAX_SCALE_RATIO:
            scales.append((nucleus, nucleus_source))
    elif nucleus is not None:
        scales.append((nucleus, nucleus_source))
    return scales


def _centred(cells: Sequence[WhiteCell], width: int, height: int) -> WhiteCell | None:
    """The cell nearest the centre, if its box holds the centre or it lies close to it."""
    if not cells:
        return None
    cx, cy = width / 2.0, height / 2.0

    def offset(cell: WhiteCell) -> float:
        return math.hypot(cell.centre_x - cx, cell.centre_y - cy)

    best = min(cells, key=offset)
    x0, y0, x1, y1 = best.box
    holds_centre = x0 <= cx <= x1 and y0 <= cy <= y1
    return best if holds_centre or offset(best) <= min(width, height) / 4.0 else None
