"""Robustness reports: how predictions at measured spots hold up under perturbations.

A :class:`RobustnessReport` holds, per perturbation (see :mod:`omicslens.core.perturb`)
and per gene, the Pearson r of the predictions against the measured expression and the
*stability*: the Pearson r over spots of the perturbed against the clean predictions
(1 means the perturbation does not change which spots the model ranks high). From those
each gene gets a grade (:func:`grade`, rule in :data:`GRADE_RULE` and
docs/expression.md). Reports are JSON (:func:`write_report`, atomic) and a bundle may carry
one as ``robustness.json`` (:func:`load_bundle_robustness`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.atomic import write_text_atomic
from omicslens.core.errors import OmicsLensError
from omicslens.core.measured import pearson_per_column

REPORT_FILE = "robustness.json"
FORMAT_VERSION = 1

#: (grade, least min stability, largest r drop), best first; anything else is "D"
GRADE_THRESHOLDS: tuple[tuple[str, float, float], ...] = (
    ("A", 0.90, 0.05),
    ("B", 0.75, 0.10),
    ("C", 0.50, 0.20),
)
#: Stress levels: reported in every table, but not graded. The strongest level of stain
#: jitter, JPEG and blur (2.8 um defocus at 1.4 um/px) is what a failed scan or a stain far
#: outside any lab's range does; a grade dominated by it said "D" for every gene of every
#: model and so told a user nothing about the realistic shifts. (Set after the first
#: bundled report; see docs/expression.md, "Robustness".)
STRESS_TESTS = frozenset({"hed-0.2", "jpeg-30", "blur-2"})

GRADE_RULE = (
    "over the image perturbations except the stress levels hed-0.2, jpeg-30 and blur-2 "
    "(identity and depth excluded): A if the lowest stability >= 0.90 and the largest drop "
    "of r against measured <= 0.05; B if >= 0.75 and <= 0.10; C if >= 0.50 and <= 0.20; "
    "D otherwise (also when undefined)"
)


class RobustnessReportError(OmicsLensError, ValueError):
    """A robustness.json that cannot be read."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}")


def grade(min_stability: float, max_drop: float) -> str:
    """The grade of one gene from its lowest stability and largest r drop (see above)."""
    if not (math.isfinite(min_stability) and math.isfinite(max_drop)):
        return "D"
    for name, stability, drop in GRADE_THRESHOLDS:
        if min_stability >= stability and max_drop <= drop:
            return name
    return "D"


def stability_per_column(perturbed: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Pearson r over rows of each column of ``perturbed`` with ``clean`` (float64,
    clipped to [-1, 1]; identical columns give exactly 1; NaN where constant)."""
    r = pearson_per_column(
        np.asarray(perturbed, dtype=np.float64), np.asarray(clean, dtype=np.float64)
    )
    return np.clip(np.asarray(r, dtype=np.float64), -1.0, 1.0)


@dataclass
class PerturbationResult:
    """Scores under one perturbation, gene by gene (in the report's gene order)."""

    name: str
    kind: str
    strength: float
    pearson: list[float]  # r vs measured, per gene
    stability: list[float] | None  # r vs the clean predictions; None when not on the image
    mean_uncertainty: float | None = None  # mean of the uncertainty output, when there is one
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def on_image(self) -> bool:
        return self.stability is not None

    @property
    def mean_pearson(self) -> float:
        return _nanmean(self.pearson)

    @property
    def mean_stability(self) -> float | None:
        return None if self.stability is None else _nanmean(self.stability)

    def as_dict(self, genes: Sequence[str]) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "strength": self.strength,
            "mean_pearson": _json(self.mean_pearson),
            "mean_stability": None if self.stability is None else _json(self.mean_stability),
            "mean_uncertainty": _json(self.mean_uncertainty),
            "seconds": round(self.seconds, 2),
            "details": self.details,
            "pearson": {g: _json(v) for g, v in zip(genes, self.pearson, strict=True)},
            "stability": None
            if self.stability is None
            else {g: _json(v) for g, v in zip(genes, self.stability, strict=True)},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], genes: Sequence[str]) -> PerturbationResult:
        stability = data.get("stability")
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            strength=float(data["strength"]),
            pearson=[_float(data["pearson"].get(g)) for g in genes],
            stability=None if stability is None else [_float(stability.get(g)) for g in genes],
            mean_uncertainty=None
            if data.get("mean_uncertainty") is None
            else float(data["mean_uncertainty"]),
            seconds=float(data.get("seconds", 0.0)),
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class GeneRobustness:
    """One gene's summary: clean r, worst stability and r drop over image perturbations."""

    gene: str
    clean_pearson: float
    min_stability: float
    least_stable: str  # the perturbation giving min_stability
    max_drop: float  # clean r - perturbed r, largest over image perturbations
    largest_drop: str
    grade: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "clean_pearson": _json(self.clean_pearson),
            "min_stability": _json(self.min_stability),
            "least_stable": self.least_stable,
            "max_drop": _json(self.max_drop),
            "largest_drop": self.largest_drop,
            "grade": self.grade,
        }


