"""Architectures by name, so a state-dict bundle says which network its weights fit.

Lookup order in :func:`build_architecture`:

1. our registry (``omicslens-*`` names): always our own plain-torch implementation;
2. ``timm.create_model(name, pretrained=False, num_classes=...)`` if timm is installed,
   so WSInfer-style timm names get timm's real module (and timm checkpoints load);
3. a few timm names (``vit_small_patch16_224``...) that we implement ourselves, used
   only when timm is *not* installed so such a config still runs without timm. Their
   parameter names are ours, not timm's; save your own state-dict bundles under an
   ``omicslens-*`` name so they load the same way whether or not timm is present.

TorchScript bundles (WSInfer's format) need none of this: the archive holds the network.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn

from omicslens.models.cnn import ResNetish, TinyCNN
from omicslens.models.errors import ArchitectureError
from omicslens.models.expression.net import ExpressionNet
from omicslens.models.vit import VisionTransformer


@dataclass(frozen=True)
class Architecture:
    """A named builder: ``build(num_outputs, **kwargs)``; ``num_outputs=0`` gives features."""

    name: str
    build: Callable[..., nn.Module]
    summary: str


def _vit(**preset: Any) -> Callable[..., nn.Module]:
    return partial(VisionTransformer, **preset)


VIT_TINY_16 = {"img_size": 224, "patch_size": 16, "embed_dim": 192, "depth": 12, "num_heads": 3}
VIT_SMALL_16 = {"img_size": 224, "patch_size": 16, "embed_dim": 384, "depth": 12, "num_heads": 6}
VIT_BASE_16 = {"img_size": 224, "patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12}

REGISTRY: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("omicslens-tinycnn", TinyCNN, "3 conv blocks, ~25k params (tests)"),
        Architecture("omicslens-resnet-ish", ResNetish, "compact residual conv net"),
        Architecture("omicslens-vit", VisionTransformer, "ViT, configurable (default ViT-S/16)"),
        Architecture("omicslens-vit-tiny16", _vit(**VIT_TINY_16), "ViT-Ti/16, 224 px"),
        Architecture("omicslens-vit-small16", _vit(**VIT_SMALL_16), "ViT-S/16, 224 px"),
        Architecture("omicslens-vit-base16", _vit(**VIT_BASE_16), "ViT-B/16, 224 px"),
        Architecture(
            "omicslens-expression", ExpressionNet, "gene expression: ensemble over tile + context"
        ),
    )
}

# timm names we can stand in for when timm is absent (our parameter names, not timm's).
TIMM_FALLBACKS: dict[str, Architecture] = {
    "vit_tiny_patch16_224": REGISTRY["omicslens-vit-tiny16"],
    "vit_small_patch16_224": REGISTRY["omicslens-vit-small16"],
    "vit_base_patch16_224": REGISTRY["omicslens-vit-base16"],
}


def timm_available() -> bool:
    return importlib.util.find_spec("timm") is not None


def architecture_source(name: str) -> str | None:
    """Which implementation ``name`` builds here: "omicslens", "timm", or None (none)."""
    if name in REGISTRY:
        return "omicslens"
    if timm_available():
        return "timm"
    if name in TIMM_FALLBACKS:
        return "omicslens"
    return None


#: ``architecture_args`` a bundle may pass to timm: shape and regularisation settings
#: only. Anything else (``checkpoint_path``, ``pretrained``, ``pretrained_cfg_overlay``,
#: hub ids, cache folders...) could make timm read or unpickle a file, so it is refused.
TIMM_ARGS = frozenset(
    {
        "img_size",
        "patch_size",
        "in_chans",
        "global_pool",
        "embed_dim",
        "depth",
        "num_heads",
        "mlp_ratio",
        "qkv_bias",
        "qk_norm",
        "init_values",
        "class_token",
        "no_embed_class",
        "reg_tokens",
        "pos_embed",
        "dynamic_img_size",
        "dynamic_img_pad",
        "drop_rate",
        "drop_path_rate",
        "attn_drop_rate",
        "proj_drop_rate",
        "pos_drop_rate",
        "act_layer",
        "norm_layer",
        "mlp_layer",
        "fc_norm",
        "output_stride",
        "layers",
        "width",
    }
)
_SAFE_STRING = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def check_timm_args(name: str, kwargs: dict[str, Any]) -> None:
    """Refuse ``architecture_args`` outside :data:`TIMM_ARGS`, and values that are not
    plain numbers, booleans or short identifiers (no paths, no URLs, no hub ids)."""
    for key, value in kwargs.items():
        if key not in TIMM_ARGS:
            raise ArchitectureError(
                f"architecture_args '{key}' is not allowed for the timm architecture "
                f"'{name}' (allowed: {', '.join(sorted(TIMM_ARGS))}); weights come only from "
                "the bundle's own weights file"
            )
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, (bool, int, float)) or item is None:
                continue
            if isinstance(item, str) and _SAFE_STRING.match(item):
                continue
            raise ArchitectureError(
                f"architecture_args '{key}' for '{name}' must be numbers, booleans or short "
                f"names, got {item!r}"
            )


def build_architecture(name: str, num_outputs: int, **kwargs: Any) -> nn.Module:
    """A freshly initialised network (random weights) with ``num_outputs`` outputs."""
    if num_outputs < 0:
        raise ArchitectureError(f"num_outputs must be >= 0, got {num_outputs}")
    if name in REGISTRY:
        return _build(REGISTRY[name], num_outputs, kwargs)
    if timm_available():
        import timm

        check_timm_args(name, kwargs)

        try:
            return timm.create_model(name, pretrained=False, num_classes=num_outputs, **kwargs)
        except Exception as error:  # timm raises RuntimeError for unknown names
            raise ArchitectureError(f"timm cannot build '{name}': {error}") from error
    if name in TIMM_FALLBACKS:
        return _build(TIMM_FALLBACKS[name], num_outputs, kwargs)
    raise ArchitectureError(
        f"unknown architecture '{name}': built in are {', '.join(sorted(REGISTRY))} "
        f"(and without timm: {', '.join(sorted(TIMM_FALLBACKS))}); other names are timm "
        "models and need timm installed (pip install timm), or ship the bundle as TorchScript"
    )


#: parameters + buffers a network may have (ViT-B/16 has 86 million): a config asking for
#: more (``architecture_args`` width 10^9) is refused before anything is allocated
MAX_PARAMETERS = 2_000_000_000


def _build(arch: Architecture, num_outputs: int, kwargs: dict[str, Any]) -> nn.Module:
    _check_size(arch, num_outputs, kwargs)
    try:
        return arch.build(num_outputs, **kwargs)
    except (TypeError, ValueError) as error:
        raise ArchitectureError(f"cannot build '{arch.name}' with {kwargs}: {error}") from error


def _check_size(arch: Architecture, num_outputs: int, kwargs: dict[str, Any]) -> None:
    """Build the network on torch's ``meta`` device (shapes only, no memory) and refuse it
    when the arguments cannot build it or it would be absurdly large."""
    import torch

    try:
        with torch.device("meta"):
            probe = arch.build(num_outputs, **kwargs)
    except RecursionError:
        raise ArchitectureError(f"cannot build '{arch.name}' with {kwargs}: too deep") from None
    except Exception as error:  # TypeError, ValueError, RuntimeError, OverflowError...
        raise ArchitectureError(
            f"cannot build '{arch.name}' with {_short(kwargs)}: {type(error).__name__}: "
            f"{str(error)[:200]}"
        ) from error
    size = sum(t.numel() for t in (*probe.parameters(), *probe.buffers()))
    if size > MAX_PARAMETERS:
        raise ArchitectureError(
            f"'{arch.name}' with {_short(kwargs)} would have {size:,} parameters; at most "
            f"{MAX_PARAMETERS:,} are allowed"
        )


def _short(kwargs: dict[str, Any]) -> str:
    text = repr(kwargs)
    return text if len(text) <= 120 else text[:117] + "..."
