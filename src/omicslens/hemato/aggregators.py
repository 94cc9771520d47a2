"""Patient-level scores from per-cell embeddings: MIL aggregator bundles and retrieval.

An aggregator bundle is a folder with a ``config.json`` whose ``task`` is ``"mil"`` and a
weights file. It reads a bag of cell embeddings (N, D) and returns patient-level class
probabilities plus one attention weight per cell (summing to 1 over the cells).

Two aggregators: ``gated-attention`` (:class:`GatedAttentionMIL`, SCEMILA-style gated
attention after Ilse et al. 2018) and ``genbloom`` (:class:`GenBloomAggregator`, a
transformer over the cells in GenBloom's published parameter layout); see
:mod:`omicslens.hemato.mil.networks`.

No genetic weights ship with OmicsLens: none trained on real patients can be obtained
here, and invented ones would be worse than none. Bundles come from the user (or from
tests, which build small ones with random weights in the published layout).

Checkpoints are read only with ``safetensors`` or ``torch.load(..., weights_only=True)``.

The config.json format and the ``encoder`` kinds are described in
:mod:`omicslens.hemato.mil.config`.

This module is the public face: it re-exports the names of the pieces in
:mod:`omicslens.hemato.mil` (networks, checkpoints, config, bundle, reference bank), so
callers need not know where each lives, and it builds the timm (DinoBloom-style) cell
encoder a bundle's ``encoder`` may name. :func:`build_timm_encoder` looks up
:func:`timm_available` in this module's namespace.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from omicslens.hemato.errors import EncoderUnavailableError
from omicslens.hemato.mil.bundle import AggregatorBundle, load_aggregator
from omicslens.hemato.mil.bundle import PatientScores as PatientScores
from omicslens.hemato.mil.bundle import attention_entropy as attention_entropy
from omicslens.hemato.mil.checkpoints import _apply_strict, load_genbloom_checkpoint, read_tensors
from omicslens.hemato.mil.config import DEFAULT_GENETIC_LABELS, AggregatorConfig, EncoderSpec
from omicslens.hemato.mil.networks import (
    AGGREGATORS,
    GatedAttentionMIL,
    GenBloomAggregator,
    MilOutput,
    build_aggregator,
    genbloom_encoder_keys,
)
from omicslens.hemato.mil.networks import GenBloomEncoder as GenBloomEncoder
from omicslens.hemato.mil.networks import GenBloomProjectionHead as GenBloomProjectionHead
from omicslens.hemato.mil.reference_bank import retrieve_similar, write_reference_bank

__all__ = [
    "AGGREGATORS",
    "DEFAULT_GENETIC_LABELS",
    "AggregatorBundle",
    "AggregatorConfig",
    "EncoderSpec",
    "GatedAttentionMIL",
    "GenBloomAggregator",
    "MilOutput",
    "build_aggregator",
    "build_timm_encoder",
    "genbloom_encoder_keys",
    "load_aggregator",
    "load_genbloom_checkpoint",
    "retrieve_similar",
    "write_reference_bank",
]


# -- cell encoders ------------------------------------------------------------------------------
def timm_available() -> bool:
    return importlib.util.find_spec("timm") is not None


def build_timm_encoder(spec: EncoderSpec, bundle_folder: Path) -> nn.Module:
    """A DinoBloom-style cell encoder: ``timm.create_model(architecture, num_classes=0)``
    with local weights (safetensors, or a checkpoint read with weights_only; DINOv2
    ``teacher``/``backbone.`` wrappers unwrapped), strictly loaded, in eval mode."""
    if not timm_available():
        raise EncoderUnavailableError(
            f"{bundle_folder / 'config.json'}: the cell encoder {spec.architecture!r} is a timm "
            "model and timm is not installed; install it (pip install timm) or use an "
            "aggregator whose encoder is the typing model"
        )
    import timm

    assert spec.architecture is not None and spec.weights is not None
    model = timm.create_model(
        spec.architecture, pretrained=False, num_classes=0, **dict(spec.architecture_args)
    )
    raw = read_tensors(bundle_folder / spec.weights)
    if "teacher" in raw and isinstance(raw["teacher"], Mapping):
        raw = {
            k[len("backbone.") :]: v for k, v in raw["teacher"].items() if k.startswith("backbone.")
        }
    for nested in ("state_dict", "model"):
        if nested in raw and isinstance(raw[nested], Mapping):
            raw = dict(raw[nested])
    state = {k.removeprefix("module."): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    _apply_strict(model, state, bundle_folder / spec.weights)
    return model.eval()
