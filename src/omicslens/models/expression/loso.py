"""Leave-one-section-out members: each CNN is trained without one training section and
scored on it, clean and under the robustness report's perturbations.

Why: a model chosen on one validation section of the training patient (C6) is chosen for
that section. With ``members_from="loso"`` the ensemble has one CNN per training section,
so every training section is also a held-out section for one member, and a recipe can be
*selected* on those held-out scores (clean, stain-shifted, scanner-shifted, blurred,
zoomed and depth-thinned) without touching the validation section. The members, trained
on different sections, also disagree more where the data differ, which is what the
``ensemble_sd`` uncertainty needs.

The selection score is fixed here, before any run: the mean over :data:`CONDITIONS` of the
mean per-gene r on the held-out sections. Clean accuracy counts once; robustness counts
in every other condition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from omicslens.core.measured import pearson_per_column
from omicslens.core.perturb import Perturbation, perturb_windows, perturbation_named
from omicslens.models.expression.data import Section, cut_windows

#: Held-out conditions scored for every LOSO member (names of the robustness report's
#: perturbations; graded levels only, the stress levels stay out of selection).
CONDITIONS: tuple[str, ...] = (
    "identity",
    "hed-0.1",
    "gain-0.05",
    "gamma-0.8",
    "blur-1",
    "scale-1.1",
    "depth-650",
)


@dataclass
class HeldOutScore:
    """One member's per-gene r on the section it never saw, per condition."""

    section: str
    member: int
    pearson: dict[str, list[float]] = field(default_factory=dict)

    def mean(self, condition: str) -> float:
        return float(np.nanmean(self.pearson[condition]))


@dataclass
class LosoReport:
    scores: list[HeldOutScore]

    def condition_means(self) -> dict[str, float]:
        """Condition -> mean over held-out sections of the mean per-gene r."""
        return {
            condition: float(np.mean([score.mean(condition) for score in self.scores]))
            for condition in CONDITIONS
        }

    @property
    def selection_score(self) -> float:
        """The fixed selection rule: mean over conditions (see the module docstring)."""
        return float(np.mean(list(self.condition_means().values())))

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": "mean over conditions of the mean per-gene Pearson r on the held-out "
            "training section of each member",
            "conditions": list(CONDITIONS),
            "selection_score": round(self.selection_score, 4),
            "condition_means": {k: round(v, 4) for k, v in self.condition_means().items()},
            "sections": {
                score.section: {
                    condition: round(score.mean(condition), 4) for condition in CONDITIONS
                }
                for score in self.scores
            },
            "per_gene": {
                score.section: {
                    condition: [None if not np.isfinite(v) else round(v, 4) for v in values]
                    for condition, values in score.pearson.items()
                }
                for score in self.scores
            },
        }


def score_held_out(
    predict: Callable[[np.ndarray], np.ndarray],
    section: Section,
    windows: np.ndarray,
    genes: list[str],
    window_um: float,
    window_px: int,
    member: int,
    seed: int = 0,
) -> HeldOutScore:
    """Score ``predict`` (uint8 windows -> log1p genes) on a held-out ``section``."""
    measured = section.measured.normalised(genes)
    clean = predict(windows)
    score = HeldOutScore(section.name, member)
    keys = np.arange(len(windows))
    for name in CONDITIONS:
        perturbation: Perturbation = perturbation_named(name)
        if perturbation.kind == "identity":
            predicted, target = clean, measured
        elif perturbation.kind == "depth":
            thinned = section.measured.thinned(perturbation.strength, seed=seed)
            predicted, target = clean, thinned.normalised(genes)
        elif perturbation.kind == "scale":
            wider = cut_windows(section, window_um * perturbation.window_scale, window_px)
            predicted, target = predict(wider), measured
        else:
            changed = perturb_windows(windows, perturbation, keys=keys, seed=seed)
            predicted, target = predict(changed), measured
        score.pearson[name] = [float(v) for v in pearson_per_column(predicted, target)]
    return score


def held_out_folds(sections: Sequence[Section]) -> list[tuple[int, list[int]]]:
    """(held-out index, training indices) per training section; needs two or more."""
    if len(sections) < 2:
        raise ValueError(
            "leave-one-section-out members need at least two training sections "
            f"(got {len(sections)})"
        )
    return [(held, [i for i in range(len(sections)) if i != held]) for held in range(len(sections))]


def standardise_targets(
    targets: Sequence[np.ndarray], mode: str
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Standardised targets per section, and the mean/SD that map predictions back.

    ``pooled``: one mean/SD over all training spots (1.0.0 / 1.1.0). ``section``: each
    section standardised by its own mean/SD, so a section's sequencing depth or capture
    efficiency (which shifts and squeezes its log1p values) does not become something the
    network must predict from the image; predictions map back with the mean of the
    sections' means and SDs.
    """
    if mode == "pooled":
        pooled = np.concatenate(targets)
        mean, std = pooled.mean(0), pooled.std(0) + 1e-6
        return [(t - mean) / std for t in targets], mean, std
    if mode == "section":
        means = [t.mean(0) for t in targets]
        stds = [t.std(0) + 1e-6 for t in targets]
        scaled = [(t - m) / s for t, m, s in zip(targets, means, stds, strict=True)]
        return scaled, np.mean(means, axis=0), np.mean(stds, axis=0)
    raise ValueError(f"unknown target standardisation {mode!r}: use 'pooled' or 'section'")


def as_tensor(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