@dataclass
class RobustnessReport:
    """The whole report for one model on one measured section."""

    model: str
    model_version: str
    slide: str
    measured: str
    n_spots: int
    genes: list[str]
    perturbations: list[PerturbationResult]
    mpp: float | None = None
    seed: int = 0
    bundle_hash: str | None = None
    uncertainty_output: str | None = None
    seconds: float = 0.0
    device: str | None = None
    created: str | None = None

    # -- lookups -------------------------------------------------------------------
    def result(self, name: str) -> PerturbationResult:
        for result in self.perturbations:
            if result.name == name:
                return result
        raise KeyError(name)

    @property
    def clean(self) -> PerturbationResult:
        """The identity result: the unperturbed predictions' scores."""
        for result in self.perturbations:
            if result.kind == "identity":
                return result
        raise KeyError("identity")

    @property
    def image_results(self) -> list[PerturbationResult]:
        """Results that perturb the image (identity and stress levels excluded): the
        ones graded."""
        return [
            r
            for r in self.perturbations
            if r.on_image and r.kind != "identity" and r.name not in STRESS_TESTS
        ]

    # -- summaries -----------------------------------------------------------------
    def gene_summaries(self) -> list[GeneRobustness]:
        clean = self.clean.pearson
        images = self.image_results
        out = []
        for g, gene in enumerate(self.genes):
            stabilities = [(_nan(r.stability[g] if r.stability else None), r.name) for r in images]
            drops = [(clean[g] - r.pearson[g], r.name) for r in images]
            low, low_name = _extreme(stabilities, lowest=True)
            drop, drop_name = _extreme(drops, lowest=False)
            out.append(
                GeneRobustness(
                    gene=gene,
                    clean_pearson=clean[g],
                    min_stability=low,
                    least_stable=low_name,
                    max_drop=drop,
                    largest_drop=drop_name,
                    grade=grade(low, drop) if images else "D",
                )
            )
        return out

    @property
    def grades(self) -> dict[str, str]:
        return {s.gene: s.grade for s in self.gene_summaries()}

    def grade_counts(self) -> dict[str, int]:
        counts = {name: 0 for name, *_ in GRADE_THRESHOLDS} | {"D": 0}
        for value in self.grades.values():
            counts[value] += 1
        return counts

    def least_robust(self, n: int = 5) -> list[GeneRobustness]:
        """The ``n`` genes with the lowest worst-case stability (largest r drop breaks
        ties; undefined stability counts as the lowest)."""
        summaries = self.gene_summaries()
        return sorted(
            summaries,
            key=lambda s: (
                s.min_stability if math.isfinite(s.min_stability) else -math.inf,
                -s.max_drop if math.isfinite(s.max_drop) else -math.inf,
            ),
        )[:n]

    @property
    def mean_stability(self) -> float:
        """Mean over image perturbations and genes of the stability."""
        values = [v for r in self.image_results for v in (r.stability or [])]
        return _nanmean(values)

    # -- JSON ----------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        return {
            "format": "omicslens-robustness",
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "model_version": self.model_version,
            "bundle_hash": self.bundle_hash,
            "slide": self.slide,
            "measured": self.measured,
            "mpp": self.mpp,
            "n_spots": self.n_spots,
            "seed": self.seed,
            "device": self.device,
            "created": self.created,
            "seconds": round(self.seconds, 1),
            "uncertainty_output": self.uncertainty_output,
            "grade_rule": GRADE_RULE,
            "summary": {
                "mean_stability": _json(self.mean_stability),
                "grade_counts": self.grade_counts(),
                "perturbations": [
                    {
                        "name": r.name,
                        "mean_pearson": _json(r.mean_pearson),
                        "pearson_drop": _json(self.clean.mean_pearson - r.mean_pearson),
                        "mean_stability": None if r.stability is None else _json(r.mean_stability),
                    }
                    for r in self.perturbations
                ],
                "least_robust": [s.gene for s in self.least_robust(5)],
            },
            "genes": self.genes,
            "per_gene": {s.gene: s.as_dict() for s in self.gene_summaries()},
            "perturbations": [r.as_dict(self.genes) for r in self.perturbations],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RobustnessReport:
        genes = [str(g) for g in data["genes"]]
        return cls(
            model=str(data["model"]),
            model_version=str(data.get("model_version", "")),
            slide=str(data.get("slide", "")),
            measured=str(data.get("measured", "")),
            n_spots=int(data["n_spots"]),
            genes=genes,
            perturbations=[PerturbationResult.from_dict(p, genes) for p in data["perturbations"]],
            mpp=None if data.get("mpp") is None else float(data["mpp"]),
            seed=int(data.get("seed", 0)),
            bundle_hash=data.get("bundle_hash"),
            uncertainty_output=data.get("uncertainty_output"),
            seconds=float(data.get("seconds", 0.0)),
            device=data.get("device"),
            created=data.get("created"),
        )


