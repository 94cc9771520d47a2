"""The measured-vs-predicted and smear jobs, iterated plainly (no Qt), on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omicslens.app.measured import compare_with_measured
from omicslens.app.progress import Progress, run_job
from omicslens.app.smear import export_smear, smear_job
from omicslens.app.tiles import load_predictor
from omicslens.core import open_slide
from omicslens.core.measured import load_measured, pearson_per_column
from omicslens.models.expression.evaluate import evaluate_at_spots
from tests.conftest import DATA
from tests.helpers.bundles import make_bundle

CUT = DATA / "her2st-cut"
FIELD = DATA / "bccd" / "JPEGImages" / "BloodImage_00193.jpg"  # two white cells


def test_measured_comparison_reports_progress_and_pearson(tmp_path: Path) -> None:
    measured = load_measured(CUT, section="C5")
    bundle = make_bundle(tmp_path / "b", outputs=list(measured.genes[:4]), spacing=1.0)
    predictor = load_predictor(bundle)
    steps: list[Progress] = []
    with open_slide(CUT / "images" / "C5.jpg", mpp=measured.pitch_mpp()) as slide:
        result = run_job(compare_with_measured(slide, measured, predictor, batch=8), steps.append)
        direct = evaluate_at_spots(slide, measured, predictor)
    assert [s.done for s in steps] == [*list(range(8, measured.n_spots, 8)), measured.n_spots]
    assert result.predicted.shape == (measured.n_spots, 4)
    np.testing.assert_allclose(result.evaluation.predicted, direct.predicted, rtol=1e-5)
    expected = pearson_per_column(result.predicted, measured.normalised(list(measured.genes[:4])))
    np.testing.assert_allclose(result.evaluation.pearson, expected, atol=1e-6)


def test_smear_job_gives_the_analysis_crops_and_exports(tmp_path: Path) -> None:
    steps: list[Progress] = []
    report = run_job(smear_job(FIELD, crop_px=48), steps.append)
    assert steps[0].stage == "cells" and steps[-1].done == steps[-1].total
    assert len(report.analysis.cells) == 2
    assert len(report.crops) == 2 and report.crops[0].shape == (48, 48, 3)
    assert report.crops[0].std() > 5  # real pixels, not a blank crop
    written = export_smear(report.analysis, tmp_path)
    assert {p.name for p in written} >= {"cells.csv", "smear.json"}
