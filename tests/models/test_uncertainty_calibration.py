"""Calibration of the uncertainty output: Spearman of ensemble_sd against the errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from omicslens.cli.main import main
from omicslens.core import open_slide
from omicslens.core.measured import average_ranks, load_measured, spearman, spearman_per_column
from omicslens.core.samples import bundled_models
from omicslens.models import Predictor
from omicslens.models.expression.evaluate import evaluate_at_spots
from tests.conftest import DATA
from tests.helpers.bundles import make_bundle

CUT = DATA / "her2st-cut"


def test_spearman_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, size=(40, 5)).astype(float)  # many ties
    y = rng.normal(size=40)
    ours = spearman_per_column(x, y)
    for j in range(5):
        assert ours[j] == pytest.approx(stats.spearmanr(x[:, j], y).statistic, abs=1e-12)
    np.testing.assert_allclose(average_ranks(x[:, 0]), stats.rankdata(x[:, 0]))
    assert spearman(y, y) == pytest.approx(1.0)
    assert np.isnan(spearman(np.ones(5), np.arange(5.0)))


@pytest.fixture(scope="module")
def evaluation():
    measured = load_measured(CUT, section="C6")
    predictor = Predictor(bundled_models()["her2st-expression"], device="cpu")
    with open_slide(CUT / "images" / "C6.jpg", mpp=measured.pitch_mpp()) as slide:
        from omicslens.models.expression.evaluate import predict_at_spots

        predicted = predict_at_spots(slide, measured, predictor)
        result = evaluate_at_spots(slide, measured, predictor)
    return result, predicted, predictor


def test_bundled_model_calibration_matches_scipy(evaluation) -> None:
    result, predicted, predictor = evaluation
    outputs = list(predictor.output_names)
    sd_column = predicted[:, outputs.index("ensemble_sd")]
    assert result.uncertainty_output == "ensemble_sd"
    assert set(result.uncertainty_spearman) == set(result.genes)
    error = np.abs(result.predicted - result.measured)
    for j, gene in enumerate(result.genes):
        expected = stats.spearmanr(sd_column, error[:, j]).statistic
        assert result.uncertainty_spearman[gene] == pytest.approx(expected, abs=1e-9)
    meta = predictor.bundle.config.outputs
    train_sd = np.array([meta[outputs.index(g)]["train_std"] for g in result.genes])
    overall = stats.spearmanr(sd_column, (error / train_sd).mean(axis=1)).statistic
    assert result.uncertainty_spearman_overall == pytest.approx(overall, abs=1e-9)
    summary = result.as_dict()["uncertainty"]
    assert summary["output"] == "ensemble_sd"
    assert summary["spearman_overall"] == pytest.approx(overall, abs=1e-4)
    assert summary["spearman_median_over_genes"] == pytest.approx(
        np.median(list(result.uncertainty_spearman.values())), abs=1e-4
    )
    json.dumps(result.as_dict(), allow_nan=False)


def test_cli_prints_the_calibration(capsys) -> None:
    args = [
        "evaluate-expression",
        str(CUT / "images" / "C6.jpg"),
        "--measured",
        str(CUT),
        "--section",
        "C6",
        "--mpp-from-spots",
        "--model",
        "her2st-expression",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "uncertainty" in line]
    assert len(lines) == 1
    assert lines[0].startswith("uncertainty ranks errors: Spearman ")
    assert " overall; per gene median " in lines[0]
    assert main([*args, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["uncertainty"]) == {
        "output",
        "spearman_overall",
        "spearman_median_over_genes",
        "spearman",
    }


def test_absent_without_an_uncertainty_output(tmp_path, capsys) -> None:
    measured = load_measured(CUT, section="C6")
    bundle = make_bundle(tmp_path / "b", outputs=list(measured.genes[:3]), spacing=1.0)
    with open_slide(CUT / "images" / "C6.jpg", mpp=measured.pitch_mpp()) as slide:
        result = evaluate_at_spots(slide, measured, Predictor(bundle, device="cpu"))
    assert result.uncertainty_spearman is None
    assert result.uncertainty_spearman_overall is None
    assert result.uncertainty_spearman_median is None
    assert "uncertainty" not in result.as_dict()
    code = main(
        [
            "evaluate-expression",
            str(CUT / "images" / "C6.jpg"),
            "--measured",
            str(CUT),
            "--section",
            "C6",
            "--mpp-from-spots",
            "--model",
            str(bundle),
        ]
    )
    assert code == 0
    assert "uncertainty" not in capsys.readouterr().out
