"""Benchmarks on a smear collection in Pascal VOC layout (BCCD or any other).

* **Detection**: every field with an annotation file; predicted cell boxes are matched
  one-to-one to the annotated white-cell boxes at IoU >= 0.5; precision, recall and F1
  over all fields and per split list (``train.txt``, ``val.txt``) when present. The
  resolution of each field is the given ``mpp``, else estimated from its red cells
  (BCCD states none), exactly as ``omicslens smear`` does.
* **Typing**: balanced accuracy and per-class recall of a typing bundle on
  ``crops/<Class>/*`` (classes the bundle does not know are skipped and listed). On
  BCCD with the shipped model this is *training-set* accuracy, which says nothing about
  new smears; its cross-validated scores are in the model card (docs/hematology.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.hemato.detect import DetectionSettings, detect_white_cells
from omicslens.hemato.errors import ResolutionEstimateError
from omicslens.hemato.smear import open_smear
from omicslens.hemato.voc import DetectionScores, VocCollection, match_boxes

__all__ = ["benchmark_detection", "benchmark_typing", "run_benchmark"]

WHITE_CELL_NAMES = ("WBC", "white blood cell", "leukocyte", "white_blood_cell")


def benchmark_detection(
    root: str | Path,
    mpp: float | None = None,
    settings: DetectionSettings | None = None,
    limit: int | None = None,
    iou: float = 0.5,
    names: tuple[str, ...] = WHITE_CELL_NAMES,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Detection precision/recall/F1 on a VOC collection, overall and per split."""
    collection = VocCollection(root)
    ids = collection.ids()
    if limit is not None:
        ids = ids[:limit]
    splits = {
        split: set(collection.ids(split))
        for split in ("train", "val", "test")
        if collection.has_split(split)
    }
    overall = DetectionScores()
    per_split = {split: DetectionScores() for split in splits}
    estimated: list[float] = []
    failures: list[dict[str, Any]] = []
    started = time.perf_counter()
    for image_id in ids:
        path = collection.image_path(image_id)
        assert path is not None
        truth = [box.box for box in collection.boxes(image_id, names)]
        try:
            slide, field_mpp, source, estimate = open_smear(path, mpp)
        except ResolutionEstimateError:
            slide, field_mpp, source, estimate = None, float("nan"), "failed", None
        cells = []
        if slide is not None:
            with slide:
                cells = detect_white_cells(slide, mpp=field_mpp, settings=settings).cells
        if estimate is not None:
            estimated.append(field_mpp)
        predicted = [cell.box for cell in cells]
        matched = len(match_boxes(predicted, truth, iou))
        overall.add(len(predicted), len(truth), matched)
        for split, members in splits.items():
            if image_id in members:
                per_split[split].add(len(predicted), len(truth), matched)
        if matched != len(predicted) or matched != len(truth):
            failures.append(
                {
                    "id": image_id,
                    "predicted": len(predicted),
                    "annotated": len(truth),
                    "matched": matched,
                    "mpp": source,
                }
            )
    report: dict[str, Any] = {
        "collection": str(Path(root)),
        "iou_threshold": iou,
        "all": overall.as_dict(),
        "splits": {split: scores.as_dict() for split, scores in per_split.items()},
        "resolution": "given"
        if mpp is not None
        else ("the file's own, else estimated per field from red cells (7.5 um)"),
        "seconds": round(time.perf_counter() - started, 1),
        "fields_not_perfect": failures,
    }
    if estimated:
        report["estimated_mpp"] = {
            "median": round(float(np.median(estimated)), 5),
            "p5": round(float(np.percentile(estimated, 5)), 5),
            "p95": round(float(np.percentile(estimated, 95)), 5),
        }
    if log is not None:
        log(f"detection: {overall.as_dict()}")
    return report


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


def run_benchmark(
    root: str | Path,
    model: str | Path | None = None,
    mpp: float | None = None,
    limit: int | None = None,
    device: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Detection and typing benchmarks together (what ``omicslens hemato-benchmark`` runs)."""
    report: dict[str, Any] = {"detection": benchmark_detection(root, mpp=mpp, limit=limit, log=log)}
    report["typing"] = benchmark_typing(root, model, device)
    return report
