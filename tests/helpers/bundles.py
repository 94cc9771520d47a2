"""Write tiny model bundles for tests: TEST FIXTURES with random weights, not real models.

Every bundle is named "test-fixture-random-weights" and says so in its description, so
one never passes for a trained model. Weights are seeded, so two bundles made with the
same seed hold the same numbers in whatever format they are saved in.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from omicslens.models.architectures import build_architecture

FIXTURE_NAME = "test-fixture-random-weights"
MEAN = [0.70, 0.55, 0.68]
STD = [0.15, 0.17, 0.12]
WEIGHTS_FILES = {
    "torchscript": "torchscript_model.pt",
    "safetensors": "model.safetensors",
    "state_dict": "model.pt",
}


def random_model(
    architecture: str, num_outputs: int, seed: int, **architecture_args: Any
) -> torch.nn.Module:
    """An eval-mode network with seeded random weights *and* random BatchNorm statistics.

    Random running stats matter: with the default mean 0 / var 1, a format that dropped
    the buffers would still give the same outputs and the format test could not fail.
    """
    torch.manual_seed(seed)
    model = build_architecture(architecture, num_outputs, **architecture_args)
    generator = torch.Generator().manual_seed(seed + 1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            shape = module.running_mean.shape
            module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
    return model.eval()


def save_weights(model: torch.nn.Module, folder: Path, fmt: str, example: torch.Tensor) -> Path:
    """Save ``model`` in one of our formats; returns the weights file."""
    target = folder / WEIGHTS_FILES[fmt]
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
            try:
                scripted = torch.jit.script(model)
            except Exception:  # some modules only trace
                scripted = torch.jit.trace(model, example)
            torch.jit.save(scripted, str(target))
    elif fmt == "safetensors":
        state = {key: value.contiguous() for key, value in model.state_dict().items()}
        save_file(state, str(target))
    elif fmt == "state_dict":
        torch.save(model.state_dict(), target)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return target


def make_bundle(
    folder: Path,
    *,
    fmt: str = "torchscript",
    task: str = "regression",
    outputs: Sequence[str] = ("ERBB2", "CD74", "MKI67"),
    architecture: str = "omicslens-tinycnn",
    patch_size: int = 32,
    spacing: float = 0.5,
    seed: int = 0,
    architecture_args: Mapping[str, Any] | None = None,
    **config_overrides: Any,
) -> Path:
    """Write a test-fixture bundle (config.json + weights) into ``folder`` and return it.

    For ``task="embedding"`` the head is dropped and ``outputs`` is ignored: the names
    become ``feature_0..`` for however many features the network produces.
    ``config_overrides`` are set on config.json last (to write deliberately odd configs).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    args = dict(architecture_args or {})
    num_outputs = 0 if task == "embedding" else len(outputs)
    model = random_model(architecture, num_outputs, seed, **args)
    example = torch.rand(1, 3, patch_size, patch_size)
    if task == "embedding":
        with torch.no_grad():
            width = model(example).shape[1]
        outputs = tuple(f"feature_{index}" for index in range(width))
    config: dict[str, Any] = {
        "spec_version": "1.0",
        "name": FIXTURE_NAME,
        "version": "0.0.0",
        "description": "TEST FIXTURE: random weights, predicts nothing meaningful.",
        "architecture": architecture,
        "num_classes": len(outputs),
        "class_names": list(outputs),
        "patch_size_pixels": patch_size,
        "spacing_um_px": spacing,
        "transform": [
            {"name": "Resize", "arguments": {"size": patch_size}},
            {"name": "ToTensor"},
            {"name": "Normalize", "arguments": {"mean": MEAN, "std": STD}},
        ],
        "task": task,
    }
    if args:
        config["architecture_args"] = args
    if task == "regression":
        config["outputs"] = [
            {"name": name, "pearson": round(0.1 + 0.1 * index, 2)}
            for index, name in enumerate(outputs)
        ]
    config.update(config_overrides)
    write_config(folder, config)
    save_weights(model, folder, fmt, example)
    return folder


def make_wsinfer_style_classification_bundle(folder: Path, seed: int = 0) -> Path:
    """A bundle laid out exactly like a WSInfer-zoo one, with only WSInfer's keys.

    timm-style architecture name, patches of 256 px resized to 224 for the network
    (WSInfer-zoo models do the same, e.g. 350 -> 224), TorchScript weights. Random
    weights: it proves such bundles *run*, not that they classify anything.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = random_model("vit_tiny_patch16_224", 2, seed)
    write_config(
        folder,
        {
            "spec_version": "1.0",
            "architecture": "vit_tiny_patch16_224",
            "num_classes": 2,
            "class_names": ["notumor", "tumor"],
            "patch_size_pixels": 256,
            "spacing_um_px": 0.5,
            "transform": [
                {"name": "Resize", "arguments": {"size": 224}},
                {"name": "ToTensor"},
                {"name": "Normalize", "arguments": {"mean": MEAN, "std": STD}},
            ],
        },
    )
    save_weights(model, folder, "torchscript", torch.rand(1, 3, 224, 224))
    return folder


def write_config(folder: Path, config: Mapping[str, Any]) -> Path:
    path = Path(folder) / "config.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def rewrite_config(
    folder: Path, changes: Mapping[str, Any] | None = None, remove: Iterable[str] = ()
) -> Path:
    """Edit an existing bundle's config.json: set ``changes``, delete ``remove`` keys."""
    path = Path(folder) / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(changes or {})
    for key in remove:
        config.pop(key, None)
    return write_config(folder, config)
