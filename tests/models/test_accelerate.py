"""CPU rewrites (frozen TorchScript, channels-last): same predictions, checked, or refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from omicslens.models.accelerate import TOLERANCE, accelerate
from omicslens.models.errors import DeviceError
from omicslens.models.predictor import ACCELERATION_ENV, Predictor
from tests.conftest import ROOT
from tests.helpers.bundles import random_model

BUNDLED = ROOT / "assets" / "models" / "her2st-expression"


def tissue_like(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Pink/purple patches with blobs: closer to H&E than uniform noise."""
    rng = np.random.default_rng(seed)
    base = np.array([225, 170, 200], dtype=np.float32)
    image = np.broadcast_to(base, (n, size, size, 3)).copy()
    coarse = rng.normal(0, 40, size=(n, size // 8, size // 8, 3))
    image += np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_the_bundled_model_is_frozen_and_predicts_what_eager_predicts() -> None:
    fast = Predictor(BUNDLED, device="cpu", acceleration="auto")
    eager = Predictor(BUNDLED, device="cpu", acceleration="eager")
    assert fast.acceleration.mode == "frozen", fast.acceleration.reason
    assert isinstance(fast.model, torch.jit.ScriptModule)
    assert eager.acceleration.mode == "eager"
    assert fast.parameter_count == eager.parameter_count > 0  # frozen weights still counted
    pixels = tissue_like(21, fast.patch_size)  # one full batch of 16 and a padded 5
    got, want = fast.predict(pixels), eager.predict(pixels)
    atol, rtol = TOLERANCE
    np.testing.assert_allclose(got, want, atol=atol, rtol=rtol)
    assert not np.array_equal(got[0], got[1])  # rows differ: a mix-up would show


def test_a_frozen_model_takes_other_batch_sizes_than_it_was_traced_with() -> None:
    fast = Predictor(BUNDLED, device="cpu", pad_batches=False)
    eager = Predictor(BUNDLED, device="cpu", acceleration="eager", pad_batches=False)
    pixels = tissue_like(3, fast.patch_size, seed=1)
    np.testing.assert_allclose(fast.predict(pixels), eager.predict(pixels), atol=1e-4, rtol=1e-4)


class BranchOnData(nn.Module):
    """A forward whose Python branch depends on the values: a trace bakes one branch in."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.conv2 = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv(x)).mean((2, 3))
        if float(x.abs().max()) > 1.5:
            return y * 2
        return y * 3


def test_a_rewrite_that_changes_outputs_is_refused_with_the_reason() -> None:
    model = BranchOnData().eval()
    # the traced batch (zeros) takes the "* 3" branch; the random check batch the "* 2"
    example = torch.zeros(4, 3, 16, 16)
    rewritten, report = accelerate(model, example, "frozen")
    assert rewritten is model
    assert report.mode == "eager"
    assert "frozen: outputs differ" in report.reason


class Untraceable(nn.Module):
    """Stands for models the tracer cannot follow (it raises while tracing)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.conv2 = nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            raise RuntimeError("dynamic control flow the tracer cannot record")
        return self.conv2(self.conv(x)).mean((2, 3))


def test_auto_falls_back_to_channels_last_when_freezing_fails() -> None:
    model = Untraceable().eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.inference_mode():
        want = model(x)
    rewritten, report = accelerate(model, x, "auto")
    assert report.mode == "channels-last"
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch.testing.assert_close(rewritten(x), want, atol=1e-5, rtol=1e-5)
    _, frozen_only = accelerate(Untraceable().eval(), x, "frozen")
    assert frozen_only.mode == "eager"
    assert "RuntimeError: dynamic control flow" in frozen_only.reason


def test_a_torchscript_bundle_is_frozen_too(tmp_path: Path) -> None:
    model = random_model("omicslens-tinycnn", 3, seed=2).eval()
    scripted = torch.jit.trace(model, torch.randn(2, 3, 32, 32))
    rewritten, report = accelerate(scripted, torch.randn(4, 3, 32, 32), "auto")
    assert report.mode == "frozen", report.reason
    x = torch.randn(5, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(rewritten(x), model(x), atol=1e-4, rtol=1e-4)


def test_the_rewrite_is_chosen_by_environment_and_checked(monkeypatch) -> None:
    monkeypatch.setenv(ACCELERATION_ENV, "channels-last")
    predictor = Predictor(BUNDLED, device="cpu")
    assert predictor.acceleration.mode == "channels-last"
    monkeypatch.setenv(ACCELERATION_ENV, "warp-speed")
    with pytest.raises(DeviceError, match=r"warp-speed.*OMICSLENS_CPU_REWRITE"):
        Predictor(BUNDLED, device="cpu")
