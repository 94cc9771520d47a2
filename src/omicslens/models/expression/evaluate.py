"""Predicted versus measured expression at the measured spots.

For each spot, the model sees the same window the engine would read for a tile centred
on that spot; its prediction (log1p normalised counts) is compared with the spot's
measured counts normalised the same way, gene by gene (Pearson r over spots).

When the bundle has an uncertainty output (``outputs[i].kind == "uncertainty"``, e.g.
``ensemble_sd``), its calibration is measured too: the Spearman rank correlation of the
uncertainty with the absolute error, per gene (``|predicted - measured|`` of that gene)
and overall (the mean over genes of ``|error| / SD``, the SD being the gene's training SD
``outputs[i].train_std`` where the bundle records it, else its measured SD). Positive
values mean the uncertainty ranks spots by how wrong the prediction is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from omicslens.core.measured import (
    MeasuredExpression,
    pearson_per_column,
    spearman,
    spearman_per_column,
)
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
    #: the uncertainty output scored (None: the bundle has none)
    uncertainty_output: str | None = None
    #: per gene: Spearman of the uncertainty output vs |predicted - measured| of the gene
    uncertainty_spearman: dict[str, float] | None = None
    #: Spearman of the uncertainty vs the mean over genes of |error| / training SD
    uncertainty_spearman_overall: float | None = None

    @property
    def mean_pearson(self) -> float:
        return float(np.nanmean(self.pearson)) if self.pearson else float("nan")

    @property
    def uncertainty_spearman_median(self) -> float | None:
        """Median over genes of the per-gene uncertainty Spearman (None without one)."""
        if not self.uncertainty_spearman:
            return None
        values = np.array(list(self.uncertainty_spearman.values()), dtype=np.float64)
        finite = values[np.isfinite(values)]
        return float(np.median(finite)) if finite.size else float("nan")

    def as_dict(self) -> dict[str, object]:
        summary: dict[str, object] = {
            "n_spots": self.n_spots,
            "mean_pearson": _json_float(self.mean_pearson),
            "pearson": {g: _json_float(r) for g, r in zip(self.genes, self.pearson, strict=True)},
            "unmeasured_outputs": self.unmeasured,
        }
        if self.uncertainty_spearman is not None:
            median = self.uncertainty_spearman_median
            summary["uncertainty"] = {
                "output": self.uncertainty_output,
                "spearman_overall": _json_float(
                    float("nan")
                    if self.uncertainty_spearman_overall is None
                    else self.uncertainty_spearman_overall
                ),
                "spearman_median_over_genes": _json_float(
                    float("nan") if median is None else median
                ),
                "spearman": {g: _json_float(v) for g, v in self.uncertainty_spearman.items()},
            }
        return summary


def windows_at_points(
    slide: Slide, x: np.ndarray, y: np.ndarray, predictor: Predictor, scale: float = 1.0
) -> np.ndarray:
    """(points, px, px, 3) uint8 model windows centred on level-0 points.

    ``scale`` != 1 reads ``scale`` times the model's window into the same pixel count
    (a resolution error of the slide's stated pixel size, for robustness checks).
    """
    config = predictor.bundle.config
    window_um = config.patch_size_pixels * config.spacing_um_px * scale
    size = config.patch_size_pixels
    if len(x) == 0:
        return np.empty((0, size, size, 3), dtype=np.uint8)
    return np.stack(
        [
            read_centred(slide, float(px), float(py), window_um, size)
            for px, py in zip(x, y, strict=True)
        ]
    )


def predict_at_points(
    slide: Slide, x: np.ndarray, y: np.ndarray, predictor: Predictor
) -> np.ndarray:
    """(points, outputs) predictions from model windows centred on level-0 points."""
    return predictor.predict(windows_at_points(slide, x, y, predictor))


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
    meta: Sequence[Mapping[str, Any]] = predictor.bundle.output_meta
    genes = [
        name
        for name, m in zip(outputs, meta, strict=True)
        if m.get("kind") not in ("uncertainty", "domain")
    ]
    measured_genes = set(measured.genes)
    present = [gene for gene in genes if gene in measured_genes]
    missing = [gene for gene in genes if gene not in measured_genes]
    columns = [outputs.index(gene) for gene in present]
    chosen = predicted[:, columns]
    truth = measured.normalised(present)
    r = pearson_per_column(chosen, truth)
    evaluation = SpotEvaluation(
        genes=present,
        pearson=[float(v) for v in r],
        predicted=chosen,
        measured=truth,
        unmeasured=missing,
        n_spots=measured.n_spots,
    )
    uncertain = [i for i, m in enumerate(meta) if m.get("kind") == "uncertainty"]
    if uncertain and present:
        column = uncertain[0]
        uncertainty = predicted[:, column].astype(np.float64)
        sd = np.array(
            [_training_sd(meta[outputs.index(gene)], truth[:, i]) for i, gene in enumerate(present)]
        )
        per_gene, overall = uncertainty_calibration(uncertainty, chosen, truth, sd)
        evaluation.uncertainty_output = outputs[column]
        evaluation.uncertainty_spearman = {
            gene: float(v) for gene, v in zip(present, per_gene, strict=True)
        }
        evaluation.uncertainty_spearman_overall = overall
    return evaluation


def uncertainty_calibration(
    uncertainty: np.ndarray, predicted: np.ndarray, truth: np.ndarray, sd: np.ndarray
) -> tuple[np.ndarray, float]:
    """Spearman of ``uncertainty`` (spots,) vs |error| per gene, and vs the mean over
    genes of |error| / ``sd`` (genes,). NaN where a side is constant."""
    error = np.abs(predicted.astype(np.float64) - truth.astype(np.float64))
    per_gene = spearman_per_column(error, uncertainty)
    scaled = error / np.where(sd > 0, sd, np.nan)
    usable = np.isfinite(scaled).all(axis=0)
    overall = spearman(uncertainty, scaled[:, usable].mean(axis=1)) if usable.any() else np.nan
    return per_gene, float(overall)


def _training_sd(meta: Mapping[str, Any], measured_column: np.ndarray) -> float:
    value = meta.get("train_std")
    if isinstance(value, int | float) and np.isfinite(value) and value > 0:
        return float(value)
    return float(np.std(measured_column))


def evaluate_at_spots(
    slide: Slide, measured: MeasuredExpression, predictor: Predictor
) -> SpotEvaluation:
    return score_at_spots(measured, predictor, predict_at_spots(slide, measured, predictor))


def _json_float(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None
