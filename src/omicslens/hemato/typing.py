"""White-cell typing: a classification bundle applied to detected cells, plus embeddings.

The bundle is an ordinary WSInfer-compatible classification bundle (``config.json`` +
``model.safetensors``) with two extra keys that say how a cell becomes a patch and what
"unknown" means:

``cell_patch``
    ``{"mode": "cell-box", "box_scale": s, "load_size": L}``: the patch is the cell's box
    scaled by ``s`` around its centre, resized to ``L`` square (aspect not kept, as in the
    BCCD crops the model was trained on), then to the network input by the bundle's own
    ``Resize``. Without the key the patch is ``patch_size_pixels`` at ``spacing_um_px``
    centred on the cell (WSInfer semantics).
``unknown_threshold``
    A cell whose highest class probability is below it is labelled ``unknown_class``
    (default ``"Unknown"``). "Other/unknown" is thus a confidence threshold, not a trained
    class: BCCD has no examples of other cells to train one on.

A bundle with ``cell_reference.json`` (:mod:`omicslens.hemato.cell_reference`) also gives
every cell an out-of-distribution score; a cell far from every training class is
labelled ``Review`` (blasts, smudge cells, debris, a stain never seen), whatever its
class probabilities say. Review takes precedence over Unknown.

Embeddings are the input of the network's last linear layer (its penultimate
activations), captured with a forward hook during the same forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from omicslens.core.samples import bundled_models
from omicslens.core.slide import Slide
from omicslens.hemato.cell_reference import (
    REVIEW_CLASS,
    CellReference,
    CellReferenceError,
    load_cell_reference,
)
from omicslens.hemato.detect import WhiteCell
from omicslens.models.bundle import ModelBundle, load_bundle
from omicslens.models.errors import BundleError
from omicslens.models.predictor import Predictor

__all__ = [
    "DEFAULT_TYPING_BUNDLE",
    "CellTypes",
    "TypingModel",
    "default_typing_bundle",
]

#: Folder name of the shipped typing bundle (assets/models/ in a checkout).
DEFAULT_TYPING_BUNDLE = "bccd-wbc-typing"

#: A colour per class for QuPath/napari (RGB), stable across runs.
CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "Neutrophil": (230, 120, 40),
    "Eosinophil": (220, 40, 60),
    "Basophil": (120, 40, 160),
    "Lymphocyte": (40, 110, 220),
    "Monocyte": (40, 170, 90),
    "Unknown": (128, 128, 128),
    REVIEW_CLASS: (255, 0, 220),
}


def default_typing_bundle() -> Path:
    """The shipped typing bundle's folder; ``FileNotFoundError`` if it is not installed."""
    found = bundled_models().get(DEFAULT_TYPING_BUNDLE)
    if found is None:
        raise FileNotFoundError(
            f"the bundled typing model {DEFAULT_TYPING_BUNDLE!r} is not installed "
            "(expected in assets/models/); pass --model BUNDLE"
        )
    return found


def class_colour(name: str) -> tuple[int, int, int]:
    if name in CLASS_COLOURS:
        return CLASS_COLOURS[name]
    digest = sum(ord(c) * (i + 1) for i, c in enumerate(name))
    return (digest * 67 % 200 + 30, digest * 131 % 200 + 30, digest * 29 % 200 + 30)


@dataclass
class CellTypes:
    """Typing results aligned with the cells: probabilities (N, C), labels, embeddings."""

    class_names: tuple[str, ...]
    probabilities: np.ndarray
    labels: list[str]
    features: np.ndarray
    unknown_threshold: float
    model_name: str
    model_hash: str
    #: (N,) out-of-distribution score per cell (1 = edge of held-out training cells);
    #: None when the bundle has no ``cell_reference.json``
    ood: np.ndarray | None = None
    review_threshold: float | None = None

    @property
    def flags(self) -> list[str]:
        """``"review"`` for cells far from every training class, else ``""``."""
        if self.ood is None or self.review_threshold is None:
            return [""] * len(self.labels)
        return ["review" if d > self.review_threshold else "" for d in self.ood]


