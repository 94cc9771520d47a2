"""What the inference benchmark runs and what it is judged against.

Split out of :mod:`omicslens.bench.inference` so that the throughput part, the report and
the CLI share one definition of the benchmark's networks (:class:`ModelSpec`,
:data:`MODELS`), of its targets, and of the random-weight bundles (WSInfer layout) that
every part loads; nothing here times anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from omicslens.core.atomic import write_text_atomic
from omicslens.models.architectures import build_architecture

RATIO_TARGET = 0.9
STALL_TARGET_MS = 50.0
#: Outputs of the benchmark bundles (a gene panel's worth; the head's cost is negligible).
NUM_OUTPUTS = 16
#: Normalisation of the benchmark bundles (H&E-like; any values would do for timing).
MEAN = [0.70, 0.55, 0.68]
STD = [0.15, 0.17, 0.12]
BUNDLE_VERSION = 1

Log = Callable[[str], None]


@dataclass(frozen=True)
class ModelSpec:
    """A benchmark network: architecture name and arguments, patch size and spacing."""

    name: str
    architecture: str
    summary: str
    patch_size: int = 224
    spacing: float = 0.5
    architecture_args: dict[str, Any] = field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("cnn", "omicslens-tinycnn", "TinyCNN: 3 stride-2 conv blocks (16, 32, 64)"),
        ModelSpec("vit-s16", "omicslens-vit-small16", "ViT-S/16: embed 384, depth 12, heads 6"),
        ModelSpec("vit-b16", "omicslens-vit-base16", "ViT-B/16: embed 768, depth 12, heads 12"),
        ModelSpec(
            "vit-g14",
            "omicslens-vit",
            "ViT-g/14-sized: embed 1536, depth 40, heads 24, patch 14, MLP 4x",
            architecture_args={
                "img_size": 224,
                "patch_size": 14,
                "embed_dim": 1536,
                "depth": 40,
                "num_heads": 24,
            },
        ),
    )
}
CPU_MODELS = ("cnn", "vit-s16")
GPU_MODELS = ("vit-b16", "vit-g14")


# -- bundles ----------------------------------------------------------------------------
def bundle_config(spec: ModelSpec, outputs: int = NUM_OUTPUTS) -> dict[str, Any]:
    """The config.json of a benchmark bundle (WSInfer layout, random weights)."""
    config: dict[str, Any] = {
        "spec_version": "1.0",
        "name": f"bench-random-weights-{spec.name}",
        "version": f"0.0.{BUNDLE_VERSION}",
        "description": "BENCHMARK FIXTURE: random weights, for timing only; predicts nothing.",
        "architecture": spec.architecture,
        "num_classes": outputs,
        "class_names": [f"output_{index}" for index in range(outputs)],
        "patch_size_pixels": spec.patch_size,
        "spacing_um_px": spec.spacing,
        "transform": [
            {"name": "Resize", "arguments": {"size": spec.patch_size}},
            {"name": "ToTensor"},
            {"name": "Normalize", "arguments": {"mean": MEAN, "std": STD}},
        ],
        "task": "regression",
    }
    if spec.architecture_args:
        config["architecture_args"] = dict(spec.architecture_args)
    return config


def ensure_bundle(folder: Path, spec: ModelSpec, log: Log, seed: int = 0) -> Path:
    """A bundle of ``spec`` with seeded random weights in ``folder``; reused when it matches.

    safetensors weights, so the model runs as our eager module (the same one a state-dict
    bundle gets); the config is written last, so a half-written bundle is rewritten.
    """
    target = Path(folder) / f"bench-{spec.name}-p{spec.patch_size}"
    config = bundle_config(spec)
    config_path = target / "config.json"
    weights = target / "model.safetensors"
    if (
        config_path.exists()
        and weights.exists()
        and json.loads(config_path.read_text(encoding="utf-8")) == config
    ):
        return target
    from safetensors.torch import save_file

    log(f"writing benchmark bundle {target} (random weights) ...")
    target.mkdir(parents=True, exist_ok=True)
    config_path.unlink(missing_ok=True)
    torch.manual_seed(seed)
    model = build_architecture(spec.architecture, NUM_OUTPUTS, **spec.architecture_args).eval()
    partial = target / ".partial-model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(partial))
    os.replace(partial, weights)
    write_text_atomic(config_path, json.dumps(config, indent=2))
    return target
