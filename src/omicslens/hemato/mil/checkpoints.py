"""Reading aggregator (and cell-encoder) weights safely and fitting them strictly.

Every weights file a bundle names passes through here: it is read only with
``safetensors`` or ``torch.load(..., weights_only=True)`` (a checkpoint holding pickled
Python objects is refused, nothing executed); GenBloom's published checkpoints are mapped
onto our encoder's key layout; and a state dict is loaded only if it fits the module
exactly (missing, unexpected and mis-shaped keys are all reported).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from omicslens.hemato.errors import AggregatorBundleError


def _torch_load(path: Path) -> Any:
    import pickle

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise AggregatorBundleError(
            path,
            "refused to load: the checkpoint holds pickled Python objects, not just tensors "
            "(read with weights_only=True, nothing was executed)",
        ) from error
    except Exception as error:
        raise AggregatorBundleError(path, f"not a readable torch checkpoint: {error}") from error


def read_tensors(path: str | Path) -> dict[str, Any]:
    """A weights file as a dict: safetensors, or a torch checkpoint read with weights_only."""
    path = Path(path)
    if not path.is_file():
        raise AggregatorBundleError(path, "weights file does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as error:
            raise AggregatorBundleError(
                path, f"not a readable safetensors file: {error}"
            ) from error
    loaded = _torch_load(path)
    if not isinstance(loaded, Mapping):
        raise AggregatorBundleError(
            path, f"expected a dict checkpoint, got {type(loaded).__name__}"
        )
    return dict(loaded)


def load_genbloom_checkpoint(
    path: str | Path, require_encoder: bool = True
) -> dict[str, torch.Tensor]:
    """A GenBloom checkpoint as our encoder's (and projection head's) state dict.

    Accepts GenBloom-G (``{"vision_tower", "vision_model", "projection_head"}``) and
    GenBloom-V teacher checkpoints (``{"teacher": {"backbone.*", "dino_head.*", ...}}``),
    and plain encoder state dicts. Keys come back prefixed ``encoder.`` and
    ``projection_head.``; ``pos_embed`` is dropped; unchunked ``blocks.<i>.`` become
    ``blocks.0.<i>.``. A GenBloom-G checkpoint with ``vision_tower`` "mean_pool" has no
    transformer and is refused. A GenBloom-G checkpoint without ``vision_model`` (its
    encoder is GenBloom-V's, unchanged) is refused unless ``require_encoder`` is False,
    as when it is named as a bundle's ``projection_weights``.
    """
    path = Path(path)
    raw = read_tensors(path)
    state: dict[str, torch.Tensor] = {}
    if "vision_model" in raw or "projection_head" in raw:
        tower = raw.get("vision_tower", "transformer")
        if tower != "transformer":
            raise AggregatorBundleError(
                path, f"GenBloom-G checkpoint with vision_tower {tower!r} has no transformer"
            )
        if "vision_model" not in raw and require_encoder:
            raise AggregatorBundleError(
                path,
                "GenBloom-G checkpoint without 'vision_model': its encoder weights live in the "
                "GenBloom-V teacher checkpoint; name that one as 'weights' and this one as "
                "'projection_weights'",
            )
        encoder = raw.get("vision_model", {})
        projection = raw.get("projection_head", {})
    elif "teacher" in raw:
        encoder = {
            key[len("backbone.") :]: value
            for key, value in raw["teacher"].items()
            if key.startswith("backbone.")
        }
        projection = {}
    else:
        encoder = raw
        projection = {}
    for key, value in encoder.items():
        if not isinstance(value, torch.Tensor):
            continue
        key = key.removeprefix("module.")
        if key == "pos_embed":
            continue
        key = re.sub(r"^blocks\.(\d+)\.(?!\d)", r"blocks.0.\1.", key)
        state[f"encoder.{key}"] = value
    for key, value in projection.items():
        if isinstance(value, torch.Tensor):
            state[f"projection_head.{key}"] = value
    return state


def _apply_strict(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or mismatched:
        parts = []
        for label, names in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        ):
            if names:
                more = " ..." if len(names) > 12 else ""
                parts.append(f"{label}: {', '.join(names[:12])}{more}")
        raise AggregatorBundleError(path, f"weights do not fit the aggregator ({'; '.join(parts)})")
    model.load_state_dict(dict(state), strict=True)
