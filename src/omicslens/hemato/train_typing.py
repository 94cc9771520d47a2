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
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from omicslens.core.atomic import write_bytes_atomic, write_text_atomic
from omicslens.core.perturb import perturb_windows, perturbation_named
from omicslens.hemato.errors import DatasetLayoutError
from omicslens.models.architectures import build_architecture

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

#: BCCD's five white-cell types, in the order of the bundle's outputs.
DEFAULT_CLASSES = ("Neutrophil", "Eosinophil", "Lymphocyte", "Monocyte", "Basophil")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


#: Colour changes applied to the held-out crops of every fold (the robustness protocol:
#: none of them is the training augmentation's exact form). Blur sigma is in pixels of the
#: 96 px crops.
CV_PERTURBATIONS = (
    "hed-0.1",
    "hed-0.2",
    "gain-0.1",
    "gamma-0.8",
    "gamma-1.25",
    "jpeg-30",
    "blur-1",
)


@dataclass(frozen=True)
class TypingSettings:
    input_size: int = 64
    widths: tuple[int, ...] = (24, 48, 96, 192)
    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    class_weight_power: float = 0.75
    max_class_weight: float = 8.0
    folds: int = 5
    seed: int = 0
    threads: int | None = 1
    unknown_threshold: float = 0.5
    scale_range: tuple[float, float] = (0.8, 1.25)
    stain_jitter: float = 0.08
    intensity_jitter: float = 0.2
    #: per-channel RGB gain jitter (a camera's white balance): R x (1 + g), B x (1 - g),
    #: g ~ U(-colour_gain, colour_gain); 0 in 1.0.0
    colour_gain: float = 0.0
    box_scale: float = 1.06
    label_smoothing: float = 0.05
    test_views: int = 8


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


