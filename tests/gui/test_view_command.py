"""The README's main command: `omicslens view --sample ... --model ...` predicts on screen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omicslens.cli.main import main
from tests.helpers.bundles import make_bundle


def test_view_with_model_predicts_and_screenshots(
    tmp_path: Path, monkeypatch, mock_app_model
) -> None:
    # mock_app_model: a fresh napari app model, as a user's process has; earlier tests in this
    # process (the benchmarks) registered the plugin's commands on the real one already
    monkeypatch.setenv("OMICSLENS_CACHE_DIR", str(tmp_path / "cache"))
    bundle = make_bundle(tmp_path / "bundle", patch_size=32, spacing=4.0)
    shot = tmp_path / "shot.png"
    code = main(
        [
            "view",
            "--sample",
            "cmu1",
            "--model",
            str(bundle),
            "--output",
            "CD74",
            "--screenshot",
            str(shot),
        ]
    )
    assert code == 0
    pixels = np.asarray(Image.open(shot))[..., :3].astype(int)
    assert pixels.std() > 10
    # the inferno heatmap puts saturated orange/purple pixels on screen
    assert ((pixels[..., 0] - pixels[..., 2]) > 100).any()


def test_view_with_unknown_model_fails_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["view", "--sample", "cmu1", "--model", "no-such-model"])
    assert code == 1
    assert "no model 'no-such-model'" in capsys.readouterr().err
