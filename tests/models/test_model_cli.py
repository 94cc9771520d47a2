"""``omicslens model inspect|validate`` through the handlers, on good and broken bundles."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from omicslens.cli.model_commands import add_model_commands
from omicslens.models.bundle import load_bundle
from tests.helpers.bundles import make_bundle, rewrite_config


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="omicslens")
    add_model_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_inspect_text(bundle_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["model", "inspect", str(bundle_dir)]) == 0
    out = capsys.readouterr().out
    assert "test-fixture-random-weights 0.0.0" in out
    assert "regression" in out and "omicslens-tinycnn" in out
    assert "32 px at 0.5 um/px" in out
    assert "3: ERBB2, CD74, MKI67" in out
    assert "torchscript_model.pt (torchscript," in out
    assert load_bundle(bundle_dir).bundle_hash in out
    assert "pearson        3 outputs scored, median 0.20, range 0.10..0.30" in out
    assert "WSInfer schema compatible" in out


def test_inspect_json(bundle_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["model", "inspect", str(bundle_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_outputs"] == 3 and info["output_names"] == ["ERBB2", "CD74", "MKI67"]
    assert info["weights"]["format"] == "torchscript"
    assert info["weights"]["bytes"] == (bundle_dir / "torchscript_model.pt").stat().st_size
    assert info["scores"]["pearson"] == {"ERBB2": 0.1, "CD74": 0.2, "MKI67": 0.3}
    assert info["wsinfer_compatible"] is True


def test_inspect_broken_bundle(bundle_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rewrite_config(bundle_dir, {"patch_size_pixels": -3}, remove=["spec_version"])
    assert run(["model", "inspect", str(bundle_dir), "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["type"] == "BundleConfigError"
    assert [p["field"] for p in report["problems"]] == ["spec_version", "patch_size_pixels"]
    assert captured.err.startswith("omicslens: error: ")
    assert "patch_size_pixels" in captured.err


def test_inspect_missing_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["model", "inspect", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert "no such bundle folder" in err
    assert "bundled models: " in err and "her2st-expression" in err  # what would work


@pytest.mark.parametrize("fmt", ["torchscript", "safetensors", "state_dict"])
def test_validate_good_bundle(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_bundle(tmp_path / "b", fmt=fmt)
    assert run(["model", "validate", str(folder)]) == 0
    assert "valid" in capsys.readouterr().out
    assert run(["model", "validate", str(folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True and report["problems"] == []
    assert report["output_width"] == 3 and report["weights_format"] == fmt


def test_validate_lists_every_config_problem(
    bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rewrite_config(bundle_dir, {"spacing_um_px": -1, "task": "segmentation"})
    assert run(["model", "validate", str(bundle_dir), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and len(report["problems"]) == 2
    assert "spacing_um_px" in report["problems"][0] and "task" in report["problems"][1]


def test_validate_catches_wrong_output_width(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_bundle(tmp_path / "b", outputs=("A", "B", "C", "D"))
    rewrite_config(folder, {"num_classes": 3, "class_names": ["A", "B", "C"]}, remove=["outputs"])
    assert run(["model", "validate", str(folder)]) == 1
    assert "num_classes=3" in capsys.readouterr().err


def test_validate_catches_mismatched_state_dict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_bundle(tmp_path / "b", fmt="state_dict")
    state = torch.load(folder / "model.pt", weights_only=True)
    del state["head.bias"]
    torch.save(state, folder / "model.pt")
    assert run(["model", "validate", str(folder), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and "missing keys: head.bias" in report["problems"][0]
