"""``omicslens check-domain``, ``model add-domain`` and ``view --output`` for absent names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from omicslens.cli.main import main
from omicslens.core.samples import sample_path
from tests.helpers.bundles import make_bundle


def test_check_domain_json_on_the_bundled_sample(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["check-domain", str(sample_path("her2st-c6")), "--model", "her2st-expression", "--json"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] in ("in-domain", "uncertain", "out-of-domain")
    assert result["verdict"] == "in-domain"
    assert {"in_domain_fraction", "tiles_checked", "median_distance", "rules"} <= set(result)


def test_check_domain_for_a_bundle_without_reference(tmp_path, capsys) -> None:
    bundle = make_bundle(tmp_path / "b", patch_size=64, spacing=0.5)
    code = main(["check-domain", str(sample_path("cmu1")), "--model", str(bundle), "--json"])
    assert code == 1
    out = json.loads(capsys.readouterr().out)
    assert out["type"] == "NoDomainReferenceError" and "add-domain" in out["error"]


def test_add_domain_writes_a_reference_and_refuses_to_overwrite(tmp_path, capsys) -> None:
    bundle = make_bundle(tmp_path / "b", patch_size=64, spacing=2.0)
    slide = str(sample_path("cmu1"))
    assert main(["model", "add-domain", str(bundle), slide, "--tiles-per-slide", "60"]) == 0
    assert (bundle / "domain.json").is_file()
    assert "held out" in capsys.readouterr().out
    assert main(["model", "add-domain", str(bundle), slide]) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["check-domain", slide, "--model", str(bundle), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "in-domain"


def test_view_output_absent_from_the_model_is_an_error_before_any_window(capsys) -> None:
    code = main(
        ["view", "--sample", "her2st-c6", "--model", "her2st-expression", "--output", "ERBB2"]
    )
    assert code == 1
    assert "does not predict 'ERBB2'" in capsys.readouterr().err


def test_view_output_is_matched_in_any_case(tmp_path: Path) -> None:
    from omicslens._napari.launch import _checked_output
    from omicslens.core.samples import bundled_models

    folder = tmp_path / "m"
    shutil.copytree(bundled_models()["her2st-expression"], folder)
    assert _checked_output(folder, "cd74") == "CD74"
