"""Bundles shared by the model tests (test fixtures with random weights)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.bundles import make_bundle, make_wsinfer_style_classification_bundle


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    """A regression bundle (3 genes, tiny CNN, TorchScript) in a fresh folder."""
    return make_bundle(tmp_path / "bundle")


@pytest.fixture(scope="session")
def wsinfer_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """WSInfer-zoo-style classification bundle (ViT-Ti/16 TorchScript, ~22 MB): made once."""
    return make_wsinfer_style_classification_bundle(tmp_path_factory.mktemp("wsinfer") / "b")
