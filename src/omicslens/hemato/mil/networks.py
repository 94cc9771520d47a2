"""The patient-level aggregator networks: bag of cell embeddings (N, D) -> MilOutput.

They live apart from the bundle machinery (config, loading, scoring) because they are
plain torch modules that read no files: a bundle only needs :data:`AGGREGATORS` and
:func:`build_aggregator` from here.

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from omicslens.models.vit import Mlp  # fc1 / act / fc2: the layout GenBloom uses too


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
