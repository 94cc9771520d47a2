"""The WSInfer comparison: our side runs the peer's model folder as is; without WSInfer
the benchmark says what to install instead of failing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from omicslens.bench import peer
from omicslens.models.bundle import load_bundle
from tests.conftest import CMU1


class TinyCNN(torch.nn.Module):
    """The architecture of ../shared/peer/make_model.py (random weights, 2 classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.conv2 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def _wsinfer_model_folder(folder: Path) -> Path:
    """A model folder exactly as WSInfer takes it: traced TorchScript + its config."""
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    with torch.no_grad():
        traced = torch.jit.trace(TinyCNN().eval(), torch.rand(1, 3, 224, 224))
    traced.save(str(folder / "model.pt"))
    config = {
        "spec_version": "1.0",
        "architecture": "tinycnn",
        "num_classes": 2,
        "class_names": ["tumor", "other"],
        "patch_size_pixels": 224,
        "spacing_um_px": 0.5,
        "transform": [
            {"name": "Resize", "arguments": {"size": 224}},
            {"name": "ToTensor"},
            {
                "name": "Normalize",
                "arguments": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            },
        ],
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.slow
def test_our_side_runs_the_peer_model_folder(tmp_path: Path) -> None:
    model = _wsinfer_model_folder(tmp_path / "model")
    bundle = peer.omicslens_bundle(model, tmp_path / "bundle")
    assert list(load_bundle(bundle).output_names) == ["tumor", "other"]
    run = peer.run_omicslens(CMU1, tmp_path / "out", bundle)
    assert run.patches > 50 and run.cpu_s > 0 and run.wall_s > 0


def test_without_wsinfer_it_says_what_to_install(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(peer, "PEER_HOME", tmp_path / "nothing-here")
    code = peer.main(["--slide", str(CMU1), "--model-dir", str(tmp_path)])
    assert code == 2
    assert "setup.sh" in capsys.readouterr().err


def test_markdown_states_both_ratios() -> None:
    result = peer.PeerResult("s.svs", "m", 1)
    result.runs = [
        peer.Run("wsinfer", 20.0, 40.0, 3000),
        peer.Run("omicslens", 8.0, 10.0, 3000),
    ]
    text = peer.to_markdown(result)
    assert "CPU 0.40x, wall 0.25x" in text
