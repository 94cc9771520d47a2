"""Typing scores of a typing bundle on a collection's single-cell crops.

Split out of :mod:`omicslens.hemato.benchmark` (which re-exports :func:`benchmark_typing`):
it shares nothing with the detection benchmarks but the collection folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["benchmark_typing"]


def benchmark_typing(
    root: str | Path, model: str | Path | None = None, device: str | None = None
) -> dict[str, Any] | None:
    """Typing scores of a bundle on ``root/crops/<Class>/*``; None when there are no crops."""
    from omicslens.hemato.train_typing import load_crops
    from omicslens.hemato.typing import TypingModel

    crops = Path(root) / "crops"
    if not crops.is_dir():
        return None
    typing_model = TypingModel(model, device=device)
    known = [c for c in sorted(p.name for p in crops.iterdir() if p.is_dir())]
    usable = [c for c in known if c in typing_model.class_names]
    skipped = [c for c in known if c not in typing_model.class_names]
    data = load_crops(crops, classes=usable, size=typing_model.load_size)
    probabilities, _ = typing_model.predict_patches(data.images)
    names = typing_model.class_names
    predicted = probabilities.argmax(axis=1)
    truth = np.array([names.index(data.classes[label]) for label in data.labels])
    recall: dict[str, float] = {}
    for name in usable:
        members = truth == names.index(name)
        recall[name] = round(float((predicted[members] == truth[members]).mean()), 4)
    confusion = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    return {
        "model": typing_model.bundle.name,
        "crops": str(crops),
        "samples": len(truth),
        "balanced_accuracy": round(float(np.mean(list(recall.values()))), 4),
        "accuracy": round(float((predicted == truth).mean()), 4),
        "per_class_recall": recall,
        "confusion_matrix": {"classes": list(names), "counts": confusion.tolist()},
        "skipped_classes": skipped,
    }
