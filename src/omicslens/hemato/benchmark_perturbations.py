"""The image perturbations that apply to white-cell detection, and one condition's line
of the robustness report.

Split out of :mod:`omicslens.hemato.benchmark` (which re-exports these names): which of
the default perturbations (:mod:`omicslens.core.perturb`) a detector's input pixels can
take, looked up by name for ``omicslens hemato-benchmark --perturb``.
"""

from __future__ import annotations

from typing import Any

from omicslens.core.perturb import DEFAULT_PERTURBATIONS, Perturbation, perturbation_named

__all__ = ["DETECTION_KINDS", "DETECTION_PERTURBATIONS", "detection_perturbation"]

#: Perturbation kinds that apply to a detector's input pixels (``scale`` is a read of a
#: slide at another window size and ``depth`` thins expression counts: neither applies).
DETECTION_KINDS = ("identity", "hed", "gain", "gamma", "jpeg", "blur")

#: The default perturbations that apply to detection, identity first.
DETECTION_PERTURBATIONS: tuple[Perturbation, ...] = tuple(
    p for p in DEFAULT_PERTURBATIONS if p.kind in DETECTION_KINDS
)


def detection_perturbation(name: str) -> Perturbation:
    """The default perturbation ``name`` if it applies to detection (ValueError otherwise)."""
    return perturbation_named(name, DETECTION_PERTURBATIONS, "detection perturbation")


def _summary(report: dict[str, Any], reference_f1: float | None) -> dict[str, Any]:
    """One condition's line of the robustness report, from a detection report."""
    scores = report["all"]
    perturbation = report.get("perturbation", {})
    entry: dict[str, Any] = {
        "name": perturbation.get("name", "identity"),
        "description": perturbation.get("description", "no change"),
        **scores,
        "delta_f1": round(scores["f1"] - reference_f1, 4) if reference_f1 is not None else 0.0,
        "fields_not_perfect": [item["id"] for item in report["fields_not_perfect"]],
        "seconds": report["seconds"],
    }
    if "estimated_mpp" in report:
        entry["estimated_mpp_median"] = report["estimated_mpp"]["median"]
    if "sigma_field_px_median" in perturbation:
        entry["sigma_field_px_median"] = perturbation["sigma_field_px_median"]
    return entry
