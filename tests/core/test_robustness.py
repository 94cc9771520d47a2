"""Robustness reports: grade rule, stability, JSON round trip, the bundle's copy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omicslens.core.robustness import (
    REPORT_FILE,
    PerturbationResult,
    RobustnessReport,
    RobustnessReportError,
    grade,
    load_bundle_robustness,
    read_report,
    stability_per_column,
    write_report,
)


@pytest.mark.parametrize(
    ("stability", "drop", "expected"),
    [
        (0.95, 0.01, "A"),
        (0.90, 0.05, "A"),
        (0.95, 0.06, "B"),
        (0.80, 0.00, "B"),
        (0.60, 0.15, "C"),
        (0.95, 0.30, "D"),
        (0.40, 0.00, "D"),
        (float("nan"), 0.0, "D"),
    ],
)
def test_grade_rule(stability: float, drop: float, expected: str) -> None:
    assert grade(stability, drop) == expected


def test_identical_predictions_have_stability_exactly_one() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(178, 50)).astype(np.float32) * 3 + 2
    assert (stability_per_column(values, values) == 1.0).all()
    flipped = stability_per_column(-values, values)
    assert (flipped >= -1.0).all() and flipped == pytest.approx(-1.0)
    constant = np.ones((10, 1))
    assert np.isnan(stability_per_column(constant, rng.normal(size=(10, 1)))[0])


def _report() -> RobustnessReport:
    genes = ["G1", "G2", "G3"]
    return RobustnessReport(
        model="m",
        model_version="1",
        slide="s.jpg",
        measured="HER2ST section X",
        n_spots=10,
        genes=genes,
        perturbations=[
            PerturbationResult("identity", "identity", 0.0, [0.5, 0.4, 0.3], [1.0, 1.0, 1.0]),
            PerturbationResult("blur-1", "blur", 1.0, [0.48, 0.15, 0.3], [0.95, 0.7, float("nan")]),
            PerturbationResult("jpeg-50", "jpeg", 50, [0.49, 0.38, 0.31], [0.92, 0.8, 0.99]),
            # a stress level: in the tables, never in the grade
            PerturbationResult("blur-2", "blur", 2.0, [0.0, 0.0, 0.0], [0.1, 0.1, 0.1]),
            PerturbationResult("depth-650", "depth", 650, [0.3, 0.1, 0.2], None),
        ],
        mpp=0.69,
    )


def test_gene_summaries_use_image_perturbations_only() -> None:
    report = _report()
    summaries = {s.gene: s for s in report.gene_summaries()}
    assert summaries["G1"].min_stability == pytest.approx(0.92)
    assert summaries["G1"].least_stable == "jpeg-50"  # not the stress level blur-2
    assert summaries["G1"].max_drop == pytest.approx(0.02)  # depth's 0.2 drop is not graded
    assert summaries["G1"].grade == "A"
    assert summaries["G2"].grade == "D"  # drop 0.25 with stability 0.7
    assert summaries["G3"].grade == "D" and summaries["G3"].least_stable == "blur-1"  # NaN
    assert report.grade_counts() == {"A": 1, "B": 0, "C": 0, "D": 2}
    assert [s.gene for s in report.least_robust(2)] == ["G3", "G2"]
    assert report.mean_stability == pytest.approx(np.mean([0.95, 0.7, 0.92, 0.8, 0.99]))


def test_report_round_trips_through_json(tmp_path: Path) -> None:
    report = _report()
    path = write_report(report, tmp_path / "sub" / "r.json")
    text = path.read_text()
    assert "NaN" not in text  # strict JSON
    data = json.loads(text)
    assert data["format"] == "omicslens-robustness"
    assert data["per_gene"]["G1"]["grade"] == "A"
    assert data["summary"]["perturbations"][4]["mean_stability"] is None
    again = read_report(path)
    assert again.genes == report.genes
    assert again.result("jpeg-50").stability == pytest.approx([0.92, 0.8, 0.99])
    assert np.isnan(again.result("blur-1").stability[2])
    assert again.result("depth-650").stability is None
    assert again.grades == report.grades
    assert not list(tmp_path.glob("sub/.r.json.*"))  # no temporary file left behind


def test_bundle_robustness_is_optional_and_checked(tmp_path: Path) -> None:
    assert load_bundle_robustness(tmp_path) is None
    write_report(_report(), tmp_path / REPORT_FILE)
    loaded = load_bundle_robustness(tmp_path)
    assert loaded is not None and loaded.model == "m"
    (tmp_path / REPORT_FILE).write_text("{not json")
    with pytest.raises(RobustnessReportError, match="not readable JSON"):
        load_bundle_robustness(tmp_path)
    (tmp_path / REPORT_FILE).write_text('{"format": "something else"}')
    with pytest.raises(RobustnessReportError, match="not an omicslens robustness report"):
        load_bundle_robustness(tmp_path)


def test_the_bundled_model_carries_its_c6_report() -> None:
    import json

    from omicslens.core.samples import bundled_models

    folder = bundled_models()["her2st-expression"]
    report = load_bundle_robustness(folder)
    assert report is not None
    assert report.n_spots == 178 and len(report.genes) == 50
    assert report.clean.stability == [1.0] * 50
    # the clean pass is the validation the card reports (same C6 spots, same model)
    validation = json.loads((folder / "config.json").read_text())["validation"]
    assert report.clean.mean_pearson == pytest.approx(
        validation["mean_pearson"]["ensemble"], abs=1e-3
    )


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "not readable JSON"),
        (lambda p: p.mkdir(), "not a regular file"),
        (lambda p: __import__("os").mkfifo(p), "not a regular file"),  # would block a read
    ],
)
def test_a_deep_or_special_robustness_json_is_typed(tmp_path: Path, make, problem: str) -> None:
    path = tmp_path / REPORT_FILE
    make(path)
    with pytest.raises(RobustnessReportError, match=problem) as raised:
        load_bundle_robustness(tmp_path)
    assert str(path) in str(raised.value)


def test_a_robustness_json_with_infinite_n_spots_is_typed(tmp_path: Path) -> None:
    path = write_report(_report(), tmp_path / REPORT_FILE)
    data = json.loads(path.read_text())
    data["n_spots"] = float("inf")
    path.write_text(json.dumps(data))
    with pytest.raises(RobustnessReportError, match="malformed report"):
        read_report(path)
