"""Wide-panel heads on the frozen trunks of the bundled expression model (real HER2ST cut)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from omicslens.cli.main import main
from omicslens.core.measured import highly_variable_genes, pearson_per_column
from omicslens.models import Predictor, load_bundle, load_model, validate_against_wsinfer_schema
from omicslens.models.expression.data import cut_windows, her2st_sections
from omicslens.models.expression.fit import _normalise, write_bundle
from omicslens.models.expression.net import ExpressionNet
from omicslens.models.expression.views import split_views
from omicslens.models.expression.wide import (
    MARKER_GENES,
    HeadSettings,
    _is_trunk,
    fit_wide_heads,
    leave_one_section_out,
)
from tests.conftest import ROOT

CUT = Path(__file__).resolve().parents[1] / "data" / "her2st-cut"
SOURCE = ROOT / "assets" / "models" / "her2st-expression"
WIDE = ROOT / "assets" / "models" / "her2st-expression-wide"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory):
    train = her2st_sections(CUT, ["C5"])
    val = her2st_sections(CUT, ["C6"])
    settings = HeadSettings(genes=100, alpha_from="val", alphas=(10.0, 100.0), threads=1)
    net, report = fit_wide_heads(SOURCE, train, val, settings, log=lambda _: None)
    folder = write_bundle(
        net,
        report,
        tmp_path_factory.mktemp("wide") / "b",
        name="test-wide",
        version="0",
        training_data={"train_sections": ["C5"], "val_sections": ["C6"]},
        description="Predicted relative expression (log1p, 10^4 per spot; not counts)",
    )
    return net, report, folder, train, val


def _source_net() -> ExpressionNet:
    net = load_model(load_bundle(SOURCE))
    assert isinstance(net, ExpressionNet)
    return net


def test_gene_panel_is_the_hvgs_plus_measured_markers(fitted) -> None:
    _, report, folder, train, _ = fitted
    hvgs = highly_variable_genes([s.measured for s in train], top=100)
    assert report.genes[:100] == hvgs
    extra = report.genes[100:]
    assert extra and set(extra) <= set(MARKER_GENES) and not set(extra) & set(hvgs)
    assert "ERBB2" in report.genes  # the cut keeps ERBB2's counts
    assert "ESR1" in report.settings["extra_genes_skipped"]  # not in the cut
    bundle = load_bundle(folder)
    assert list(bundle.output_names) == [*report.genes, "ensemble_sd"]
    assert bundle.config.num_classes == len(report.genes) + 1
    config = json.loads((folder / "config.json").read_text())
    assert validate_against_wsinfer_schema(config) == []
    genes = config["outputs"][:-1]
    assert all({"pearson", "train_mean", "train_std"} <= set(o) for o in genes)
    assert (
        config["architecture_args"]["members"]
        == json.loads((SOURCE / "config.json").read_text())["architecture_args"]["members"]
    )


def test_trunks_are_the_source_trunks(fitted) -> None:
    net, _, folder, _, _ = fitted
    source = _source_net().state_dict()
    saved = load_model(load_bundle(folder)).state_dict()
    trunk_keys = [key for key in source if _is_trunk(key)]
    assert any(".fine.features." in key for key in trunk_keys)  # the CNN trunks are in
    for key in trunk_keys:
        assert torch.equal(net.state_dict()[key], source[key]), key
        assert torch.equal(saved[key], source[key]), key
    # ... and the heads are new: a different shape (more genes)
    assert saved["members.0.head.weight"].shape[0] == len(fitted[1].genes)


def test_cnn_member_equals_a_direct_ridge_on_its_trunk_features(fitted) -> None:
    """Recompute member 0 from scratch: trunk features -> standardise -> ridge (dual form,
    which equals PCA + ridge with every component kept) -> undo target standardisation."""
    net, report, _, train, val = fitted
    source = _source_net()
    member = source.members[0]

    def features_and_inputs(section) -> tuple[np.ndarray, torch.Tensor]:
        inputs = _normalise(torch.from_numpy(cut_windows(section, 448.0, 320)))
        fine, context = split_views(inputs, 80, 80)
        with torch.inference_mode():
            f = torch.cat([member.fine(fine), member.context(context)], 1)
        return f.double().numpy(), inputs

    x, _ = features_and_inputs(train[0])
    xv, val_inputs = features_and_inputs(val[0])
    y = train[0].measured.normalised(report.genes).astype(np.float64)
    y_mean, y_std = y.mean(0), y.std(0) + 1e-6
    mean, std = x.mean(0), x.std(0) + 1e-6
    z, zv = (x - mean) / std, (xv - mean) / std
    alpha = report.settings["ridge_alpha"]["cnn-0"]
    weights = z.T @ np.linalg.solve(z @ z.T + alpha * np.eye(len(z)), (y - y_mean) / y_std)
    expected = (zv @ weights) * y_std + y_mean

    fine, context = split_views(val_inputs, 80, 80)
    with torch.inference_mode():
        got = net.members[0](fine, context).double().numpy()
    got = got * net.target_std.double().numpy() + net.target_mean.double().numpy()
    np.testing.assert_allclose(got, expected, atol=2e-3 * float(np.abs(expected).max()))
    # the member's validation score in the report is this prediction's
    r = pearson_per_column(got, val[0].measured.normalised(report.genes))
    np.testing.assert_allclose(r, report.pearson["cnn-0"], atol=1e-3)


def test_bundle_predicts_through_the_predictor_and_the_cli(fitted, capsys) -> None:
    net, report, folder, _, val = fitted
    windows = cut_windows(val[0], 448.0, 320)
    predicted = Predictor(folder, device="cpu", precision="fp32").predict(windows)
    with torch.inference_mode():
        direct = net(_normalise(torch.from_numpy(windows))).numpy()
    assert predicted.shape == (len(windows), len(report.genes) + 1)
    np.testing.assert_allclose(predicted, direct, rtol=1e-4, atol=1e-4)
    capsys.readouterr()
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
            str(folder),
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mean_pearson"] == pytest.approx(report.mean_pearson["ensemble"], abs=2e-3)


def test_leave_one_section_out_prefers_the_right_shrinkage() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(20, 3))
    sections = [rng.normal(size=(40, 20)) for _ in range(3)]
    clean = [(x @ truth) for x in sections]
    noisy = [y + rng.normal(scale=0.5, size=y.shape) for y in clean]
    scores = leave_one_section_out(sections, noisy, (0.1, 1e6), max_components=256)
    assert scores[0.1] > 0.8 and scores[0.1] > scores[1e6]
    with pytest.raises(ValueError, match="two training sections"):
        leave_one_section_out(sections[:1], noisy[:1], (1.0,), max_components=256)


def test_cli_heads_from_a_bundled_model(tmp_path: Path, capsys) -> None:
    out = tmp_path / "wide"
    base = ["fit-expression", "--her2st", str(CUT), "--train", "C5", "--val", "C6"]
    args = [*base, "--genes", "20", "--extra-genes", "ERBB2,NOTAGENE", "--threads", "1"]
    code = main([*args, "--heads-from", "her2st-expression", "--out", str(out)])
    assert code == 1  # one training section: no leave-one-section-out
    assert "--alpha-from val" in capsys.readouterr().err
    code = main(
        [*args, "--heads-from", "her2st-expression", "--alpha-from", "val", "--out", str(out)]
    )
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["class_names"][-1] == "ensemble_sd"
    assert "ERBB2" in config["class_names"] and "NOTAGENE" not in config["class_names"]
    assert len(config["class_names"]) == 20 + ("ERBB2" not in config["class_names"][:20]) + 1
    assert "not counts" in config["description"]
    assert config["training"]["settings"]["alpha_from"] == "validation sections"


@pytest.mark.skipif(not WIDE.exists(), reason="wide bundle not built")
def test_the_shipped_wide_bundle() -> None:
    from omicslens.core.samples import bundled_models

    # the bundled copy (site-packages in a wheel install, assets/ in a checkout) is this one
    shipped = bundled_models()["her2st-expression-wide"]
    assert (shipped / "config.json").read_bytes() == (WIDE / "config.json").read_bytes()
    bundle = load_bundle(WIDE)
    config = json.loads((WIDE / "config.json").read_text())
    genes = [o["name"] for o in config["outputs"] if o["kind"] == "gene"]
    assert len(genes) >= 1000 and bundle.config.class_names[-1] == "ensemble_sd"
    assert bundle.output_names[-1] == "domain_distance"  # it carries a domain reference
    assert {"ERBB2", "MKI67", "KRT19", "COL1A1"} <= set(genes)
    assert config["training"]["val_sections"] == ["C6"]
    assert validate_against_wsinfer_schema(config) == []
    assert bundle.weights_size < 8 * 2**20
    source = _source_net().state_dict()
    wide = load_model(bundle).state_dict()
    assert all(torch.equal(wide[k], source[k]) for k in source if _is_trunk(k))
