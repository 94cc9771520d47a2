"""What the Predict dock says about its work: status lines and the out-of-domain warning.

Split out of :mod:`omicslens._napari.inference_widget` so that the wording of a loaded
model, live throughput, a finished whole-slide run and the first out-of-domain verdict
lives in one place, apart from the wiring that produces them. Plain functions of the
results; the dock puts the text in its status label.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omicslens.models.session import InferenceSession


def loaded_text(session: InferenceSession) -> str:
    """The status line once a model is ready for a slide."""
    device = session.predictor.device
    tissue = int(session.tissue_tiles.sum())
    trusted = " Running code you chose to trust." if session.predictor.trust_code else ""
    return (
        f"{session.bundle.name} on {device}: {tissue} tissue tiles of "
        f"{session.grid.tile_um:g} um; {session.store.done_count} already predicted." + trusted
    )


def stats_text(stats: Any) -> str:
    """Live throughput of the running prediction."""
    return (
        f"{stats.done} tiles predicted · {stats.queued} queued · "
        f"{stats.tiles_per_second:.1f} tiles/s"
        + (f" · {stats.failed} failed" if stats.failed else "")
    )


def whole_slide_text(run: Any) -> str:
    """The end of a whole-slide run: predicted, cached and failed tiles."""
    return (
        f"Whole slide: {run.predicted} tiles predicted, {run.cached} were cached"
        + (f", {len(run.failures)} failed ({run.failures[0].describe()})" if run.failures else "")
        + "."
    )


def warn_out_of_domain(verdict: Any) -> None:
    """A napari warning toast for the first out-of-domain verdict of a model."""
    from omicslens._napari.notify import Problem, notify

    # short: napari's toast cuts long lines; Details and the Predict tab say more
    notify(
        Problem(
            "OmicsLens: out of the model's domain. Do not trust this map.",
            f"{verdict.warning}\n\nMedian domain distance {verdict.median_distance:.2f}, "
            f"90th percentile {verdict.p90_distance:.2f} (1 = the 95th percentile of "
            "the model's training tiles). Show the domain_distance output to see "
            "where.",
        ),
        severity="warning",
    )
