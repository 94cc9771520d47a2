"""Train and cross-validate the white-cell typing network on single-cell crops.

Data: a folder ``crops/<Class>/*.jpg`` (BCCD's layout: one folder per cell type, each
image a white cell's annotated box, squared). Every crop is resized to ``input_size``
square, the same way :mod:`omicslens.hemato.typing` cuts a detected cell out of a smear.

Training: a compact residual CNN (``omicslens-resnet-ish``) from scratch with class-weighted
cross-entropy and on-the-fly augmentation for

* **stain and camera**: optical densities scaled and shifted per channel (a different
  stain intensity and hue), brightness, contrast and gamma, a little blur;
* **scale and framing**: random zoom (``scale_range``), aspect change, shift and rotation
  of the crop window, flips (cells have no orientation).

Validation: stratified k-fold cross-validation (every class spread over the folds as
evenly as it allows), pooled out-of-fold predictions give the confusion matrix,
balanced accuracy and per-class recall written into the bundle's config and model card.
The shipped model is then trained on all crops with the same settings.

"Other/unknown" is not a trained class (BCCD has no such label): a cell whose highest
probability is below ``unknown_threshold`` is reported as ``Unknown``. The threshold is
recorded in the bundle and its effect (coverage, accuracy of the rest) is measured in
cross-validation too.

This module trains a bundle end to end (:func:`train_typing_bundle`) and writes it
(:func:`write_typing_bundle`); the pieces live in :mod:`~omicslens.hemato.typing_crops`
(crops and folds), :mod:`~omicslens.hemato.typing_training` (settings, augmentation,
training, predictions) and :mod:`~omicslens.hemato.typing_cv` (cross-validation), and
are re-exported here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from omicslens.core.atomic import write_bytes_atomic, write_text_atomic
from omicslens.hemato.typing_crops import (
    DEFAULT_CLASSES,
    TypingData,
    load_crops,
    stratified_folds,
)
from omicslens.hemato.typing_cv import CV_PERTURBATIONS as CV_PERTURBATIONS
from omicslens.hemato.typing_cv import CrossValidation, cross_validate
from omicslens.hemato.typing_training import (
    TypingSettings,
    _normalisation,
    _threads,
    augment,
    train_network,
)
from omicslens.hemato.typing_training import predict_probabilities as predict_probabilities
from omicslens.hemato.typing_training import symmetry_views as symmetry_views

__all__ = [
    "DEFAULT_CLASSES",
    "CrossValidation",
    "TypingData",
    "TypingSettings",
    "augment",
    "cross_validate",
    "load_crops",
    "stratified_folds",
    "train_network",
    "train_typing_bundle",
    "write_typing_bundle",
]


# -- the bundle ---------------------------------------------------------------------------
def write_typing_bundle(
    model: nn.Module,
    folder: str | Path,
    classes: Sequence[str],
    settings: TypingSettings,
    mean: Sequence[float],
    std: Sequence[float],
    validation: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    name: str = "omicslens-bccd-wbc-typing",
    version: str = "1.0.0",
) -> Path:
    """Write ``config.json`` (WSInfer-compatible classification) and ``model.safetensors``."""
    from safetensors.torch import save

    folder = Path(folder)
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    write_bytes_atomic(folder / "model.safetensors", save(state))
    config: dict[str, Any] = {
        "spec_version": "1.0",
        "name": name,
        "version": version,
        "description": (
            "White-cell type from a single-cell image of a peripheral blood smear (BCCD). "
            "Research use only, not for diagnosis. Input: the cell's box cut out of the smear "
            "and resized to a square (see cell_patch)."
        ),
        "architecture": "omicslens-resnet-ish",
        "architecture_args": {"widths": list(settings.widths), "blocks": 1},
        "num_classes": len(classes),
        "class_names": list(classes),
        "patch_size_pixels": settings.input_size,
        "spacing_um_px": _NOMINAL_SPACING,
        "transform": [
            {"name": "Resize", "arguments": {"size": settings.input_size}},
            {"name": "ToTensor"},
            {"name": "Normalize", "arguments": {"mean": list(mean), "std": list(std)}},
        ],
        "task": "classification",
        "cell_patch": {
            "mode": "cell-box",
            "box_scale": settings.box_scale,
            "load_size": round(settings.input_size * 1.5),
            "note": (
                "The patch is the detected cell's box times box_scale around its centre, "
                "resized to load_size square (aspect not kept, like the BCCD crops), then to "
                "patch_size_pixels by the Resize step. "
                "spacing_um_px is nominal (a 15 um white cell over the patch)."
            ),
        },
        "unknown_threshold": settings.unknown_threshold,
        "unknown_class": "Unknown",
        "test_views": settings.test_views,
        "citation": (
            "Trained on BCCD_Dataset (Shenggan, MIT licence), "
            "https://github.com/Shenggan/BCCD_Dataset"
        ),
    }
    if validation is not None:
        config["validation"] = validation
    if training is not None:
        config["training"] = training
    write_text_atomic(folder / "config.json", json.dumps(config, indent=2) + "\n")
    return folder


#: A white cell of ~15 um over the typing patch: the patch is cell-relative, so this spacing
#: is descriptive only (WSInfer's schema requires one).
_NOMINAL_SPACING = 0.25


def train_typing_bundle(
    crops: str | Path,
    out: str | Path,
    settings: TypingSettings | None = None,
    cross_validation: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Cross-validate, train on everything, write the bundle; returns the report."""
    settings = settings or TypingSettings()
    _threads(settings)
    data = load_crops(crops, size=round(settings.input_size * 1.5))
    report: dict[str, Any] = {"data": {"folder": str(crops), "counts": data.counts()}}
    if cross_validation:
        cv = cross_validate(data, settings, log)
        report["validation"] = cv.report()
        if log is not None:
            log(json.dumps(report["validation"], indent=2))
    mean, std = _normalisation(data.images)
    started = time.perf_counter()
    model = train_network(data.images, data.labels, len(data.classes), settings, mean, std, log)
    settings_dict = asdict(settings)
    report["training"] = {
        "settings": settings_dict,
        "samples": len(data.labels),
        "seconds": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
    }
    write_typing_bundle(
        model,
        out,
        data.classes,
        settings,
        mean,
        std,
        validation=report.get("validation"),
        training={
            "data": report["data"],
            "settings": settings_dict,
            "samples": len(data.labels),
        },
    )
    return report
