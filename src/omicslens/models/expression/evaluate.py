"""Predicted versus measured expression at the measured spots.

For each spot, the model sees the same window the engine would read for a tile centred
on that spot; its prediction (log1p normalised counts) is compared with the spot's
measured counts normalised the same way, gene by gene (Pearson r over spots).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from omicslens.core.measured import MeasuredExpression, pearson_per_column
from omicslens.core.patches import read_centred
from omicslens.core.slide import Slide
from omicslens.models.predictor import Predictor


@dataclass
class SpotEvaluation:
    genes: list[str]  # outputs that were measured
    pearson: list[float]
    predicted: np.ndarray  # (spots, genes)
    measured: np.ndarray  # (spots, genes) log1p normalised
    unmeasured: list[str]  # model outputs absent from the measured data
    n_spots: int

    @property
    def mean_pearson(self) -> float:
        return float(np.nanmean(self.pearson)) if self.pearson else float("nan")

    def as_dict(self) -> dict[str, object]:
        return {
            "n_spots": self.n_spots,
            "mean_pearson": round(self.mean_pearson, 4),
            "pearson": {g: _json_float(r) for g, r in zip(self.genes, self.pearson, strict=True)},
            "unmeasured_outputs": self.unmeasured,
        }


def predict_at_points(
    slide: Slide, x: np.ndarray, y: np.ndarray, predictor: Predictor
) -> np.ndarray:
    """(points, outputs) predictions from model windows centred on level-0 points."""
    config = predictor.bundle.config
    window_um = config.patch_size_pixels * config.spacing_um_px
    windows = np.stack(
        [
            read_centred(slide, float(px), float(py), window_um, config.patch_size_pixels)
            for px, py in zip(x, y, strict=True)
        ]
    )
    return predictor.predict(windows)


def predict_at_spots(
    slide: Slide, measured: MeasuredExpression, predictor: Predictor, batch: int = 64
) -> np.ndarray:
    """(spots, outputs) predictions from windows centred on every measured spot."""
    rows = [
        predict_at_points(
            slide, measured.x[start : start + batch], measured.y[start : start + batch], predictor
        )
        for start in range(0, measured.n_spots, batch)
    ]
    return np.concatenate(rows)


def score_at_spots(
    measured: MeasuredExpression, predictor: Predictor, predicted: np.ndarray
) -> SpotEvaluation:
    """Pearson r per gene of ``predicted`` (spots, all outputs) against ``measured``."""
    outputs = list(predictor.output_names)
    meta: Sequence[Mapping[str, Any]] = predictor.bundle.config.outputs or [{} for _ in outputs]
    genes = [name for name, m in zip(outputs, meta, strict=True) if m.get("kind") != "uncertainty"]
    measured_genes = set(measured.genes)
    present = [gene for gene in genes if gene in measured_genes]
    missing = [gene for gene in genes if gene not in measured_genes]
    columns = [outputs.index(gene) for gene in present]
    chosen = predicted[:, columns]
    truth = measured.normalised(present)
    r = pearson_per_column(chosen, truth)
    return SpotEvaluation(
        genes=present,
        pearson=[float(v) for v in r],
        predicted=chosen,
        measured=truth,
        unmeasured=missing,
        n_spots=measured.n_spots,
    )


def evaluate_at_spots(
    slide: Slide, measured: MeasuredExpression, predictor: Predictor
) -> SpotEvaluation:
    return score_at_spots(measured, predictor, predict_at_spots(slide, measured, predictor))


def _json_float(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None
