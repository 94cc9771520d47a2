"""Predicted against measured expression at the measured spots (CLI and Predict dock).

``omicslens evaluate-expression`` and the dock's "Measured expression" panel both run
:func:`compare_with_measured`: the model sees a window centred on every spot (the window
the engine reads for a tile there), and each gene's prediction is scored against the
spot's measured counts normalised the same way (Pearson r over spots).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omicslens.app.progress import Progress
from omicslens.core.measured import MeasuredExpression
from omicslens.core.slide import Slide
from omicslens.models.expression.evaluate import (
    SpotEvaluation,
    predict_at_points,
    score_at_spots,
)
from omicslens.models.predictor import Predictor

SPOT_BATCH = 64


def measured_with_resolution(
    path: str | Path, section: str | None, mpp: float | None, from_spots: bool
) -> tuple[MeasuredExpression, float | None]:
    """The measured spots and the slide resolution to use with them: ``mpp`` as given,
    or (``from_spots``) measured from the ST array's 200 um pitch. Typed errors."""
    from omicslens.core.errors import OmicsLensError
    from omicslens.core.measured import load_measured

    measured = load_measured(path, section=section)
    if from_spots:
        mpp = measured.pitch_mpp()
        if mpp is None:
            raise OmicsLensError(f"{path}: no array coordinates to measure the pitch")
    return measured, mpp


@dataclass
class MeasuredComparison:
    measured: MeasuredExpression
    predicted: np.ndarray  # (spots, every model output)
    evaluation: SpotEvaluation  # the measured genes only, with Pearson r


def compare_with_measured(
    slide: Slide,
    measured: MeasuredExpression,
    predictor: Predictor,
    batch: int = SPOT_BATCH,
) -> Generator[Progress, None, MeasuredComparison]:
    """Predict at every spot (yielding progress per batch), then score per gene.

    Spots whose centre is not on the slide are skipped with a warning; none on it is a
    typed error (positions of another image, or of another resolution)."""
    width, height = slide.dimensions
    measured = measured.inside(width, height, slide.path)
    rows = []
    total = measured.n_spots
    for start in range(0, total, batch):
        stop = min(start + batch, total)
        rows.append(
            predict_at_points(slide, measured.x[start:stop], measured.y[start:stop], predictor)
        )
        yield Progress("spots", stop, total)
    outputs = len(predictor.output_names)
    predicted = np.concatenate(rows) if rows else np.empty((0, outputs), np.float32)
    return MeasuredComparison(measured, predicted, score_at_spots(measured, predictor, predicted))
