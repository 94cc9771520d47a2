"""`omicslens robustness` on the HER2ST C6 cut with (a copy of) the bundled model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from omicslens.cli.main import main
from omicslens.core.robustness import REPORT_FILE, load_bundle_robustness
from omicslens.core.samples import bundled_models
from tests.conftest import DATA

CUT = DATA / "her2st-cut"
QUICK = "identity,gamma-0.8,depth-2000"


def _args(model: Path | str, *extra: str) -> list[str]:
    return [
        "robustness",
        str(CUT / "images" / "C6.jpg"),
        "--model",
        str(model),
        "--measured",
        str(CUT),
        "--section",
        "C6",
        "--mpp-from-spots",
        "--perturbations",
        QUICK,
        *extra,
    ]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "her2st-expression"
    source = bundled_models()["her2st-expression"]
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns(REPORT_FILE))
    return folder


def test_json_report_and_out_file(bundle: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    assert main(_args(bundle, "--json", "--out", str(out))) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert [p["name"] for p in printed["perturbations"]] == QUICK.split(",")
    assert printed["n_spots"] == 22
    identity = printed["perturbations"][0]
    assert set(identity["stability"].values()) == {1.0}
    assert printed["perturbations"][2]["stability"] is None  # depth: predictions unchanged
    assert set(printed["per_gene"]) == set(printed["genes"])
    assert not (bundle / REPORT_FILE).exists()  # only with --save-to-bundle


def test_human_summary(bundle: Path, capsys) -> None:
    assert main(_args(bundle)) == 0
    text = capsys.readouterr().out
    assert "HER2ST section C6: 22 spots" in text
    assert "identity" in text and "gamma-0.8" in text and "depth-2000" in text
    assert "grades: A" in text and "least robust genes:" in text


def test_save_to_bundle_refuses_to_overwrite_without_force(bundle: Path, capsys) -> None:
    assert main(_args(bundle, "--save-to-bundle")) == 0
    report = load_bundle_robustness(bundle)
    assert report is not None and report.n_spots == 22
    first = (bundle / REPORT_FILE).read_text()
    capsys.readouterr()
    assert main(_args(bundle, "--save-to-bundle")) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("omicslens: error:") and "--force" in error
    assert len(error.splitlines()) == 1
    assert (bundle / REPORT_FILE).read_text() == first
    assert main(_args(bundle, "--save-to-bundle", "--force", "--seed", "1")) == 0
    assert (bundle / REPORT_FILE).read_text() != first


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--perturbations", "identity,warp-9"], "unknown perturbation 'warp-9'"),
        (["--section", "C9"], "C9_selection.tsv is missing"),
    ],
)
def test_bad_inputs_exit_1_with_one_line(bundle: Path, capsys, change, message) -> None:
    args = _args(bundle)
    flag = change[0]
    args[args.index(flag) + 1] = change[1]
    assert main(args) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("omicslens: error:") and message in error
    assert len(error.splitlines()) == 1


def test_missing_resolution_is_reported_as_json(bundle: Path, capsys) -> None:
    args = [a for a in _args(bundle, "--json") if a != "--mpp-from-spots"]
    assert main(args) == 1
    assert json.loads(capsys.readouterr().out)["type"] == "MissingResolutionError"
