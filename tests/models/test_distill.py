"""Distil one CNN from a small ensemble fitted on a real HER2ST cut, then load its bundle."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from omicslens.cli.main import main
from omicslens.models import load_bundle
from omicslens.models.expression.data import cut_windows, her2st_sections
from omicslens.models.expression.distill import distill_expression
from omicslens.models.expression.fit import FitSettings, _normalise, fit_expression, write_bundle
from omicslens.models.expression.net import StainTextureMember
from omicslens.models.expression.views import split_views
from omicslens.models.loading import load_model

CUT = Path(__file__).resolve().parents[1] / "data" / "her2st-cut"
GENES = ["ERBB2", "CD74", "KRT19", "IGKC", "COL1A1"]


@pytest.fixture(scope="module")
def distilled(tmp_path_factory: pytest.TempPathFactory):
    sections = her2st_sections(CUT, ["C5"])
    teach = FitSettings(
        genes=GENES, cnn_members=2, epochs=2, width=4, seed=0, alphas=(0.1,), threads=1
    )
    teacher, teacher_report = fit_expression(sections, sections, teach, log=lambda _: None)
    student_settings = FitSettings(epochs=4, seed=3, threads=1)
    net, report = distill_expression(
        teacher, GENES, sections, sections, student_settings, log=lambda _: None
    )
    folder = tmp_path_factory.mktemp("distilled")
    return sections, teacher, net, report, folder, teacher_report


def _student_mean(net, windows: np.ndarray) -> float:
    x = _normalise(torch.from_numpy(windows))
    with torch.inference_mode():
        return float(net.members[0].eval()(*split_views(x, net.fine_px, net.context_px)).mean())


def test_the_student_learns_what_the_teacher_says(distilled) -> None:
    """A teacher that says +2 SD everywhere: a student taught by it alone says about that,
    one taught by the measured spots alone (mean 0 SD on them) does not."""
    sections, teacher, *_ = distilled
    biased = copy.deepcopy(teacher)
    for i in biased.predicting_members:
        biased.members[i].head.bias.data += 2.0
    windows = cut_windows(sections[0], 448.0, 320)
    means = {}
    for weight in (0.0, 1.0):
        settings = FitSettings(epochs=15, seed=3, learning_rate=0.05, threads=1)
        net, _ = distill_expression(
            biased, GENES, sections, sections, settings, teacher_weight=weight, log=lambda _: None
        )
        means[weight] = _student_mean(net, windows)
    assert means[1.0] > 1.0 and means[1.0] - means[0.0] > 1.5, means


def test_it_keeps_the_teachers_witness_units_and_genes(distilled) -> None:
    _, teacher, net, report, *_ = distilled
    assert net.predicting_members == [0] and len(net.members) == 2
    witness, original = net.members[1], teacher.members[-1]
    assert isinstance(witness, StainTextureMember) and isinstance(original, StainTextureMember)
    for name, value in original.state_dict().items():
        torch.testing.assert_close(witness.state_dict()[name], value, rtol=0, atol=0)
    torch.testing.assert_close(net.target_mean, teacher.target_mean, rtol=0, atol=0)
    assert report.genes == GENES
    assert set(report.pearson) == {"cnn-0", "stain-texture-1", "teacher", "ensemble"}
    # the student alone is what predicts: its r is the ensemble's (the witness only adds SD)
    assert report.pearson["cnn-0"] == report.pearson["ensemble"]
    assert report.settings["distilled"]["teacher_cnns"] == 2


def test_its_bundle_loads_and_predicts_the_genes_and_their_uncertainty(distilled) -> None:
    sections, _, net, report, folder, _ = distilled
    bundle_dir = write_bundle(
        net, report, folder / "b", name="test-distilled", version="0", training_data={}
    )
    config = json.loads((bundle_dir / "config.json").read_text())
    assert config["class_names"] == [*GENES, "ensemble_sd"]
    assert config["architecture_args"]["predicting_members"] == [0]
    loaded = load_model(load_bundle(bundle_dir))
    x = _normalise(torch.from_numpy(cut_windows(sections[0], 448.0, 320)[:4]))
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), net(x))
    assert (net(x)[:, -1] > 0).all()  # student and witness disagree somewhat: SD > 0


def test_cli_distill_from_writes_a_bundle_that_says_where_it_came_from(
    distilled, capsys: pytest.CaptureFixture[str]
) -> None:
    """--distill-from takes the teacher's genes (never re-chosen: --genes 3 is ignored) and
    records the teacher, by name and version, and the mix in the training block."""
    _, teacher, _, _, folder, teacher_report = distilled
    teacher_dir = write_bundle(
        teacher,
        teacher_report,
        folder / "teacher",
        name="test-teacher",
        version="0.1",
        training_data={},
    )
    out = folder / "student"
    base = ["fit-expression", "--her2st", str(CUT), "--train", "C5", "--val", "C5"]
    args = [
        *base,
        "--distill-from",
        str(teacher_dir),
        "--genes",
        "3",
        "--threads",
        "1",
        "--no-domain",
    ]
    assert main([*args, "--targets", "section", "--out", str(out)]) == 1
    assert "teacher's target standardisation" in capsys.readouterr().err
    assert main([*args, "--epochs", "1", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["class_names"] == [*GENES, "ensemble_sd"]
    assert config["architecture_args"]["predicting_members"] == [0]
    assert config["training"]["distilled_from"] == "test-teacher 0.1"
    assert "0.5 x the measured expression + 0.5 x the teacher" in config["training"]["distillation"]
    assert config["training"]["settings"]["distilled"]["teacher_cnns"] == 2
    loaded = load_model(load_bundle(out))
    witness = loaded.members[1].state_dict()
    for name, value in teacher.members[-1].state_dict().items():
        torch.testing.assert_close(witness[name], value, rtol=0, atol=0)