def write_report(report: RobustnessReport, path: str | Path) -> Path:
    """Write ``report`` as JSON, atomically (a reader never sees half a file)."""
    return write_text_atomic(path, json.dumps(report.as_dict(), indent=2, allow_nan=False) + "\n")


#: a report larger than this is refused before it is parsed
MAX_REPORT_BYTES = 64 * 2**20


def read_report(path: str | Path) -> RobustnessReport:
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise RobustnessReportError(path, "does not exist")
    if not path.is_file():  # a FIFO would block the read, a folder is no report
        raise RobustnessReportError(path, "not a regular file")
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise RobustnessReportError(path, "larger than 64 MiB; not a robustness report")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RobustnessReportError(path, "does not exist") from exc
    except (OSError, ValueError, RecursionError) as exc:
        raise RobustnessReportError(path, f"not readable JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != "omicslens-robustness":
        raise RobustnessReportError(path, "not an omicslens robustness report")
    try:
        return RobustnessReport.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise RobustnessReportError(path, f"malformed report ({exc!r:.300})") from None


def load_bundle_robustness(bundle_folder: str | Path) -> RobustnessReport | None:
    """The ``robustness.json`` a bundle folder carries, or None when it has none."""
    path = Path(bundle_folder) / REPORT_FILE
    if not path.exists() and not path.is_symlink():
        return None
    return read_report(path)


# -- helpers ---------------------------------------------------------------------------
def _nanmean(values: Sequence[float | None]) -> float:
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _extreme(pairs: list[tuple[float, str]], lowest: bool) -> tuple[float, str]:
    """The lowest (or highest) value and its name; NaN beats everything (worst case)."""
    if not pairs:
        return float("nan"), ""
    for value, name in pairs:
        if not math.isfinite(value):
            return float("nan"), name
    value, name = (min if lowest else max)(pairs, key=lambda pair: pair[0])
    return float(value), name


def _json(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 4)


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)
