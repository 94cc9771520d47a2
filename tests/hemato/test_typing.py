"""The shipped white-cell typing bundle (assets/models/bccd-wbc-typing) and its training code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omicslens.hemato.detect import detect_in_field
from omicslens.hemato.train_typing import (
    TypingSettings,
    augment,
    load_crops,
    stratified_folds,
    train_typing_bundle,
)
from omicslens.hemato.typing import TypingModel, default_typing_bundle
from omicslens.models import load_bundle, validate_against_wsinfer_schema
from tests.hemato.conftest import BCCD, TYPING_BUNDLE, field_pixels


@pytest.fixture(scope="module")
def typing_model() -> TypingModel:
    return TypingModel(TYPING_BUNDLE, device="cpu")


def test_shipped_bundle_is_a_small_wsinfer_classification_bundle() -> None:
    # the installed copy (inside the wheel, or assets/ in a checkout) is the shipped one
    shipped = default_typing_bundle()
    for name in ("config.json", "model.safetensors"):
        assert (shipped / name).read_bytes() == (TYPING_BUNDLE / name).read_bytes()
    bundle = load_bundle(TYPING_BUNDLE)
    config = bundle.config
    assert config.task == "classification"
    assert set(config.class_names) == {
        "Neutrophil",
        "Eosinophil",
        "Lymphocyte",
        "Monocyte",
        "Basophil",
    }
    assert bundle.weights_format == "safetensors"
    assert bundle.weights_size < 20 * 1024 * 1024
    assert validate_against_wsinfer_schema(config.to_dict()) in ([], None)
    validation = config.extra["validation"]
    assert 0.0 < validation["balanced_accuracy"] <= 1.0
    assert set(validation["per_class_recall"]) == set(config.class_names)
    assert 0.0 < config.extra["unknown_threshold"] < 1.0


def test_shipped_bundle_types_the_crops_mostly_correctly(typing_model: TypingModel) -> None:
    data = load_crops(BCCD / "crops", size=typing_model.load_size)
    probabilities, features = typing_model.predict_patches(data.images)
    predicted = [typing_model.class_names[i] for i in probabilities.argmax(axis=1)]
    truth = [data.classes[i] for i in data.labels]
    correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
    assert correct >= 0.75 * len(truth), list(zip(truth, predicted, strict=True))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert features.shape == (len(truth), typing_model.feature_dim)
    assert features.dtype == np.float32


def test_unknown_below_the_threshold(typing_model: TypingModel) -> None:
    threshold = typing_model.unknown_threshold
    names = typing_model.class_names
    sure = np.zeros(len(names), np.float32)
    sure[1] = 1.0
    unsure = np.full(len(names), 1.0 / len(names), np.float32)
    assert threshold > 1.0 / len(names)
    assert typing_model.label(np.stack([sure, unsure])) == [names[1], "Unknown"]


def test_classify_detected_cells_of_a_field(typing_model: TypingModel) -> None:
    pixels = field_pixels("BloodImage_00001")  # one neutrophil
    cells = detect_in_field(pixels, 0.0735)
    types = typing_model.classify(pixels, cells, 0.0735)
    assert types.probabilities.shape == (1, len(typing_model.class_names))
    assert types.labels[0] in (*typing_model.class_names, "Unknown")
    assert types.features.shape == (1, typing_model.feature_dim)
    patches = typing_model.patches(pixels, cells, 0.0735)
    assert patches.shape == (1, typing_model.load_size, typing_model.load_size, 3)


def test_stratified_folds_spread_every_class() -> None:
    labels = np.array([0] * 20 + [1] * 7 + [2] * 3)
    folds = stratified_folds(labels, 5, seed=0)
    for value in (0, 1):
        counts = np.bincount(folds[labels == value], minlength=5)
        assert counts.max() - counts.min() <= 1
    assert len(set(folds[labels == 2])) == 3  # three samples in three different folds


def test_augment_keeps_shape_and_range() -> None:
    import torch

    batch = torch.rand(6, 3, 48, 48)
    out = augment(batch, 32, torch.Generator().manual_seed(0))
    assert out.shape == (6, 3, 32, 32)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_training_writes_a_loadable_bundle(tmp_path: Path) -> None:
    settings = TypingSettings(input_size=32, widths=(8, 16), epochs=2, folds=2, batch_size=8)
    report = train_typing_bundle(BCCD / "crops", tmp_path / "bundle", settings, log=None)
    assert report["validation"]["support"]["Neutrophil"] == 3
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert config["cell_patch"]["mode"] == "cell-box"
    model = TypingModel(tmp_path / "bundle", device="cpu")
    assert model.feature_dim == 16
    probabilities, _ = model.predict_patches(np.zeros((2, 48, 48, 3), np.uint8))
    assert probabilities.shape == (2, 5)


def test_embeddings_survive_a_cpu_rewrite_request(monkeypatch) -> None:
    """The embeddings are hooked on the last Linear layer; a frozen rewrite has none, so
    typing keeps the eager network whatever $OMICSLENS_CPU_REWRITE asks for."""
    monkeypatch.setenv("OMICSLENS_CPU_REWRITE", "frozen")
    model = TypingModel(TYPING_BUNDLE, device="cpu")
    assert model.predictor.acceleration.mode == "eager"
    data = load_crops(BCCD / "crops", size=model.load_size)
    _, features = model.predict_patches(data.images[:4])
    assert features.shape == (4, model.feature_dim)
