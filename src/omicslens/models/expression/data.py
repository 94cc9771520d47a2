"""Training and validation data: spot-centred windows of H&E with measured expression.

A *section* is one H&E image plus the spots measured on it. Windows are cut exactly as
the engine cuts them for a tile (same window size in um, same pixel count, centred), so
what the model learns on spots is what it sees on tiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omicslens.core import open_slide
from omicslens.core.measured import MeasuredDataError, MeasuredExpression, load_measured
from omicslens.core.patches import read_centred


@dataclass
class Section:
    name: str
    measured: MeasuredExpression
    image: Path
    mpp: float
    mpp_source: str


def her2st_sections(root: str | Path, names: list[str]) -> list[Section]:
    """HER2ST sections; each image's pixel size is measured from its 200 um spot pitch."""
    sections = []
    for name in names:
        measured = load_measured(Path(root), section=name)
        mpp = measured.pitch_mpp()
        if measured.image is None or mpp is None:
            raise MeasuredDataError(
                root, f"section {name}: image or spot array coordinates missing"
            )
        sections.append(Section(name, measured, measured.image, mpp, "ST array pitch (200 um)"))
    return sections


def section_from(measured_path: str | Path, image: str | Path, mpp: float | None) -> Section:
    """A Visium folder or AnnData plus its full-resolution image.

    The image's own resolution is used when it states one; otherwise ``mpp`` must be given
    (for Visium, ``55 / spot_diameter_fullres`` is printed as a hint, never assumed).
    """
    measured = load_measured(measured_path)
    if mpp is None:
        try:
            with open_slide(image) as slide:
                mpp, source = slide.mpp, slide.resolution.source
        except Exception as error:
            hint = measured.notes.get("mpp_from_spot_diameter")
            extra = f" (the Visium spot diameter suggests {hint:.4f} um/px)" if hint else ""
            raise MeasuredDataError(image, f"{error}; pass --mpp{extra}") from error
    else:
        source = "given"
    return Section(Path(measured_path).name, measured, Path(image), float(mpp), source)


def cut_windows(section: Section, window_um: float, window_px: int) -> np.ndarray:
    """(spots, window_px, window_px, 3) uint8 windows centred on every spot."""
    measured = section.measured
    out = np.empty((measured.n_spots, window_px, window_px, 3), dtype=np.uint8)
    with open_slide(section.image, mpp=section.mpp) as slide:
        for position, (x, y) in enumerate(zip(measured.x, measured.y, strict=True)):
            out[position] = read_centred(slide, float(x), float(y), window_um, window_px)
    return out
