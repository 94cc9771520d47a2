"""Robustness of an expression model at measured spots (``omicslens robustness``).

For every measured spot the model's window is read once (as ``evaluate-expression``
does), then predicted clean and under each image perturbation of
:mod:`omicslens.core.perturb` (stain, colour, gamma, JPEG, blur; the resolution error is
a second read of the slide with a larger or smaller window). Depth perturbations thin
the measured counts instead and score the clean predictions against them. The result is
a :class:`~omicslens.core.robustness.RobustnessReport`: per perturbation and gene, r
against measured and stability (r of perturbed vs clean predictions over spots).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from omicslens.app.progress import Progress
from omicslens.core.errors import OmicsLensError
from omicslens.core.measured import MeasuredExpression, pearson_per_column
from omicslens.core.perturb import DEFAULT_PERTURBATIONS, Perturbation, perturb_windows
from omicslens.core.robustness import PerturbationResult, RobustnessReport, stability_per_column
from omicslens.core.slide import Slide
from omicslens.models.expression.evaluate import windows_at_points
from omicslens.models.predictor import Predictor

SPOT_BATCH = 32


class RobustnessInputError(OmicsLensError, ValueError):
    """The model, the measured data and the perturbations do not make a robustness run."""


def robustness_job(
    slide: Slide,
    measured: MeasuredExpression,
    predictor: Predictor,
    perturbations: Sequence[Perturbation] = DEFAULT_PERTURBATIONS,
    *,
    seed: int = 0,
    batch: int = SPOT_BATCH,
    slide_name: str | None = None,
) -> Generator[Progress, None, RobustnessReport]:
    """Predict at every spot clean and perturbed (progress per batch and perturbation),
    then score; returns the report. An identity perturbation is added first if missing."""
    started = time.monotonic()
    width, height = slide.dimensions  # spots off the slide: skipped, or a typed error
    measured = measured.inside(width, height, slide.path)
    genes, columns, uncertainty = _scored_outputs(measured, predictor)
    chosen = _with_identity(perturbations)
    images = [p for p in chosen if p.on_image]
    total = measured.n_spots * len(images)
    rows: dict[str, list[np.ndarray]] = {p.name: [] for p in images}
    seconds = {p.name: 0.0 for p in chosen}
    done = 0
    for start in range(0, measured.n_spots, batch):
        stop = min(start + batch, measured.n_spots)
        x, y = measured.x[start:stop], measured.y[start:stop]
        tick = time.monotonic()
        clean = windows_at_points(slide, x, y, predictor)
        read_seconds = time.monotonic() - tick
        keys = np.arange(start, stop)
        for perturbation in images:
            tick = time.monotonic()
            if perturbation.kind == "scale":
                windows = windows_at_points(slide, x, y, predictor, perturbation.window_scale)
            elif perturbation.kind == "identity":
                windows = clean
            else:
                windows = perturb_windows(clean, perturbation, keys, seed)
            rows[perturbation.name].append(predictor.predict(windows))
            seconds[perturbation.name] += time.monotonic() - tick
            if perturbation.kind == "identity":
                seconds[perturbation.name] += read_seconds
            done += stop - start
            yield Progress("predictions", done, total, message=perturbation.name)
    predicted = {name: np.concatenate(parts) for name, parts in rows.items()}
    clean_all = predicted[chosen[0].name]
    truth = measured.normalised(genes)
    results = []
    for perturbation in chosen:
        tick = time.monotonic()
        details: dict[str, Any] = {"description": perturbation.describe()}
        if perturbation.on_image:
            values = predicted[perturbation.name]
            r = pearson_per_column(values[:, columns], truth)
            stability: list[float] | None = [
                float(v) for v in stability_per_column(values[:, columns], clean_all[:, columns])
            ]
            mean_uncertainty = (
                None if uncertainty is None else float(np.mean(values[:, uncertainty]))
            )
        else:
            thinned = measured.thinned(perturbation.strength, seed=seed)
            r = pearson_per_column(clean_all[:, columns], thinned.normalised(genes))
            stability = None
            mean_uncertainty = None
            details |= {
                "median_umi_before": float(np.median(measured.counts.sum(axis=1))),
                "median_umi_after": float(np.median(thinned.counts.sum(axis=1))),
            }
        results.append(
            PerturbationResult(
                name=perturbation.name,
                kind=perturbation.kind,
                strength=float(perturbation.strength),
                pearson=[float(v) for v in r],
                stability=stability,
                mean_uncertainty=mean_uncertainty,
                seconds=seconds[perturbation.name] + time.monotonic() - tick,
                details=details,
            )
        )
    bundle = predictor.bundle
    outputs = list(predictor.output_names)
    return RobustnessReport(
        model=bundle.name,
        model_version=str(bundle.config.version),
        slide=slide_name or str(getattr(slide, "path", "")),
        measured=measured.source,
        n_spots=measured.n_spots,
        genes=genes,
        perturbations=results,
        mpp=float(slide.mpp_x),
        seed=seed,
        bundle_hash=bundle.bundle_hash,
        uncertainty_output=None if uncertainty is None else outputs[uncertainty],
        seconds=time.monotonic() - started,
        device=str(predictor.device),
        created=datetime.now(UTC).replace(microsecond=0).isoformat(),
    )


def _scored_outputs(
    measured: MeasuredExpression, predictor: Predictor
) -> tuple[list[str], list[int], int | None]:
    """(measured genes, their output columns, the uncertainty output's column or None)."""
    outputs = list(predictor.output_names)
    meta: Sequence[Mapping[str, Any]] = predictor.bundle.output_meta
    if predictor.bundle.config.task != "regression":
        raise RobustnessInputError(
            f"{predictor.bundle.name}: robustness needs an expression (regression) model, "
            f"not task {predictor.bundle.config.task!r}"
        )
    kinds = [m.get("kind") for m in meta]
    known = set(measured.genes)
    columns = [
        i
        for i, (name, kind) in enumerate(zip(outputs, kinds, strict=True))
        if kind not in ("uncertainty", "domain") and name in known
    ]
    if not columns:
        raise RobustnessInputError(
            f"{measured.source}: none of the model's outputs ({', '.join(outputs[:5])}...) "
            "is a measured gene"
        )
    if measured.n_spots < 3:
        raise RobustnessInputError(f"{measured.source}: {measured.n_spots} spots; need >= 3")
    uncertainty = next((i for i, kind in enumerate(kinds) if kind == "uncertainty"), None)
    return [outputs[i] for i in columns], columns, uncertainty


def _with_identity(perturbations: Sequence[Perturbation]) -> list[Perturbation]:
    names = [p.name for p in perturbations]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise RobustnessInputError(f"perturbations named twice: {', '.join(duplicated)}")
    identity = [p for p in perturbations if p.kind == "identity"]
    rest = [p for p in perturbations if p.kind != "identity"]
    return [identity[0] if identity else Perturbation("identity", "identity"), *rest]
