"""The training data of the white-cell typing network: single-cell crops and their folds.

Split out of :mod:`omicslens.hemato.train_typing` (which re-exports these names): reading
a ``crops/<Class>/*.jpg`` folder and dealing its crops into stratified folds needs neither
torch nor the network, and the benchmarks read crops too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from omicslens.hemato.errors import DatasetLayoutError

__all__ = ["DEFAULT_CLASSES", "TypingData", "load_crops", "stratified_folds"]

#: BCCD's five white-cell types, in the order of the bundle's outputs.
DEFAULT_CLASSES = ("Neutrophil", "Eosinophil", "Lymphocyte", "Monocyte", "Basophil")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


@dataclass
class TypingData:
    """Crops resized to ``size`` (N, size, size, 3) uint8, labels (N,), names, class names."""

    images: np.ndarray
    labels: np.ndarray
    names: list[str]
    classes: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        return {name: int((self.labels == i).sum()) for i, name in enumerate(self.classes)}


def load_crops(
    folder: str | Path, classes: Sequence[str] | None = None, size: int = 96
) -> TypingData:
    """Read ``folder/<Class>/*`` crops (``classes`` in output order; default: BCCD's five
    when present, else the sub-folders sorted) and resize each to ``size`` square."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetLayoutError(folder, "no such crops folder (expected crops/<Class>/*.jpg)")
    present = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if classes is None:
        classes = [c for c in DEFAULT_CLASSES if c in present] or present
        classes += [c for c in present if c not in classes]
    images, labels, names = [], [], []
    for index, name in enumerate(classes):
        sub = folder / name
        if not sub.is_dir():
            raise DatasetLayoutError(folder, f"no folder for class {name!r}")
        for path in sorted(sub.iterdir()):
            if path.suffix.lower() not in _IMAGE_SUFFIXES:
                continue
            with Image.open(path) as image:
                rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            images.append(np.asarray(rgb))
            labels.append(index)
            names.append(f"{name}/{path.name}")
    if not images:
        raise DatasetLayoutError(folder, "no crop images found")
    return TypingData(np.stack(images), np.asarray(labels, np.int64), names, tuple(classes))


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold index per sample: each class shuffled and dealt round-robin over the folds,
    continuing where the previous class stopped so small classes do not pile up in fold 0."""
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=np.int64)
    start = 0
    for value in np.unique(labels):
        members = np.nonzero(labels == value)[0]
        rng.shuffle(members)
        assignment[members] = (start + np.arange(len(members))) % folds
        start = (start + len(members)) % folds
    return assignment
