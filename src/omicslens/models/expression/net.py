"""The network of a bundled expression model: an ensemble of members over two views.

Each member maps the (fine, context) views of the input window to standardised
log-expression of every gene; the network averages the members and undoes the
standardisation, so it outputs ``log1p(normalised counts)`` per gene (the bundle's
``output_transform`` is ``log1p``). Two member kinds:

``cnn``
    two small convolutional trunks (one per view), trained end to end on the spots;
``stain-texture``
    handcrafted features of both views (no training), standardised, then one linear map
    that folds the HEST protocol's PCA + ridge into a single matrix.

Everything is plain torch with a state dict of tensors, saved as safetensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from omicslens.models.expression.stain_texture import FEATURES_PER_VIEW, StainTextureFeatures
from omicslens.models.expression.views import split_views

# ImageNet statistics: the bundle's Normalize step; members undo it where they need RGB.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class Trunk(nn.Module):
    """Four conv blocks and global average pooling: (N, 3, H, W) -> (N, 4 * width)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(3, width),
            _block(width, 2 * width),
            _block(2 * width, 4 * width),
            _block(4 * width, 4 * width),
        )
        self.num_features = 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean((2, 3))


class CNNMember(nn.Module):
    """Two trunks (fine, context) -> dropout -> linear to standardised genes."""

    def __init__(self, num_outputs: int, width: int = 16, dropout: float = 0.3) -> None:
        super().__init__()
        self.fine = Trunk(width)
        self.context = Trunk(width)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.fine.num_features + self.context.num_features, num_outputs)

    def forward(self, fine: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        features = torch.cat([self.fine(fine), self.context(context)], 1)
        return self.head(self.dropout(features))


class StainTextureMember(nn.Module):
    """Handcrafted features of both views -> standardise -> linear (PCA + ridge folded)."""

    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    rgb_mean: torch.Tensor
    rgb_std: torch.Tensor

    def __init__(self, num_outputs: int) -> None:
        super().__init__()
        self.features = StainTextureFeatures()
        n = 2 * FEATURES_PER_VIEW
        self.register_buffer("feature_mean", torch.zeros(n))
        self.register_buffer("feature_std", torch.ones(n))
        self.register_buffer("rgb_mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("rgb_std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Linear(n, num_outputs)

    def raw_features(self, fine: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Unstandardised features; inputs are ImageNet-normalised like every member's."""
        rgb_fine = (fine * self.rgb_std + self.rgb_mean).clamp(0, 1)
        rgb_context = (context * self.rgb_std + self.rgb_mean).clamp(0, 1)
        return torch.cat([self.features(rgb_fine), self.features(rgb_context)], 1)

    def forward(self, fine: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        features = self.raw_features(fine, context)
        return self.head((features - self.feature_mean) / self.feature_std)


MEMBER_KINDS = {"cnn": CNNMember, "stain-texture": StainTextureMember}


class ExpressionNet(nn.Module):
    """Average of ``members`` on (fine, context) views, in log1p expression units."""

    target_mean: torch.Tensor
    target_std: torch.Tensor

    def __init__(
        self,
        num_outputs: int,
        members: Sequence[Mapping[str, Any]] = ({"kind": "cnn"},),
        fine_px: int = 80,
        context_px: int = 80,
        uncertainty_output: bool = False,
        predicting_members: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.fine_px = fine_px
        self.context_px = context_px
        self.uncertainty_output = uncertainty_output
        genes = num_outputs - 1 if uncertainty_output else num_outputs
        built = []
        for spec in members:
            options = {key: value for key, value in spec.items() if key != "kind"}
            built.append(MEMBER_KINDS[spec["kind"]](genes, **options))
        self.members = nn.ModuleList(built)
        chosen = list(range(len(built))) if predicting_members is None else list(predicting_members)
        if not chosen or any(not 0 <= i < len(built) for i in chosen):
            raise ValueError(f"predicting_members {chosen} must index the {len(built)} members")
        self.predicting_members = chosen
        self.register_buffer("target_mean", torch.zeros(genes))
        self.register_buffer("target_std", torch.ones(genes))

    def standardised(self, x: torch.Tensor) -> torch.Tensor:
        """(M, N, genes): each member's standardised prediction (spread = disagreement)."""
        fine, context = split_views(x, self.fine_px, self.context_px)
        return torch.stack([member(fine, context) for member in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Genes in log1p units; with ``uncertainty_output`` one more column: the members'
        disagreement (SD across members, in per-gene SD units, averaged over genes).

        ``predicting_members`` (default: all) are averaged for the prediction; every
        member counts for the disagreement. The bundled model predicts with its CNNs only
        (the stain/texture member follows stain colour, see the robustness report) and
        keeps that member as a witness: it disagrees most where colour or tissue is
        unlike training, which is what made the uncertainty rank errors.
        """
        members = self.standardised(x)
        predicting = members[self.predicting_members]
        genes = predicting.mean(0) * self.target_std + self.target_mean
        if not self.uncertainty_output:
            return genes
        if members.shape[0] > 1:
            spread = members.std(0).mean(1, keepdim=True)
        else:
            spread = torch.zeros_like(genes[:, :1])
        return torch.cat([genes, spread], 1)
