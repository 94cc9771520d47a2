"""Patient-level scores from per-cell embeddings: MIL aggregator bundles and retrieval.

An aggregator bundle is a folder with a ``config.json`` whose ``task`` is ``"mil"`` and a
weights file. It reads a bag of cell embeddings (N, D) and returns patient-level class
probabilities plus one attention weight per cell (summing to 1 over the cells).

Two aggregators:

``gated-attention`` (:class:`GatedAttentionMIL`)
    Attention-based deep multiple-instance learning with the gated attention of Ilse,
    Tomczak and Welling (ICML 2018), the aggregation SCEMILA (Hehr et al., PLOS Digital
    Health 2023) uses to predict AML genetics from single white cells: an instance
    encoder, attention ``w^T (tanh(V h) * sigmoid(U h))`` softmaxed over the cells, the
    attention-weighted mean of the instances, a classifier. Our own implementation
    and parameter names; SCEMILA's published code works on 512x5x5 feature maps, this
    one on embedding vectors.
``genbloom`` (:class:`GenBloomAggregator`)
    A transformer over the cells in the style of GenBloom (marrlab/GenBloom, Dasdelen et
    al., MICCAI 2026): DINOv2 blocks without positional embeddings (the cells form a set),
    a linear ``patch_embed.project`` from the cell encoder's dimension, a CLS token whose
    final normalised state is the patient embedding, then a linear classification head
    (GenBloom itself evaluates with a linear probe on that embedding). The encoder's
    parameter names and shapes are those of GenBloom's ``DinoVisionTransformerNoPos``
    with one block chunk (``blocks.0.<i>.norm1.weight`` ...), so a published GenBloom-G
    checkpoint (``vision_model`` + ``projection_head``) or a GenBloom-V teacher checkpoint
    loads into it; its ``pos_embed`` (zeros, unused by design) is dropped. The cells'
    attention is the CLS token's attention in the last block, averaged over heads and
    renormalised over the cells.

No genetic weights ship with OmicsLens: none trained on real patients can be obtained
here, and invented ones would be worse than none. Bundles come from the user (or from
tests, which build small ones with random weights in the published layout).

Checkpoints are read only with ``safetensors`` or ``torch.load(..., weights_only=True)``.

config.json of an aggregator bundle::

    {
      "spec_version": "1.0",
      "task": "mil",
      "aggregator": "gated-attention" | "genbloom",
      "architecture_args": {...},            # see the classes' arguments
      "feature_dim": 768,                    # D of the cell embeddings it reads
      "class_names": ["AML-CBFB-MYH11", ...],
      "num_classes": 5,
      "weights": "model.safetensors",        # or a GenBloom .pth checkpoint
      "head_weights": "head.safetensors",    # optional: linear head for a GenBloom checkpoint
      "encoder": {...},                      # which cell embeddings it expects (below)
      "reference_bank": "bank.h5",           # optional: patients for retrieval
      "name": ..., "version": ..., "description": ..., "citation": ...
    }

``encoder`` says where the cell embeddings come from:

* ``{"kind": "typing"}`` (default): the penultimate layer of the typing bundle in use;
* ``{"kind": "bundle", "path": "..."}``: another (embedding or classification) bundle;
* ``{"kind": "timm", "architecture": "vit_base_patch14_dinov2", "weights": "dinobloom-b.pth",
  "architecture_args": {"img_size": 224}, "input_size": 224, "mean": [...], "std": [...],
  "box_scale": 1.0}``: a DinoBloom-style cell encoder built with timm and local weights.
  timm cannot be assumed installed; without it this raises :class:`EncoderUnavailableError`
  saying so.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from omicslens.hemato.errors import AggregatorBundleError, EncoderUnavailableError
from omicslens.models.vit import Mlp  # fc1 / act / fc2: the layout GenBloom uses too

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

#: GenBloom's AML-Hehr labels (splits/aml_hehr/folds/label_to_diagnose.csv), label_id order.
DEFAULT_GENETIC_LABELS = (
    "AML-CBFB-MYH11",
    "AML-NPM1",
    "AML-PML-RARA",
    "AML-RUNX1-RUNX1T1",
    "SCD",
)


# -- networks -------------------------------------------------------------------------------
@dataclass
class MilOutput:
    """Patient logits (C,), attention over cells (N,) and the patient embedding (E,)."""

    logits: torch.Tensor
    attention: torch.Tensor
    embedding: torch.Tensor


class GatedAttentionMIL(nn.Module):
    """Gated attention MIL (Ilse et al. 2018), SCEMILA-style, on (N, D) cell embeddings."""

    def __init__(
        self,
        num_classes: int,
        feature_dim: int,
        hidden_dim: int = 256,
        attention_dim: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(feature_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout)
        )
        self.attention_v = nn.Linear(hidden_dim, attention_dim)
        self.attention_u = nn.Linear(hidden_dim, attention_dim)
        self.attention_w = nn.Linear(attention_dim, 1)
        self.classifier = nn.Linear(hidden_dim, num_classes)
        self.feature_dim = feature_dim

    def forward(self, cells: torch.Tensor) -> MilOutput:
        hidden = self.encoder(cells)
        gate = torch.tanh(self.attention_v(hidden)) * torch.sigmoid(self.attention_u(hidden))
        attention = torch.softmax(self.attention_w(gate).squeeze(-1), dim=0)
        patient = attention @ hidden
        return MilOutput(self.classifier(patient), attention, patient)


class _FeatureEmbed(nn.Module):
    """GenBloom's ``FeatureEmbed``: one linear projection, named ``project``."""

    def __init__(self, in_features: int, embed_dim: int) -> None:
        super().__init__()
        self.project = nn.Linear(in_features, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(x)


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, tokens, dim = x.shape
        head = dim // self.num_heads
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, head).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        weights = torch.softmax((q * head**-0.5) @ k.transpose(-2, -1), dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj(out), weights


class _LayerScale(nn.Module):
    def __init__(self, dim: int, init_values: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Block(nn.Module):
    """A pre-norm DINOv2 block: norm1, attn, ls1, norm2, mlp, ls2 (GenBloom's names)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, init_values: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, num_heads)
        self.ls1 = _LayerScale(dim, init_values)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = _LayerScale(dim, init_values)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.attn(self.norm1(x))
        x = x + self.ls1(attended)
        x = x + self.ls2(self.mlp(self.norm2(x)))
        return x, weights


class _BlockChunk(nn.ModuleList):
    """DINOv2's block chunk: ``blocks.0.<i>`` in the state dict."""


class GenBloomEncoder(nn.Module):
    """GenBloom's bag encoder (``DinoVisionTransformerNoPos`` with ``FeatureEmbed``).

    State-dict keys: ``cls_token``, ``mask_token``, ``register_tokens`` (only with
    registers), ``patch_embed.project.{weight,bias}``, ``blocks.0.<i>.{norm1, attn.qkv,
    attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}.*``, ``norm.{weight,bias}``.
    GenBloom's own ``pos_embed`` is zeros and never added; it is not a parameter here.
    """

    def __init__(
        self,
        feature_dim: int = 768,
        embed_dim: int = 768,
        depth: int = 6,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        init_values: float = 1e-5,
        num_register_tokens: int = 0,
    ) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.embed_dim = embed_dim
        self.num_register_tokens = num_register_tokens
        self.patch_embed = _FeatureEmbed(feature_dim, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_tokens = (
            nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
            if num_register_tokens
            else None
        )
        self.blocks = nn.ModuleList(
            [
                _BlockChunk(
                    [_Block(embed_dim, num_heads, mlp_ratio, init_values) for _ in range(depth)]
                )
            ]
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) or (1, N, D) -> (CLS embedding (E,), CLS->cell attention (N,))."""
        x = cells.unsqueeze(0) if cells.ndim == 2 else cells
        if x.ndim != 3 or x.shape[0] != 1:
            raise ValueError(f"expected one bag of cells (N, D), got shape {tuple(cells.shape)}")
        n = x.shape[1]
        tokens = [self.cls_token.expand(1, -1, -1)]
        if self.register_tokens is not None:
            tokens.append(self.register_tokens)
        tokens.append(self.patch_embed(x))
        h = torch.cat(tokens, dim=1)
        weights = torch.empty(0)
        for chunk in self.blocks:
            assert isinstance(chunk, _BlockChunk)
            for block in chunk:
                h, weights = block(h)
        h = self.norm(h)
        first_cell = 1 + self.num_register_tokens
        cls_to_cells = weights[0, :, 0, first_cell : first_cell + n].mean(dim=0)
        attention = cls_to_cells / cls_to_cells.sum().clamp(min=1e-12)
        return h[0, 0], attention


class GenBloomProjectionHead(nn.Module):
    """GenBloom-G's ``ProjectionHead``: ``net.{0,1,4}`` = Linear, BatchNorm1d, (GELU,
    Dropout), Linear; output L2-normalised. Used for retrieval in GenBloom's space."""

    def __init__(self, embed_dim: int, projection_dim: int = 128, hidden_dim: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(embed_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.GELU(),
            nn.Dropout(0.1),
            nn.Linear(hidden_dim, projection_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x.reshape(-1, x.shape[-1])), dim=-1)


class GenBloomAggregator(nn.Module):
    """GenBloom-style transformer aggregator: ``encoder`` (published layout) + ``head``.

    ``projection_dim`` > 0 adds GenBloom-G's projection head (``projection_head.*``); the
    patient embedding used for retrieval is then the projected one, as in GenBloom-G.
    """

    def __init__(
        self,
        num_classes: int,
        feature_dim: int = 768,
        embed_dim: int = 768,
        depth: int = 6,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        init_values: float = 1e-5,
        num_register_tokens: int = 0,
        projection_dim: int = 0,
        projection_hidden_dim: int = 64,
    ) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.encoder = GenBloomEncoder(
            feature_dim, embed_dim, depth, num_heads, mlp_ratio, init_values, num_register_tokens
        )
        self.head = nn.Linear(embed_dim, num_classes)
        self.projection_head = (
            GenBloomProjectionHead(embed_dim, projection_dim, projection_hidden_dim)
            if projection_dim
            else None
        )

    def forward(self, cells: torch.Tensor) -> MilOutput:
        cls, attention = self.encoder(cells)
        if self.projection_head is not None:
            embedding = self.projection_head(cls.unsqueeze(0))[0]
        else:
            embedding = cls
        return MilOutput(self.head(cls), attention, embedding)


AGGREGATORS: dict[str, type[nn.Module]] = {
    "gated-attention": GatedAttentionMIL,
    "genbloom": GenBloomAggregator,
}


def build_aggregator(kind: str, num_classes: int, feature_dim: int, **arguments: Any) -> nn.Module:
    """A freshly initialised aggregator (random weights)."""
    if kind not in AGGREGATORS:
        raise ValueError(f"unknown aggregator {kind!r}; known: {', '.join(AGGREGATORS)}")
    return AGGREGATORS[kind](num_classes=num_classes, feature_dim=feature_dim, **arguments)


def genbloom_encoder_keys(depth: int, num_register_tokens: int = 0) -> list[str]:
    """The state-dict keys of GenBloom's bag encoder (``vision_model``), sorted."""
    keys = ["cls_token", "mask_token", "norm.weight", "norm.bias"]
    keys += ["patch_embed.project.weight", "patch_embed.project.bias"]
    if num_register_tokens:
        keys.append("register_tokens")
    for index in range(depth):
        prefix = f"blocks.0.{index}."
        for name in (
            "norm1.weight",
            "norm1.bias",
            "attn.qkv.weight",
            "attn.qkv.bias",
            "attn.proj.weight",
            "attn.proj.bias",
            "ls1.gamma",
            "norm2.weight",
            "norm2.bias",
            "mlp.fc1.weight",
            "mlp.fc1.bias",
            "mlp.fc2.weight",
            "mlp.fc2.bias",
            "ls2.gamma",
        ):
            keys.append(prefix + name)
    return sorted(keys)


# -- checkpoints ------------------------------------------------------------------------------
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


# -- bundles ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EncoderSpec:
    """Where the cell embeddings an aggregator reads come from (see the module docstring)."""

    kind: str = "typing"
    path: str | None = None
    architecture: str | None = None
    weights: str | None = None
    architecture_args: Mapping[str, Any] = field(default_factory=dict)
    input_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    box_scale: float = 1.0


@dataclass(frozen=True)
class AggregatorConfig:
    """A validated aggregator ``config.json``."""

    aggregator: str
    class_names: tuple[str, ...]
    feature_dim: int
    architecture_args: Mapping[str, Any]
    weights: str
    head_weights: str | None = None
    projection_weights: str | None = None
    encoder: EncoderSpec = EncoderSpec()
    reference_bank: str | None = None
    name: str | None = None
    version: str | None = None
    description: str | None = None
    citation: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path) -> AggregatorConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AggregatorBundleError(path, "config.json is missing") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise AggregatorBundleError(path, f"not a readable JSON config: {error}") from error
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: Any, source: str | Path = "config.json") -> AggregatorConfig:
        problems: list[str] = []
        if not isinstance(data, Mapping):
            raise AggregatorBundleError(source, "config must be a JSON object")
        if data.get("task") != "mil":
            problems.append(f"field 'task': expected \"mil\", got {data.get('task')!r}")
        kind = data.get("aggregator")
        if kind not in AGGREGATORS:
            problems.append(
                f"field 'aggregator': expected one of {list(AGGREGATORS)}, got {kind!r}"
            )
        names = data.get("class_names", list(DEFAULT_GENETIC_LABELS))
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            problems.append("field 'class_names': expected a non-empty list of strings")
            names = []
        elif len(set(names)) != len(names):
            problems.append("field 'class_names': names must be unique")
        count = data.get("num_classes", len(names))
        if count != len(names):
            problems.append(f"field 'num_classes': {count} does not match {len(names)} class_names")
        feature_dim = data.get("feature_dim")
        if not (
            isinstance(feature_dim, int) and not isinstance(feature_dim, bool) and feature_dim > 0
        ):
            problems.append(
                "field 'feature_dim': expected a positive integer (D of the cell embeddings)"
            )
            feature_dim = 0
        arguments = data.get("architecture_args") or {}
        if not isinstance(arguments, Mapping):
            problems.append("field 'architecture_args': expected an object")
            arguments = {}
        files: dict[str, str | None] = {}
        for key in ("weights", "head_weights", "projection_weights", "reference_bank"):
            value = data.get(key)
            if value is None:
                files[key] = "model.safetensors" if key == "weights" else None
                continue
            if not isinstance(value, str) or not _inside_bundle(value):
                problems.append(f"field '{key}': must name a file inside the bundle folder")
                files[key] = None
            else:
                files[key] = value
        encoder = _encoder_spec(data.get("encoder"), problems)
        if problems:
            text = "; ".join(problems)
            raise AggregatorBundleError(source, f"invalid aggregator config: {text}")
        return cls(
            aggregator=str(kind),
            class_names=tuple(names),
            feature_dim=int(feature_dim),
            architecture_args=dict(arguments),
            weights=str(files["weights"]),
            head_weights=files["head_weights"],
            projection_weights=files["projection_weights"],
            encoder=encoder,
            reference_bank=files["reference_bank"],
            name=data.get("name"),
            version=data.get("version"),
            description=data.get("description"),
            citation=data.get("citation"),
            raw=dict(data),
        )


def _inside_bundle(value: str) -> bool:
    pure = PurePosixPath(value.replace("\\", "/"))
    return not (pure.is_absolute() or ".." in pure.parts or ":" in value)


def _encoder_spec(value: Any, problems: list[str]) -> EncoderSpec:
    if value is None:
        return EncoderSpec()
    if not isinstance(value, Mapping):
        problems.append("field 'encoder': expected an object")
        return EncoderSpec()
    kind = value.get("kind", "typing")
    if kind not in ("typing", "bundle", "timm"):
        problems.append(f"field 'encoder.kind': expected typing, bundle or timm, got {kind!r}")
        return EncoderSpec()
    if kind == "bundle" and not isinstance(value.get("path"), str):
        problems.append("field 'encoder.path': a bundle encoder needs the bundle's path")
    if kind == "timm":
        if not isinstance(value.get("architecture"), str):
            problems.append("field 'encoder.architecture': a timm encoder needs a timm model name")
        weights = value.get("weights")
        if not isinstance(weights, str) or not _inside_bundle(weights):
            problems.append(
                "field 'encoder.weights': a timm encoder needs a weights file in the bundle"
            )

    def triple(key: str, default: tuple[float, float, float]) -> tuple[float, float, float]:
        got = value.get(key)
        if got is None:
            return default
        if not (isinstance(got, list) and len(got) == 3):
            problems.append(f"field 'encoder.{key}': expected three numbers")
            return default
        return (float(got[0]), float(got[1]), float(got[2]))

    return EncoderSpec(
        kind=str(kind),
        path=value.get("path"),
        architecture=value.get("architecture"),
        weights=value.get("weights"),
        architecture_args=dict(value.get("architecture_args") or {}),
        input_size=int(value.get("input_size", 224)),
        mean=triple("mean", EncoderSpec.mean),
        std=triple("std", EncoderSpec.std),
        box_scale=float(value.get("box_scale", 1.0)),
    )


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


# -- retrieval ----------------------------------------------------------------------------------
def write_reference_bank(
    path: str | Path,
    embeddings: np.ndarray,
    labels: Sequence[str],
    patient_ids: Sequence[str],
) -> Path:
    """Write a reference bank h5 (``embeddings`` (P, E), ``labels``, ``patient_ids``) atomically."""
    import io

    import h5py

    embeddings = np.asarray(embeddings, dtype=np.float32)
    if (
        embeddings.ndim != 2
        or len(labels) != len(embeddings)
        or len(patient_ids) != len(embeddings)
    ):
        raise ValueError("embeddings (P, E), labels (P,) and patient_ids (P,) must align")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle.create_dataset("embeddings", data=embeddings)
        strings = h5py.string_dtype("utf-8")
        handle.create_dataset("labels", data=np.array(list(labels), dtype=object), dtype=strings)
        handle.create_dataset(
            "patient_ids", data=np.array(list(patient_ids), dtype=object), dtype=strings
        )
    from omicslens.core.atomic import write_bytes_atomic

    return write_bytes_atomic(path, buffer.getvalue())


def retrieve_similar(
    embedding: np.ndarray, bank_path: str | Path, top_k: int = 5
) -> list[dict[str, Any]]:
    """The ``top_k`` reference patients most similar to ``embedding`` by cosine similarity."""
    import h5py

    bank_path = Path(bank_path)
    try:
        with h5py.File(bank_path, "r") as handle:
            bank = np.asarray(handle["embeddings"][...], dtype=np.float64)
            labels = [_text(v) for v in handle["labels"][...]]
            ids = (
                [_text(v) for v in handle["patient_ids"][...]]
                if "patient_ids" in handle
                else [str(i) for i in range(len(bank))]
            )
    except (OSError, KeyError) as error:
        raise AggregatorBundleError(
            bank_path, f"not a reference bank (needs 'embeddings' and 'labels'): {error}"
        ) from error
    query = np.asarray(embedding, dtype=np.float64).ravel()
    if bank.ndim != 2 or bank.shape[1] != query.shape[0]:
        raise AggregatorBundleError(
            bank_path,
            f"bank embeddings have shape {bank.shape}, the patient embedding has "
            f"{query.shape[0]} values",
        )
    norms = np.linalg.norm(bank, axis=1) * max(np.linalg.norm(query), 1e-12)
    similarity = bank @ query / np.maximum(norms, 1e-12)
    order = np.argsort(-similarity)[: max(0, top_k)]
    return [
        {
            "patient_id": ids[i],
            "label": labels[i],
            "cosine_similarity": round(float(similarity[i]), 6),
        }
        for i in order
    ]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def attention_entropy(attention: np.ndarray) -> float:
    """Normalised entropy of the attention (1: uniform over cells, 0: one cell)."""
    weights = np.asarray(attention, dtype=np.float64)
    if weights.size <= 1:
        return 0.0
    weights = weights[weights > 0]
    return float(-(weights * np.log(weights)).sum() / math.log(len(attention)))