class TypingModel:
    """A typing bundle ready to classify cells (one per thread, like :class:`Predictor`)."""

    def __init__(
        self,
        bundle: ModelBundle | str | Path | None = None,
        device: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        if bundle is None:
            bundle = default_typing_bundle()
        self.bundle = bundle if isinstance(bundle, ModelBundle) else load_bundle(bundle)
        config = self.bundle.config
        if config.task != "classification":
            raise BundleError(
                self.bundle.config_path,
                f"a typing model must be a classification bundle, not task {config.task!r}",
            )
        # eager: the embeddings come from a forward hook on the network's last Linear
        # layer, and a frozen CPU rewrite has no layers left to hook (no embeddings, so
        # no review flags and no patient scores)
        self.predictor = Predictor(
            self.bundle, device=device, batch_size=batch_size, acceleration="eager"
        )
        extra: dict[str, Any] = dict(config.extra)
        patch = extra.get("cell_patch") or {}
        self.patch_mode = str(patch.get("mode", "fixed"))
        self.box_scale = float(patch.get("box_scale", 1.0))
        self.load_size = int(patch.get("load_size", round(config.input_size * 1.5)))
        self.test_views = max(1, min(8, int(extra.get("test_views", 1))))
        self.unknown_threshold = float(extra.get("unknown_threshold", 0.0))
        self.unknown_class = str(extra.get("unknown_class", "Unknown"))
        self._features: list[torch.Tensor] = []
        self._hook_target = _last_linear(self.predictor.model)
        if self._hook_target is not None:
            self._hook_target.register_forward_hook(self._capture)
        self.reference: CellReference | None = load_cell_reference(self.bundle.path)
        if self.reference is not None and self.reference.feature_dim != self.feature_dim:
            raise CellReferenceError(
                self.bundle.path / "cell_reference.json",
                f"made for {self.reference.feature_dim}-wide embeddings, but this network "
                f"gives {self.feature_dim}; refit it with `omicslens model add-cell-reference`",
            )

    # -- facts ---------------------------------------------------------------------------
    @property
    def class_names(self) -> tuple[str, ...]:
        return self.bundle.output_names

    @property
    def feature_dim(self) -> int:
        if self._hook_target is not None:
            return int(self._hook_target.in_features)
        return len(self.class_names)

    # -- patches -------------------------------------------------------------------------
    def patch_window(self, cell: WhiteCell, mpp: float) -> tuple[float, float, float, float]:
        """The level-0 rectangle (x0, y0, x1, y1) the model looks at for ``cell``."""
        if self.patch_mode == "cell-box":
            return cell_box_windows([cell], self.box_scale)[0]
        config = self.bundle.config
        half = config.patch_size_pixels * config.spacing_um_px / mpp / 2.0
        return (
            cell.centre_x - half,
            cell.centre_y - half,
            cell.centre_x + half,
            cell.centre_y + half,
        )

    def patches(
        self, source: Slide | np.ndarray, cells: Sequence[WhiteCell], mpp: float
    ) -> np.ndarray:
        """(N, L, L, 3) uint8 patches of ``cells`` from a slide (level 0) or an RGB array."""
        windows = [self.patch_window(cell, mpp) for cell in cells]
        return window_patches(source, windows, self.load_size)

    # -- prediction ----------------------------------------------------------------------
    def predict_patches(self, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, C), embeddings (N, D)) for uint8 square patches.

        Both are averaged over the bundle's ``test_views`` flips/rotations of each patch
        (a cell has no orientation; the model card's scores were measured the same way).
        """
        if not len(patches):
            empty = np.zeros((0, len(self.class_names)), np.float32)
            return empty, np.zeros((0, self.feature_dim), np.float32)
        probabilities = np.zeros((len(patches), len(self.class_names)), np.float64)
        features: np.ndarray | None = None
        views = _views(patches, self.test_views)
        for view in views:
            self._features = []
            probabilities += self.predictor.predict(np.ascontiguousarray(view))
            if self._hook_target is not None and self._features:
                # the predictor pads only the last chunk, so the real rows come first
                captured = torch.cat(self._features)[: len(view)].float().cpu().numpy()
            else:  # TorchScript or no final linear layer: the outputs serve as features
                captured = self.predictor.predict(np.ascontiguousarray(view))
            features = captured if features is None else features + captured
        self._features = []
        assert features is not None
        probabilities /= len(views)
        return probabilities.astype(np.float32), (features / len(views)).astype(np.float32)

    def label(self, probabilities: np.ndarray, ood: np.ndarray | None = None) -> list[str]:
        """Class names; ``Review`` where ``ood`` is above the reference's threshold, else
        ``unknown_class`` where the top probability is below the confidence threshold."""
        names = self.class_names
        threshold = None if self.reference is None else self.reference.threshold
        labels = []
        for index, row in enumerate(probabilities):
            best = int(np.argmax(row))
            confident = float(row[best]) >= self.unknown_threshold
            if ood is not None and threshold is not None and ood[index] > threshold:
                labels.append(REVIEW_CLASS)
            else:
                labels.append(names[best] if confident else self.unknown_class)
        return labels

    def ood_scores(self, features: np.ndarray) -> np.ndarray | None:
        """(N,) out-of-distribution score of embeddings, None without a reference."""
        if self.reference is None:
            return None
        if not len(features):
            return np.zeros(0, np.float32)
        return self.reference.distance(features).astype(np.float32)

    def types_of(self, probabilities: np.ndarray, features: np.ndarray) -> CellTypes:
        """Typing results of already-predicted patches (labels, review scores)."""
        ood = self.ood_scores(features)
        return CellTypes(
            class_names=self.class_names,
            probabilities=probabilities,
            labels=self.label(probabilities, ood),
            features=features,
            unknown_threshold=self.unknown_threshold,
            model_name=self.bundle.name,
            model_hash=self.bundle.bundle_hash,
            ood=ood,
            review_threshold=None if self.reference is None else self.reference.threshold,
        )

    def classify(
        self, source: Slide | np.ndarray, cells: Sequence[WhiteCell], mpp: float
    ) -> CellTypes:
        """Type ``cells`` of a slide or image whose level-0 pixels are ``mpp`` um wide."""
        probabilities, features = self.predict_patches(self.patches(source, cells, mpp))
        return self.types_of(probabilities, features)

    def _capture(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: Any) -> None:
        self._features.append(inputs[0].detach().flatten(1))


def cell_box_windows(
    cells: Sequence[WhiteCell], box_scale: float
) -> list[tuple[float, float, float, float]]:
    """Each cell's box scaled by ``box_scale`` around its centre (level-0 pixels)."""
    windows = []
    for cell in cells:
        half_w = max(cell.width, 1.0) * box_scale / 2.0
        half_h = max(cell.height, 1.0) * box_scale / 2.0
        cx = (cell.box[0] + cell.box[2]) / 2.0
        cy = (cell.box[1] + cell.box[3]) / 2.0
        windows.append((cx - half_w, cy - half_h, cx + half_w, cy + half_h))
    return windows


def window_patches(
    source: Slide | np.ndarray,
    windows: Sequence[tuple[float, float, float, float]],
    size: int,
) -> np.ndarray:
    """(N, size, size, 3) uint8: each level-0 window read and resized to a square."""
    out = np.empty((len(windows), size, size, 3), dtype=np.uint8)
    for index, (x0, y0, x1, y1) in enumerate(windows):
        left, top = math.floor(x0), math.floor(y0)
        width = max(1, math.ceil(x1) - left)
        height = max(1, math.ceil(y1) - top)
        region = _read(source, left, top, width, height)
        image = Image.fromarray(np.ascontiguousarray(region[..., :3]))
        out[index] = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
    return out


def _views(patches: np.ndarray, count: int) -> list[np.ndarray]:
    """The first ``count`` of the 8 rotations/flips of (N, H, W, 3) patches."""
    views = [np.rot90(patches, k, axes=(1, 2)) for k in range(4)]
    flipped = patches[:, :, ::-1]
    views += [np.rot90(flipped, k, axes=(1, 2)) for k in range(4)]
    return views[:count]


def _last_linear(model: nn.Module) -> nn.Linear | None:
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    return last


def _read(source: Slide | np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    if isinstance(source, Slide):
        return source.read_region(x, y, width, height)
    image = np.asarray(source)
    out = np.full((height, width, image.shape[2]), 255, dtype=image.dtype)
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + width), min(h, y + height)
    if x0 < x1 and y0 < y1:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = image[y0:y1, x0:x1]
    return out
