"""The robustness job on real data: HER2ST C6 cut with the bundled expression model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from omicslens.app.progress import Progress, run_job
from omicslens.app.robustness import RobustnessInputError, robustness_job
from omicslens.app.tiles import load_predictor
from omicslens.core import open_slide
from omicslens.core.measured import load_measured, pearson_per_column
from omicslens.core.perturb import perturbation_named
from omicslens.models.expression.evaluate import evaluate_at_spots
from tests.conftest import DATA
from tests.helpers.bundles import make_bundle

CUT = DATA / "her2st-cut"
CHOSEN = ["hed-0.1", "jpeg-30", "scale-1.1", "depth-650"]  # identity is added first


@pytest.fixture(scope="module")
def run() -> tuple:
    measured = load_measured(CUT, section="C6")
    predictor = load_predictor("her2st-expression", device="cpu")
    steps: list[Progress] = []
    with open_slide(CUT / "images" / "C6.jpg", mpp=measured.pitch_mpp()) as slide:
        job = robustness_job(
            slide, measured, predictor, [perturbation_named(n) for n in CHOSEN], batch=8
        )
        report = run_job(job, steps.append)
        direct = evaluate_at_spots(slide, measured, predictor)
    return report, steps, direct, measured, predictor


def test_report_covers_every_perturbation_and_gene(run) -> None:
    report, steps, direct, measured, _ = run
    assert [r.name for r in report.perturbations] == ["identity", *CHOSEN]
    assert report.n_spots == measured.n_spots == 22
    assert report.genes == direct.genes
    assert report.uncertainty_output == "ensemble_sd"
    assert report.mpp == pytest.approx(measured.pitch_mpp())
    # progress: per batch of 8 spots, per image perturbation (4 of them with identity)
    assert steps[-1].done == steps[-1].total == 22 * 4
    assert all(s.stage == "predictions" for s in steps)
    assert [s.done for s in steps] == sorted(s.done for s in steps)


def test_identity_is_the_clean_evaluation_with_stability_one(run) -> None:
    report, _, direct, _, _ = run
    clean = report.clean
    assert clean.stability == [1.0] * len(report.genes)  # exactly
    np.testing.assert_allclose(clean.pearson, direct.pearson, atol=1e-6)


def test_perturbations_move_predictions_and_depth_thins_the_targets(run) -> None:
    report, _, direct, measured, _ = run
    for name in ("hed-0.1", "jpeg-30", "scale-1.1"):
        stability = np.array(report.result(name).stability)
        assert np.nanmax(stability) <= 1.0 and np.nanmean(stability) < 1.0
        assert report.result(name).mean_uncertainty is not None
    depth = report.result("depth-650")
    assert depth.stability is None and depth.mean_uncertainty is None
    thinned = measured.thinned(650, seed=0)
    expected = pearson_per_column(direct.predicted, thinned.normalised(report.genes))
    np.testing.assert_allclose(depth.pearson, expected, atol=1e-6)
    assert depth.details["median_umi_after"] == pytest.approx(650, abs=60)
    summaries = report.gene_summaries()
    assert len(summaries) == len(report.genes)
    assert {s.grade for s in summaries} <= {"A", "B", "C", "D"}
    assert all(s.least_stable in CHOSEN[:3] for s in summaries)


def test_a_model_with_no_measured_output_is_refused(tmp_path: Path) -> None:
    measured = load_measured(CUT, section="C6")
    bundle = make_bundle(tmp_path / "b", outputs=["NOT_A_GENE"], spacing=1.0)
    with (
        open_slide(CUT / "images" / "C6.jpg", mpp=measured.pitch_mpp()) as slide,
        pytest.raises(RobustnessInputError, match="none of the model's outputs"),
    ):
        run_job(robustness_job(slide, measured, load_predictor(bundle)))
