"""Leave-one-section-out members and the scanner augmentation, on the real HER2ST cut."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from omicslens.core.measured import pearson_per_column
from omicslens.models.expression import fit as fit_module
from omicslens.models.expression.augment import augment, random_blur, random_zoom
from omicslens.models.expression.data import cut_windows, her2st_sections
from omicslens.models.expression.fit import FitSettings, _normalise, fit_expression, write_bundle
from omicslens.models.expression.loso import CONDITIONS, held_out_folds, standardise_targets
from omicslens.models.expression.views import split_views

CUT = Path(__file__).resolve().parents[1] / "data" / "her2st-cut"
GENES = ["CD74", "KRT19", "IGKC", "COL1A1", "FN1"]


@pytest.fixture(scope="module")
def loso_fit(tmp_path_factory: pytest.TempPathFactory):
    sections = her2st_sections(CUT, ["C5", "C6"])
    settings = FitSettings(
        genes=GENES,
        epochs=1,
        width=4,
        seed=0,
        alphas=(0.1, 10.0),
        augment="scanner",
        targets="section",
        members_from="loso",
        alpha_from="loso",
    )
    net, report = fit_expression(sections, sections[1:], settings, log=lambda _: None)
    folder = write_bundle(
        net,
        report,
        tmp_path_factory.mktemp("bundle") / "b",
        name="test-loso",
        version="0",
        training_data={"sections": ["C5", "C6"]},
    )
    return sections, net, report, json.loads((folder / "config.json").read_text())


def test_one_member_per_training_section_each_scored_on_the_section_it_never_saw(
    loso_fit,
) -> None:
    sections, net, report, config = loso_fit
    assert len(net.members) == 3  # two CNNs (one per section) + the stain/texture witness
    assert net.predicting_members == [0, 1]
    assert config["architecture_args"]["predicting_members"] == [0, 1]
    loso = config["validation"]["leave_one_section_out"]
    assert sorted(loso["sections"]) == ["C5", "C6"]
    assert set(loso["condition_means"]) == set(CONDITIONS)
    # member 0 was trained without C5: its held-out identity r is its r on C5, recomputed
    section = sections[0]
    windows = cut_windows(section, 448.0, 320)
    member = net.members[0].eval()
    with torch.inference_mode():
        standard = member(*split_views(_normalise(torch.from_numpy(windows)), 80, 80)).numpy()
    predicted = standard * net.target_std.numpy() + net.target_mean.numpy()
    direct = pearson_per_column(predicted, section.measured.normalised(GENES))
    stored = report.loso["per_gene"]["C5"]["identity"]
    np.testing.assert_allclose(stored, direct, atol=1e-4)
    expected = np.mean([np.nanmean(v) for v in loso["condition_means"].values()])
    assert loso["selection_score"] == pytest.approx(expected, abs=1e-4)


def test_loso_plus_all_adds_one_member_trained_on_every_section() -> None:
    sections = her2st_sections(CUT, ["C5", "C6"])
    settings = FitSettings(
        genes=GENES[:2],
        epochs=1,
        width=4,
        alphas=(1.0,),
        members_from="loso+all",
        stain_texture_member=False,
    )
    seen: list[int] = []
    original = fit_module._train_cnn

    def counting(member, x, y, *args, **kwargs):
        seen.append(len(x))
        return original(member, x, y, *args, **kwargs)

    fit_module._train_cnn = counting
    try:
        net, report = fit_expression(sections, sections[1:], settings, log=lambda _: None)
    finally:
        fit_module._train_cnn = original
    # without C5 (= C6's spots), without C6 (= C5's spots), then all of them
    assert len(seen) == 3 and seen[2] == seen[0] + seen[1]
    assert seen[1] == sections[0].measured.n_spots
    assert net.predicting_members == [0, 1, 2]
    assert report.loso is not None and sorted(report.loso["sections"]) == ["C5", "C6"]


def test_perturbed_conditions_are_really_perturbed(loso_fit) -> None:
    *_, config = loso_fit
    c5 = config["validation"]["leave_one_section_out"]["per_gene"]["C5"]
    assert c5["identity"] != c5["blur-1"]
    assert c5["identity"] != c5["depth-650"]


def test_section_targets_are_standardised_within_each_section() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(2.0, 1.0, (50, 3))
    b = rng.normal(0.5, 0.2, (40, 3))  # a shallower section: lower and squeezed
    scaled, mean, _ = standardise_targets([a, b], "section")
    for values in scaled:
        np.testing.assert_allclose(values.mean(0), 0, atol=1e-9)
        np.testing.assert_allclose(values.std(0), 1, atol=1e-4)
    np.testing.assert_allclose(mean, (a.mean(0) + b.mean(0)) / 2)
    pooled, *_ = standardise_targets([a, b], "pooled")
    assert abs(pooled[1].mean()) > 0.5  # pooled keeps the depth offset in the targets
    with pytest.raises(ValueError, match="standardisation"):
        standardise_targets([a], "median")


def test_loso_needs_two_sections() -> None:
    with pytest.raises(ValueError, match="at least two"):
        held_out_folds([object()])  # type: ignore[list-item]


def test_scanner_augmentation_keeps_shape_and_changes_pixels() -> None:
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 255, (4, 64, 64, 3), dtype=np.uint8))
    stain = augment(x, torch.Generator().manual_seed(3), "stain")
    scanner = augment(x, torch.Generator().manual_seed(3), "scanner")
    assert stain.shape == scanner.shape == (4, 3, 64, 64)
    assert not torch.allclose(stain, scanner)
    with pytest.raises(ValueError, match="augmentation"):
        augment(x, torch.Generator(), "hue")


def test_blur_and_zoom_keep_a_flat_image_flat() -> None:
    flat = torch.full((2, 3, 32, 32), 0.4)
    generator = torch.Generator().manual_seed(0)
    blurred = random_blur(flat, generator, probability=1.0)
    assert torch.allclose(blurred, flat, atol=1e-6)
    for seed in range(5):
        zoomed = random_zoom(flat, torch.Generator().manual_seed(seed))
        assert zoomed.shape == flat.shape
        assert torch.allclose(zoomed, flat, atol=1e-6)


def test_blur_smooths_an_edge() -> None:
    edge = torch.zeros(1, 1, 16, 16)
    edge[..., 8:] = 1.0
    blurred = random_blur(edge, torch.Generator().manual_seed(0), probability=1.0)
    assert 0.0 < float(blurred[0, 0, 4, 7]) < 1.0
