"""Loading weights: every format gives the same network; unsafe or mismatched files refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from omicslens.models.bundle import load_bundle
from omicslens.models.errors import BundleConfigError, StateDictMismatchError, WeightsError
from omicslens.models.loading import load_model
from tests.helpers.bundles import make_bundle, random_model, rewrite_config

FORMATS = ("torchscript", "safetensors", "state_dict")
VIT_ARGS = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}


def _outputs(folder: Path, x: torch.Tensor) -> torch.Tensor:
    model = load_model(load_bundle(folder))
    assert not model.training
    with torch.inference_mode():
        return model(x)


@pytest.mark.parametrize(
    ("architecture", "architecture_args"),
    [("omicslens-tinycnn", {}), ("omicslens-resnet-ish", {}), ("omicslens-vit", VIT_ARGS)],
)
def test_every_format_gives_the_same_outputs(
    tmp_path: Path, architecture: str, architecture_args: dict[str, int]
) -> None:
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    reference = random_model(architecture, 3, 0, **architecture_args)
    with torch.inference_mode():
        expected = reference(x)
    for fmt in FORMATS:
        folder = make_bundle(
            tmp_path / fmt, fmt=fmt, architecture=architecture, architecture_args=architecture_args
        )
        torch.testing.assert_close(_outputs(folder, x), expected, rtol=0, atol=1e-6)
    # ...and a different seed really gives a different network (the check can fail)
    other = make_bundle(
        tmp_path / "other", seed=1, architecture=architecture, architecture_args=architecture_args
    )
    assert not torch.allclose(_outputs(other, x), expected, atol=1e-3)


@pytest.mark.parametrize("wrapper", ["state_dict", "model", "module_prefix"])
def test_wrapped_checkpoints_are_unwrapped(tmp_path: Path, wrapper: str) -> None:
    folder = make_bundle(tmp_path / "b", fmt="state_dict")
    state = torch.load(folder / "model.pt", weights_only=True)
    if wrapper == "module_prefix":  # saved from DataParallel
        wrapped: object = {f"module.{key}": value for key, value in state.items()}
    else:
        wrapped = {wrapper: state, "epoch": 12, "optimizer_name": "adamw"}
    torch.save(wrapped, folder / "model.pt")
    x = torch.rand(2, 3, 32, 32)
    plain = make_bundle(tmp_path / "plain", fmt="state_dict")
    torch.testing.assert_close(_outputs(folder, x), _outputs(plain, x), rtol=0, atol=0)


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b", fmt="state_dict")
    state = torch.load(folder / "model.pt", weights_only=True)
    del state["head.weight"]
    state["extra_layer.bias"] = torch.zeros(3)
    state["features.0.0.weight"] = torch.zeros(8, 3, 3, 3)  # width 16 expected
    torch.save(state, folder / "model.pt")
    with pytest.raises(StateDictMismatchError) as caught:
        load_model(load_bundle(folder))
    error = caught.value
    assert error.missing == ("head.weight",)
    assert error.unexpected == ("extra_layer.bias",)
    assert error.mismatched == ("features.0.0.weight (8, 3, 3, 3) vs model (16, 3, 3, 3)",)
    message = str(error)
    assert str(folder.resolve() / "model.pt") in message
    assert "head.weight" in message and "extra_layer.bias" in message
    assert isinstance(error, WeightsError)


class _Payload:
    """Unpickling this object creates a folder: proof of whether code ran on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_pickled_objects_are_refused_not_executed(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b", fmt="state_dict")
    marker = tmp_path / "code-ran"
    torch.save({"head.weight": _Payload(marker)}, folder / "model.pt")
    with pytest.raises(WeightsError, match="weights_only=True") as caught:
        load_model(load_bundle(folder))
    assert str(folder.resolve() / "model.pt") in str(caught.value)
    assert not marker.exists()
    # Control: an unsafe load of the same file *does* run the payload, so the test can fail.
    torch.load(folder / "model.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_corrupt_weights_name_the_file(tmp_path: Path, fmt: str) -> None:
    folder = make_bundle(tmp_path / "b", fmt=fmt)
    bundle = load_bundle(folder)
    data = bundle.weights_path.read_bytes()
    bundle.weights_path.write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightsError) as caught:
        load_model(load_bundle(folder))
    assert bundle.weights_path.name in str(caught.value)


def test_non_tensor_state_dict_is_refused(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b", fmt="state_dict")
    torch.save({"head.weight": [1.0, 2.0]}, folder / "model.pt")
    with pytest.raises(WeightsError, match="non-tensor"):
        load_model(load_bundle(folder))


def test_unknown_architecture_for_state_dict_is_a_config_error(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b", fmt="safetensors", architecture="omicslens-tinycnn")
    rewrite_config(folder, {"architecture": "convnext_pico_made_up"})
    with pytest.raises(BundleConfigError) as caught:
        load_model(load_bundle(folder))
    assert caught.value.field == "architecture"
    assert "timm" in str(caught.value)
