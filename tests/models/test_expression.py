"""Fit a tiny expression model end to end on a real cut of HER2ST, then use its bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omicslens.cli.main import main
from omicslens.core import open_slide
from omicslens.core.measured import load_measured, pearson_per_column
from omicslens.models import load_bundle, validate_against_wsinfer_schema
from omicslens.models.expression.data import her2st_sections
from omicslens.models.expression.fit import FitSettings, fit_expression, write_bundle
from omicslens.models.session import InferenceSession

CUT = Path(__file__).resolve().parents[1] / "data" / "her2st-cut"
GENES = ["ERBB2", "CD74", "KRT19", "IGKC", "COL1A1"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    sections = her2st_sections(CUT, ["C5"])
    settings = FitSettings(
        genes=GENES, cnn_members=1, epochs=2, width=4, seed=0, alphas=(0.01, 0.1)
    )
    # validation = the training section: "sane correlations on its own training spots"
    net, report = fit_expression(sections, sections, settings, log=lambda _: None)
    folder = write_bundle(
        net,
        report,
        tmp_path_factory.mktemp("bundle") / "b",
        name="test-fit",
        version="0",
        training_data={"sections": ["C5"]},
    )
    return folder, json.loads((folder / "config.json").read_text())


def _evaluate_c6_cut(model: Path) -> list[str]:
    """``evaluate-expression --json`` of ``model`` on the real C6 cut."""
    return [
        "evaluate-expression",
        str(CUT / "images" / "C6.jpg"),
        "--measured",
        str(CUT),
        "--section",
        "C6",
        "--mpp-from-spots",
        "--model",
        str(model),
        "--json",
    ]


def test_pitch_gives_the_her2st_pixel_size() -> None:
    measured = load_measured(CUT, section="C6")
    assert measured.n_spots == 22
    assert measured.pitch_mpp() == pytest.approx(0.688, abs=0.01)  # full section: 0.6878


def test_fitted_bundle_records_genes_scores_and_validates(fitted) -> None:
    folder, config = fitted
    bundle = load_bundle(folder)
    assert list(bundle.output_names) == [*GENES, "ensemble_sd"]
    assert config["output_transform"] == "log1p"
    assert config["tile_size_um"] == 112.0
    assert [o["kind"] for o in config["outputs"]] == ["gene"] * len(GENES) + ["uncertainty"]
    assert all(o["train_std"] > 0 for o in config["outputs"][: len(GENES)])
    assert validate_against_wsinfer_schema(config) == []
    scores = config["validation"]["mean_pearson"]
    # the handcrafted member is a ridge fit: on its own training spots it must correlate
    assert scores["stain-texture-1"] > 0.3


def test_bundle_runs_in_the_engine(fitted) -> None:
    folder, _ = fitted
    sections = her2st_sections(CUT, ["C5"])
    with open_slide(sections[0].image, mpp=sections[0].mpp) as slide:
        session = InferenceSession.open(slide, folder, cache=False)
        assert session.grid.tile_um == pytest.approx(112.0)
        scheduler = session.scheduler()
        scheduler.request_view(0, 0, 600, 600)
        assert scheduler.wait_idle(120)
        scheduler.stop()
        assert session.store.done_count > 0
    code = main(
        [
            "evaluate-expression",
            str(sections[0].image),
            "--measured",
            str(CUT),
            "--section",
            "C5",
            "--mpp-from-spots",
            "--model",
            str(folder),
            "--json",
        ]
    )
    assert code == 0


def test_evaluate_command_matches_a_direct_computation(fitted, capsys) -> None:
    folder, config = fitted
    code = main(
        [
            "evaluate-expression",
            str(CUT / "images" / "C5.jpg"),
            "--measured",
            str(CUT),
            "--section",
            "C5",
            "--mpp-from-spots",
            "--model",
            str(folder),
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_spots"] == 25
    ensemble = config["validation"]["mean_pearson"]["ensemble"]
    assert result["mean_pearson"] == pytest.approx(ensemble, abs=2e-3)


def test_uncertainty_and_gene_set_scores_come_from_the_outputs(fitted) -> None:
    from omicslens.core.genesets import available_gene_sets
    from omicslens.models import Predictor

    folder, config = fitted
    predictor = Predictor(folder)
    sections = her2st_sections(CUT, ["C5"])
    with open_slide(sections[0].image, mpp=sections[0].mpp) as slide:
        from omicslens.models.expression.evaluate import predict_at_spots

        values = predict_at_spots(slide, sections[0].measured, predictor)
    assert (values[:, -1] >= 0).all() and values[:, -1].max() > 0  # members disagree a bit
    sets = {
        s.label.split(" [")[0]: s
        for s in available_gene_sets([*GENES, "ensemble_sd"], config["outputs"])
    }
    immune = sets["Antigen presentation (MHC class II)"]
    assert immune.used == ("CD74",)
    cd74 = config["outputs"][GENES.index("CD74")]
    expected = (values[:, GENES.index("CD74")] - cd74["train_mean"]) / cd74["train_std"]
    np.testing.assert_allclose(immune.apply(values), expected, rtol=1e-4, atol=1e-4)
    assert "ERBB2 amplicon (17q12)" in sets


def test_evaluate_without_resolution_fails_clearly(fitted, capsys) -> None:
    folder, _ = fitted
    code = main(
        [
            "evaluate-expression",
            str(CUT / "images" / "C6.jpg"),
            "--measured",
            str(CUT),
            "--section",
            "C6",
            "--model",
            str(folder),
            "--json",
        ]
    )
    assert code == 1
    assert "MissingResolutionError" in capsys.readouterr().out


def test_pearson_per_column() -> None:
    a = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    b = np.array([[2.0, 1.0], [4.0, 2.0], [6.1, 3.0]])
    r = pearson_per_column(a, b)
    assert r[0] == pytest.approx(1.0, abs=1e-3)
    assert np.isnan(r[1])  # constant prediction: undefined, not zero


def test_foundation_encoder_path_fits_a_torchscript_bundle(tmp_path: Path, capsys) -> None:
    """Any embedding bundle works as the encoder (here a small random one, in the layout a
    TorchScript H-optimus-0/UNI export has); the result runs in the engine."""
    from tests.helpers.bundles import make_bundle

    encoder = make_bundle(tmp_path / "encoder", task="embedding", patch_size=64, spacing=1.0)
    out = tmp_path / "expr"
    code = main(
        [
            "fit-expression",
            "--her2st",
            str(CUT),
            "--train",
            "C5",
            "--val",
            "C6",
            "--genes",
            ",".join(GENES),
            "--encoder",
            str(encoder),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    bundle = load_bundle(out)
    assert bundle.weights_format == "torchscript"
    # fit-expression also writes the domain reference from the training sections
    assert (out / "domain.json").is_file() and bundle.domain is not None
    assert list(bundle.output_names) == [*GENES, "domain_distance"]
    assert bundle.domain.provenance["slides"][0]["slide"] == "C5.jpg"
    config = json.loads((out / "config.json").read_text())
    assert config["patch_size_pixels"] == 64 and config["spacing_um_px"] == 1.0
    assert validate_against_wsinfer_schema(config) == []
    # the saved bundle reproduces the fit's validation score through the CLI
    capsys.readouterr()
    code = main(_evaluate_c6_cut(out))
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    expected = config["validation"]["mean_pearson"]["encoder-ridge"]
    assert result["mean_pearson"] == pytest.approx(expected, abs=2e-3)


def test_classification_bundle_is_refused_as_encoder(tmp_path: Path, capsys) -> None:
    from tests.helpers.bundles import make_wsinfer_style_classification_bundle

    encoder = make_wsinfer_style_classification_bundle(tmp_path / "clf")
    code = main(
        [
            "fit-expression",
            "--her2st",
            str(CUT),
            "--train",
            "C5",
            "--val",
            "C6",
            "--genes",
            "5",
            "--encoder",
            str(encoder),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 1
    assert "task 'embedding'" in capsys.readouterr().err


def test_evaluate_with_no_measured_model_gene_is_an_error_not_nan(tmp_path, capsys) -> None:
    from tests.helpers.bundles import make_bundle

    bundle = make_bundle(tmp_path / "b", outputs=("NOT_A_GENE", "NOR_THIS"), patch_size=32)
    code = main(_evaluate_c6_cut(bundle))
    out = capsys.readouterr().out
    assert code == 1 and "NaN" not in out
    assert json.loads(out)["type"] == "NoCommonGenes"
