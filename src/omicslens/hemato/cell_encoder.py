"""The cell embeddings a genetic (patient-level) model reads, whatever its encoder.

A genetic bundle names its cell encoder (``encoder`` in its config,
:class:`omicslens.hemato.aggregators.EncoderSpec`): the typing model's own penultimate
layer, another bundle, or a timm network with its weights (DinoBloom-style). The encoder
is built once and then embeds cells from any source, a smear slide or a single-cell crop,
so ``omicslens smear`` and ``omicslens type-cells`` score patients from the same
features.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from omicslens.core.slide import Slide
from omicslens.hemato.aggregators import build_timm_encoder
from omicslens.hemato.detect import WhiteCell
from omicslens.hemato.mil.bundle import AggregatorBundle
from omicslens.hemato.typing import TypingModel, cell_box_windows, window_patches


class CellEncoder:
    """Embeds cells for ``aggregator``; reuses the typing features when it asks for them."""

    def __init__(self, aggregator: AggregatorBundle, typing_model: TypingModel) -> None:
        self.aggregator = aggregator
        self.spec = aggregator.config.encoder
        self.typing_model = typing_model
        self._bundle: TypingModel | None = None
        self._network = None
        if self.spec.kind == "bundle":
            assert self.spec.path is not None
            path = Path(self.spec.path)
            self._bundle = TypingModel(path if path.is_absolute() else aggregator.path / path)
        elif self.spec.kind == "timm":
            self._network = build_timm_encoder(self.spec, aggregator.path)

    @property
    def uses_typing_features(self) -> bool:
        return self.spec.kind == "typing"

    def features(
        self,
        source: Slide | np.ndarray,
        cells: Sequence[WhiteCell],
        mpp: float,
        typing_features: np.ndarray | None = None,
    ) -> np.ndarray:
        """(N, D) embeddings of ``cells`` of ``source`` for the genetic model.

        ``typing_features`` (the typing model's embeddings of the same cells) are returned
        as they are when the genetic model reads them, so they are never computed twice.
        """
        if self.uses_typing_features:
            if typing_features is None:
                return self.typing_model.classify(source, cells, mpp).features
            return typing_features
        if self._bundle is not None:
            return self._bundle.classify(source, cells, mpp).features
        import torch

        assert self._network is not None
        spec = self.spec
        patches = window_patches(source, cell_box_windows(cells, spec.box_scale), spec.input_size)
        mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
        std = torch.tensor(spec.std).view(1, 3, 1, 1)
        out = []
        with torch.inference_mode():
            for start in range(0, len(patches), 32):
                batch = patches[start : start + 32]
                tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255
                out.append(self._network((tensor - mean) / std).float())
        if not out:
            return np.zeros((0, self.aggregator.config.feature_dim), np.float32)
        return torch.cat(out).numpy().astype(np.float32)