# -- augmentation -------------------------------------------------------------------------
def augment(
    batch: torch.Tensor,
    size: int,
    generator: torch.Generator,
    scale_range: tuple[float, float] = (0.8, 1.25),
    stain_jitter: float = 0.08,
    intensity_jitter: float = 0.2,
    colour_gain: float = 0.0,
) -> torch.Tensor:
    """(N, 3, H, W) floats in [0, 1] -> augmented (N, 3, size, size) floats in [0, 1].

    ``stain_jitter`` scales each channel's optical density independently (a hue change:
    kept small, since eosinophil and neutrophil granules differ mostly by hue);
    ``intensity_jitter`` scales all three together (a paler or darker stain).
    """
    n = batch.shape[0]

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=generator)

    # geometry: zoom (scale > 1 shows more context), aspect, rotation, shift, flips
    zoom = torch.exp(uniform(math.log(scale_range[0]), math.log(scale_range[1]), n))
    aspect = torch.exp(uniform(-0.12, 0.12, n))
    angle = uniform(-math.pi, math.pi, n)
    shift = uniform(-0.08, 0.08, n, 2)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    sx, sy = zoom * aspect.sqrt() * flip, zoom / aspect.sqrt()
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sx, -sin * sy
    theta[:, 1, 0], theta[:, 1, 1] = sin * sx, cos * sy
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    # outside the crop: reflect, so no artificial black or white border appears
    out = F.grid_sample(
        batch, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    # stain: optical density per channel scaled and shifted (intensity and hue of the stain)
    density = -torch.log(out.clamp(min=1.0 / 255.0))
    strength = torch.exp(uniform(-intensity_jitter, intensity_jitter, n, 1, 1, 1))
    hue = 1.0 + uniform(-stain_jitter, stain_jitter, n, 3, 1, 1)
    density = density * strength * hue + uniform(-0.02, 0.02, n, 3, 1, 1)
    out = torch.exp(-density.clamp(min=0.0))
    # camera: white balance, brightness, contrast, gamma
    if colour_gain > 0:
        g = uniform(-colour_gain, colour_gain, n, 1, 1, 1)
        out = out * torch.cat([1 + g, torch.ones_like(g), 1 - g], dim=1)
    out = out * uniform(0.85, 1.12, n, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * uniform(0.8, 1.2, n, 1, 1, 1) + mean
    out = out.clamp(0.0, 1.0) ** uniform(0.8, 1.25, n, 1, 1, 1)
    # focus: a light blur on about a third of the cells
    blur = torch.rand(n, generator=generator) < 0.33
    if blur.any():
        kernel = torch.tensor([0.25, 0.5, 0.25])
        kernel2d = (kernel[:, None] * kernel[None, :]).expand(3, 1, 3, 3)
        blurred = F.conv2d(F.pad(out[blur], (1, 1, 1, 1), mode="replicate"), kernel2d, groups=3)
        out[blur] = blurred
    return out.clamp(0.0, 1.0)


def _plain(batch: torch.Tensor, size: int) -> torch.Tensor:
    if batch.shape[-1] == size:
        return batch
    return F.interpolate(batch, size=(size, size), mode="bilinear", antialias=True)


# -- training -----------------------------------------------------------------------------
def train_network(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    settings: TypingSettings,
    mean: Sequence[float],
    std: Sequence[float],
    log: Callable[[str], None] | None = None,
) -> nn.Module:
    """Train ``omicslens-resnet-ish`` on uint8 crops; returns the model in eval mode."""
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    model = build_architecture(
        "omicslens-resnet-ish", num_classes, widths=list(settings.widths), blocks=1
    )
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)
    targets = torch.from_numpy(labels)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = (len(labels) / (num_classes * np.maximum(counts, 1))) ** settings.class_weight_power
    weights = np.minimum(weights, settings.max_class_weight)
    loss_fn = nn.CrossEntropyLoss(
        weight=torch.tensor(weights, dtype=torch.float32), label_smoothing=settings.label_smoothing
    )
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    steps_per_epoch = math.ceil(len(labels) / settings.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=settings.learning_rate,
        total_steps=settings.epochs * steps_per_epoch,
        pct_start=0.2,
    )
    model.train()
    for epoch in range(settings.epochs):
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        for start in range(0, len(order), settings.batch_size):
            index = order[start : start + settings.batch_size]
            if len(index) < 2:  # BatchNorm needs two samples
                continue
            batch = augment(
                pixels[index],
                settings.input_size,
                generator,
                settings.scale_range,
                settings.stain_jitter,
                settings.intensity_jitter,
                settings.colour_gain,
            )
            output = model((batch - mean_t) / std_t)
            loss = loss_fn(output, targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(index)
        if log is not None and (epoch + 1) % 10 == 0:
            log(f"  epoch {epoch + 1}/{settings.epochs} loss {total / len(labels):.4f}")
    return model.eval()


def symmetry_views(batch: torch.Tensor, views: int) -> list[torch.Tensor]:
    """The first ``views`` of the 8 flips/rotations of an NCHW (or NHWC-as-NCHW) batch.

    A cell has no orientation, so averaging over these views (test-time augmentation)
    is exact in expectation; ``views=1`` is the identity.
    """
    out = [batch]
    for k in range(1, 4):
        out.append(torch.rot90(batch, k, dims=(-2, -1)))
    flipped = torch.flip(batch, dims=(-1,))
    out.append(flipped)
    for k in range(1, 4):
        out.append(torch.rot90(flipped, k, dims=(-2, -1)))
    return out[: max(1, min(8, views))]


@torch.inference_mode()
def predict_probabilities(
    model: nn.Module,
    images: np.ndarray,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    views: int = 1,
) -> np.ndarray:
    """Softmax probabilities (N, C) for uint8 crops, averaged over ``views`` symmetries."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(images), 64):
        chunk = torch.from_numpy(images[start : start + 64]).permute(0, 3, 1, 2).float() / 255.0
        chunk = (_plain(chunk, size) - mean_t) / std_t
        probabilities = [torch.softmax(model(view), dim=1) for view in symmetry_views(chunk, views)]
        out.append(torch.stack(probabilities).mean(dim=0))
    return torch.cat(out).numpy().astype(np.float32)


@dataclass
class CrossValidation:
    """Pooled out-of-fold results of a stratified k-fold run."""

    classes: tuple[str, ...]
    folds: int
    confusion: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray
    fold_of: np.ndarray
    unknown_threshold: float
    seconds: float = 0.0
    fold_balanced_accuracy: list[float] = field(default_factory=list)
    #: perturbation name -> out-of-fold probabilities of the held-out crops so perturbed
    perturbed: dict[str, np.ndarray] = field(default_factory=dict)

    def recall_under(self, name: str) -> dict[str, float | None]:
        predicted = self.perturbed[name].argmax(axis=1)
        out: dict[str, float | None] = {}
        for i, cls in enumerate(self.classes):
            members = self.labels == i
            out[cls] = float((predicted[members] == i).mean()) if members.any() else None
        return out

    def robustness(self) -> dict[str, Any]:
        """Per-class recall and balanced accuracy under each held-out colour perturbation,
        and the selection score: the mean balanced accuracy over clean and perturbed."""
        table: dict[str, Any] = {}
        scores = [self.balanced_accuracy]
        for name in self.perturbed:
            recall = self.recall_under(name)
            values = [v for k, v in recall.items() if v is not None and k != "Basophil"]
            balanced = float(np.mean([v for v in recall.values() if v is not None]))
            scores.append(balanced)
            table[name] = {
                "balanced_accuracy": round(balanced, 4),
                "balanced_accuracy_without_basophil": round(float(np.mean(values)), 4),
                "per_class_recall": {
                    k: (None if v is None else round(v, 4)) for k, v in recall.items()
                },
            }
        clean = [v for k, v in self.per_class_recall.items() if v is not None and k != "Basophil"]
        without = [float(np.mean(clean))] + [
            entry["balanced_accuracy_without_basophil"] for entry in table.values()
        ]
        return {
            "perturbations": table,
            "selection_score": round(float(np.mean(scores)), 4),
            "rule": "mean balanced accuracy over the clean and every perturbed held-out fold",
            # Basophil has 3 training crops: one crop moves its recall by 0.33 and the
            # balanced accuracy by 0.07, so the figures without it are given too
            "mean_balanced_accuracy_without_basophil": round(float(np.mean(without)), 4),
            "worst_balanced_accuracy_without_basophil": round(float(np.min(without)), 4),
        }

    @property
    def per_class_recall(self) -> dict[str, float | None]:
        rows = self.confusion.sum(axis=1)
        return {
            name: (float(self.confusion[i, i] / rows[i]) if rows[i] else None)
            for i, name in enumerate(self.classes)
        }

    @property
    def balanced_accuracy(self) -> float:
        values = [v for v in self.per_class_recall.values() if v is not None]
        return float(np.mean(values)) if values else 0.0

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(1, self.confusion.sum()))

    def unknown_effect(self) -> dict[str, float]:
        confident = self.probabilities.max(axis=1) >= self.unknown_threshold
        predicted = self.probabilities.argmax(axis=1)
        kept = confident.sum()
        return {
            "threshold": self.unknown_threshold,
            "fraction_unknown": round(float(1.0 - confident.mean()), 4),
            "accuracy_of_the_rest": round(
                float((predicted[confident] == self.labels[confident]).mean()) if kept else 0.0, 4
            ),
            "accuracy_of_unknowns": round(
                float((predicted[~confident] == self.labels[~confident]).mean())
                if (~confident).any()
                else 0.0,
                4,
            ),
        }

    def report(self) -> dict[str, Any]:
        return {
            "method": f"stratified {self.folds}-fold cross-validation, pooled out-of-fold",
            "balanced_accuracy": round(self.balanced_accuracy, 4),
            "accuracy": round(self.accuracy, 4),
            "balanced_accuracy_per_fold": [round(v, 4) for v in self.fold_balanced_accuracy],
            "per_class_recall": {
                k: (None if v is None else round(v, 4)) for k, v in self.per_class_recall.items()
            },
            "support": {name: int((self.labels == i).sum()) for i, name in enumerate(self.classes)},
            "confusion_matrix": {
                "rows_true_columns_predicted": list(self.classes),
                "counts": self.confusion.astype(int).tolist(),
            },
            "unknown": self.unknown_effect(),
            "seconds": round(self.seconds, 1),
            **({"robustness": self.robustness()} if self.perturbed else {}),
        }


def _confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def _normalisation(images: np.ndarray) -> tuple[list[float], list[float]]:
    pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
    return [round(float(v), 4) for v in pixels.mean(0)], [round(float(v), 4) for v in pixels.std(0)]


def cross_validate(
    data: TypingData, settings: TypingSettings, log: Callable[[str], None] | None = None
) -> CrossValidation:
    """Stratified k-fold CV; mean/std are computed on each training fold only."""
    _threads(settings)
    started = time.perf_counter()
    fold_of = stratified_folds(data.labels, settings.folds, settings.seed)
    probabilities = np.zeros((len(data.labels), len(data.classes)), np.float32)
    perturbed: dict[str, np.ndarray] = {}
    per_fold = []
    for fold in range(settings.folds):
        train = fold_of != fold
        test = ~train
        mean, std = _normalisation(data.images[train])
        if log is not None:
            log(f"fold {fold + 1}/{settings.folds}: train {train.sum()}, test {test.sum()}")
        model = train_network(
            data.images[train], data.labels[train], len(data.classes), settings, mean, std, log
        )
        probabilities[test] = predict_probabilities(
            model, data.images[test], settings.input_size, mean, std, settings.test_views
        )
        for name in CV_PERTURBATIONS:
            held = perturb_windows(
                data.images[test], perturbation_named(name), keys=np.flatnonzero(test)
            )
            perturbed.setdefault(name, np.zeros_like(probabilities))[test] = predict_probabilities(
                model, held, settings.input_size, mean, std, settings.test_views
            )
        fold_confusion = _confusion(
            data.labels[test], probabilities[test].argmax(1), len(data.classes)
        )
        rows = fold_confusion.sum(axis=1)
        recalls = [fold_confusion[i, i] / rows[i] for i in range(len(rows)) if rows[i]]
        per_fold.append(float(np.mean(recalls)))
        if log is not None:
            log(f"  fold balanced accuracy {per_fold[-1]:.3f}")
    confusion = _confusion(data.labels, probabilities.argmax(1), len(data.classes))
    return CrossValidation(
        classes=data.classes,
        folds=settings.folds,
        confusion=confusion,
        probabilities=probabilities,
        labels=data.labels,
        fold_of=fold_of,
        unknown_threshold=settings.unknown_threshold,
        seconds=time.perf_counter() - started,
        fold_balanced_accuracy=per_fold,
        perturbed=perturbed,
    )


def _threads(settings: TypingSettings) -> None:
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)


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
