"""A loaded aggregator bundle: its config, its network with strictly loaded weights, and
what it says about one patient.

An aggregator bundle is a folder with a ``config.json`` whose ``task`` is ``"mil"`` and a
weights file (see :mod:`omicslens.hemato.mil.config`). It reads a bag of cell embeddings
(N, D) and returns patient-level class probabilities plus one attention weight per cell
(summing to 1 over the cells).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from omicslens.hemato.errors import AggregatorBundleError
from omicslens.hemato.mil.checkpoints import (
    _apply_strict,
    load_genbloom_checkpoint,
    read_tensors,
)
from omicslens.hemato.mil.config import AggregatorConfig
from omicslens.hemato.mil.networks import MilOutput, build_aggregator


@dataclass
class PatientScores:
    """What an aggregator says about one patient (one bag of cells)."""

    class_names: tuple[str, ...]
    probabilities: np.ndarray
    attention: np.ndarray
    embedding: np.ndarray

    @property
    def predicted(self) -> str:
        return self.class_names[int(np.argmax(self.probabilities))]


class AggregatorBundle:
    """A loaded aggregator bundle: config, module (eval mode, CPU) and optional bank."""

    def __init__(self, path: Path, config: AggregatorConfig, model: nn.Module) -> None:
        self.path = path
        self.config = config
        self.model = model

    @property
    def name(self) -> str:
        return self.config.name or self.path.name

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.class_names

    @property
    def reference_bank_path(self) -> Path | None:
        if self.config.reference_bank is None:
            return None
        return self.path / self.config.reference_bank

    @torch.inference_mode()
    def score(self, features: np.ndarray) -> PatientScores:
        """Patient-level probabilities (C,) summing to 1 and attention (N,) summing to 1."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.config.feature_dim:
            raise AggregatorBundleError(
                self.path,
                f"expects cell embeddings of shape (N, {self.config.feature_dim}), got "
                f"{features.shape}; the cell encoder in use does not match this aggregator",
            )
        if features.shape[0] == 0:
            raise AggregatorBundleError(self.path, "no cells to aggregate (0 white cells found)")
        output = self.model(torch.from_numpy(features))
        assert isinstance(output, MilOutput)
        probabilities = torch.softmax(output.logits.float(), dim=-1)
        return PatientScores(
            class_names=self.class_names,
            probabilities=probabilities.numpy().astype(np.float64),
            attention=output.attention.float().numpy().astype(np.float64),
            embedding=output.embedding.float().numpy().astype(np.float32),
        )


def load_aggregator(path: str | Path) -> AggregatorBundle:
    """Load an aggregator bundle folder (or its config.json); strict on every weight."""
    folder = Path(path)
    if folder.is_file() and folder.name == "config.json":
        folder = folder.parent
    if not (folder / "config.json").is_file():
        raise AggregatorBundleError(folder, "not an aggregator bundle: no config.json here")
    config = AggregatorConfig.from_file(folder / "config.json")
    arguments = dict(config.architecture_args)
    try:
        model = build_aggregator(
            config.aggregator, len(config.class_names), config.feature_dim, **arguments
        )
    except (TypeError, ValueError) as error:
        raise AggregatorBundleError(
            folder / "config.json", f"cannot build {config.aggregator!r} with {arguments}: {error}"
        ) from error
    state = _bundle_state(folder, config)
    _apply_strict(model, state, folder / config.weights)
    return AggregatorBundle(folder.resolve(), config, model.eval())


def _bundle_state(folder: Path, config: AggregatorConfig) -> dict[str, torch.Tensor]:
    weights = folder / config.weights
    if config.aggregator == "genbloom":
        raw = read_tensors(weights)
        if any(key.startswith("encoder.") for key in raw):
            state = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
        else:
            state = load_genbloom_checkpoint(weights)
        if config.projection_weights is not None:
            extra = load_genbloom_checkpoint(
                folder / config.projection_weights, require_encoder=False
            )
            state.update({k: v for k, v in extra.items() if k.startswith("projection_head.")})
        if config.head_weights is not None:
            head = read_tensors(folder / config.head_weights)
            for key in ("weight", "bias"):
                value = head.get(f"head.{key}", head.get(key))
                if isinstance(value, torch.Tensor):
                    state[f"head.{key}"] = value
        return state
    raw = read_tensors(weights)
    return {k.removeprefix("module."): v for k, v in raw.items() if isinstance(v, torch.Tensor)}


def attention_entropy(attention: np.ndarray) -> float:
    """Normalised entropy of the attention (1: uniform over cells, 0: one cell)."""
    weights = np.asarray(attention, dtype=np.float64)
    if weights.size <= 1:
        return 0.0
    weights = weights[weights > 0]
    return float(-(weights * np.log(weights)).sum() / math.log(len(attention)))
