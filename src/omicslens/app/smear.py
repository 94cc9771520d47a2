"""Blood smear analysis and its export (``omicslens smear`` and the Blood smear dock)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from omicslens.app.progress import Progress
from omicslens.hemato.smear import SmearAnalysis, analyse_smear, write_smear_outputs

GALLERY_PX = 72


@dataclass
class SmearReport:
    analysis: SmearAnalysis
    crops: list[np.ndarray] = field(default_factory=list)  # one square RGB per cell

    def patient_line(self) -> str | None:
        """``"<patient id> (<label>)"`` of the most similar reference patient, if any."""
        similar = self.analysis.similar_patients
        if not similar:
            return None
        return similar_patient_text(similar[0])


def similar_patient_text(patient: dict[str, object]) -> str:
    """A reference patient as the aggregator's retrieval writes it (``patient_id``)."""
    return f"{patient.get('patient_id', '?')} ({patient.get('label', '?')})"


def smear_job(
    path: str | Path,
    *,
    mpp: float | None = None,
    model: str | None = None,
    genetic: str | None = None,
    device: str | None = None,
    crop_px: int | None = None,
) -> Generator[Progress, None, SmearReport]:
    """Find, type and embed the white cells; with ``crop_px``, cut a gallery crop per cell."""
    yield Progress("cells", 0, 1, message=f"finding and typing white cells in {Path(path).name}")
    analysis = analyse_smear(path, mpp=mpp, model=model, genetic=genetic or None, device=device)
    yield Progress("cells", 1, 1, message=f"{len(analysis.cells)} white cells")
    report = SmearReport(analysis)
    if crop_px:
        report.crops = yield from cell_crops(path, analysis, crop_px)
    return report


def cell_crops(
    path: str | Path, analysis: SmearAnalysis, size: int
) -> Generator[Progress, None, list[np.ndarray]]:
    """A square crop around every cell (1.2 x its box), resized to ``size`` px."""
    from PIL import Image

    from omicslens.core import open_slide

    crops = []
    cells = analysis.cells
    with open_slide(path, mpp=analysis.mpp) as slide:
        for position, cell in enumerate(cells):
            x0, y0, x1, y1 = cell.box
            side = int(max(x1 - x0, y1 - y0) * 1.2) + 2
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            region = slide.read_region(int(cx - side / 2), int(cy - side / 2), side, side)
            image = Image.fromarray(np.ascontiguousarray(region[..., :3]))
            crops.append(np.asarray(image.resize((size, size))))
            if position % 25 == 24:
                yield Progress("crops", position + 1, len(cells))
    return crops


def export_smear(analysis: SmearAnalysis, folder: str | Path, force: bool = False) -> list[Path]:
    """cells.csv, QuPath cells GeoJSON, features.h5 and smear.json (patient.json too)."""
    return write_smear_outputs(analysis, folder, force=force)
