"""Turn a bundle's weights into an eval-mode ``torch.nn.Module`` on the CPU.

Safety: state dicts are read with ``torch.load(..., weights_only=True)`` *always*. A
bundle may come from anyone, and a full unpickle runs arbitrary code; weights_only
refuses anything but tensors and plain containers. TorchScript archives and safetensors
files contain no pickled Python objects that run on load.

Strictness: a state dict must fit the architecture exactly (strict loading). A model
with a few layers left at random initialisation still produces plausible numbers, so we
refuse it and name every missing, unexpected or mis-shaped key instead.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from omicslens.models.architectures import build_architecture
from omicslens.models.bundle import ModelBundle
from omicslens.models.errors import (
    ArchitectureError,
    BundleConfigError,
    ConfigProblem,
    StateDictMismatchError,
    WeightsError,
)
from omicslens.models.torchscript_check import check_torchscript

# Prefixes added by wrappers around the real model: DataParallel/DDP and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Keys under which training scripts commonly nest the state dict in a checkpoint.
_NESTED_KEYS = ("state_dict", "model", "model_state_dict")


def load_model(bundle: ModelBundle, trust_code: bool = False) -> nn.Module:
    """The bundle's network with its weights, in eval mode, on the CPU.

    A TorchScript archive is read (not run) first and refused when it calls ops that
    touch files or processes (:mod:`omicslens.models.torchscript_check`), unless
    ``trust_code``."""
    if bundle.weights_format == "torchscript":
        check_torchscript(bundle.weights_path, trust_code)
        model = _load_torchscript(bundle.weights_path)
    else:
        state = load_state_dict(bundle.weights_path, bundle.weights_format)
        model = _build(bundle)
        apply_state_dict(model, state, bundle.weights_path, bundle.config.architecture)
    return model.eval()


def _load_torchscript(path: Path) -> nn.Module:
    try:
        with warnings.catch_warnings():
            # torch >= 2.9 deprecates TorchScript, but WSInfer-zoo ships it: not actionable
            # for a user who just wants to run a published bundle.
            warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:  # RuntimeError/ValueError with torch's own wording
        raise WeightsError(path, f"not a loadable TorchScript archive: {error}") from error
    return module


def _build(bundle: ModelBundle) -> nn.Module:
    config = bundle.config
    num_outputs = 0 if config.task == "embedding" else config.num_classes
    try:
        return build_architecture(config.architecture, num_outputs, **config.architecture_args)
    except ArchitectureError as error:
        raise BundleConfigError(
            bundle.config_path, [ConfigProblem("architecture", str(error))]
        ) from error


def load_state_dict(path: Path, weights_format: str) -> dict[str, torch.Tensor]:
    """Read a safetensors file or a ``torch.save`` checkpoint as a flat name->tensor dict."""
    if weights_format == "safetensors":
        from safetensors.torch import load_file

        try:
            raw: Any = load_file(str(path), device="cpu")
        except Exception as error:  # SafetensorError, OSError
            raise WeightsError(path, f"not a readable safetensors file: {error}") from error
    else:
        try:
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise WeightsError(
                path,
                "refused to load: the file contains pickled Python objects, not just tensors "
                "(loaded with weights_only=True, nothing was executed). Re-save the weights "
                "as a plain state dict or as safetensors.",
            ) from error
        except Exception as error:  # truncated zip, not a torch file at all
            raise WeightsError(path, f"not a readable torch checkpoint: {error}") from error
    return normalise_state_dict(raw, path)


def normalise_state_dict(raw: Any, path: Path) -> dict[str, torch.Tensor]:
    """Unwrap ``{"state_dict": ...}``/``{"model": ...}`` and strip ``module.`` prefixes."""
    state = raw
    if isinstance(state, Mapping) and not _all_tensors(state):
        nested = next((state[k] for k in _NESTED_KEYS if isinstance(state.get(k), Mapping)), None)
        if nested is not None:
            state = nested
    if not isinstance(state, Mapping) or not state:
        raise WeightsError(path, f"expected a state dict (name -> tensor), got {_kind(raw)}")
    if not _all_tensors(state):
        bad = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)][:5]
        raise WeightsError(path, f"state dict has non-tensor entries: {', '.join(bad)}")
    return {_strip_prefixes(str(key)): value for key, value in state.items()}


def apply_state_dict(
    model: nn.Module, state: Mapping[str, torch.Tensor], path: Path, architecture: str
) -> None:
    """Strictly copy ``state`` into ``model``; on any mismatch name every offending key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{key} {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in set(expected) & set(state)
        if state[key].shape != expected[key].shape
    )
    if missing or unexpected or mismatched:
        raise StateDictMismatchError(path, architecture, missing, unexpected, mismatched)
    model.load_state_dict(dict(state), strict=True)


def _strip_prefixes(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                stripped = True
    return key


def _all_tensors(mapping: Mapping[Any, Any]) -> bool:
    return all(isinstance(value, torch.Tensor) for value in mapping.values())


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an empty mapping" if not value else "a mapping of non-tensors"
    return type(value).__name__
