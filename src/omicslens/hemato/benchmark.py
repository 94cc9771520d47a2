"""Benchmarks on a smear collection in Pascal VOC layout (BCCD or any other).

* **Detection**: every field with an annotation file; predicted cell boxes are matched
  one-to-one to the annotated white-cell boxes at IoU >= 0.5; precision, recall and F1
  over all fields and per split list (``train.txt``, ``val.txt``) when present. The
  resolution of each field is the given ``mpp``, else estimated from its red cells
  (BCCD states none), exactly as ``omicslens smear`` does.
* **Detection robustness**: the same under an image perturbation
  (:mod:`omicslens.core.perturb`: stain jitter, colour gain, gamma, JPEG, blur). Each
  field is read, perturbed, and the perturbed pixels go through the same path a user's
  file would (resolution estimated on the *perturbed* field, then
  :func:`~omicslens.hemato.detect.detect_white_cells`); boxes stay in the field's pixels.
  Blur sigmas are in pixels at the detector's working spacing (``work_mpp``, 0.25 um/px),
  converted to field pixels with the clean field's resolution.
* **Mosaics**: fields composed side by side into one image (written as a tiled TIFF
  with no resolution, read back like any smear), so one stain model and one resolution
  estimate serve several fields; F1 on the mosaics against F1 on the same fields alone.
* **Typing**: balanced accuracy and per-class recall of a typing bundle on
  ``crops/<Class>/*`` (classes the bundle does not know are skipped and listed). On
  BCCD with the shipped model this is *training-set* accuracy, which says nothing about
  new smears; its cross-validated scores are in the model card (docs/hematology.md).
"""

from __future__ import annotations

import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.errors import MissingResolutionError
from omicslens.core.levels import NativeLevel
from omicslens.core.open import open_slide
from omicslens.core.perturb import (
    DEFAULT_PERTURBATIONS,
    Perturbation,
    perturb_windows,
    perturbation_named,
)
from omicslens.core.pyramid import add_lazy_pyramid
from omicslens.core.resolution import override
from omicslens.core.slide import Slide, SlideParts
from omicslens.hemato.detect import (
    DetectionSettings,
    WhiteCell,
    detect_white_cells,
    estimate_slide_mpp,
)
from omicslens.hemato.errors import ResolutionEstimateError, UnsupportedSmearError
from omicslens.hemato.smear import open_smear
from omicslens.hemato.voc import DetectionScores, VocCollection, match_boxes

__all__ = [
    "DETECTION_PERTURBATIONS",
    "Mosaic",
    "array_slide",
    "benchmark_detection",
    "benchmark_mosaics",
    "benchmark_typing",
    "compose_mosaic",
    "detect_pixels",
    "detection_perturbation",
    "read_field",
    "run_benchmark",
    "run_detection_robustness",
]

WHITE_CELL_NAMES = ("WBC", "white blood cell", "leukocyte", "white_blood_cell")

#: Perturbation kinds that apply to a detector's input pixels (``scale`` is a read of a
#: slide at another window size and ``depth`` thins expression counts: neither applies).
DETECTION_KINDS = ("identity", "hed", "gain", "gamma", "jpeg", "blur")

#: The default perturbations that apply to detection, identity first.
DETECTION_PERTURBATIONS: tuple[Perturbation, ...] = tuple(
    p for p in DEFAULT_PERTURBATIONS if p.kind in DETECTION_KINDS
)


def detection_perturbation(name: str) -> Perturbation:
    """The default perturbation ``name`` if it applies to detection (ValueError otherwise)."""
    return perturbation_named(name, DETECTION_PERTURBATIONS, "detection perturbation")


def benchmark_detection(
    root: str | Path,
    mpp: float | None = None,
    settings: DetectionSettings | None = None,
    limit: int | None = None,
    iou: float = 0.5,
    names: tuple[str, ...] = WHITE_CELL_NAMES,
    log: Callable[[str], None] | None = None,
    perturbation: Perturbation | None = None,
    split: str | None = None,
    ids: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Detection precision/recall/F1 on a VOC collection, overall and per split.

    ``split`` restricts to the ids of that split list (``val`` reads ``val.txt``), ``ids``
    to the given ids; ``limit`` then keeps the first N. With a ``perturbation`` each
    field's pixels are perturbed before the resolution estimate and the detection (see
    the module docstring; the HED jitter is drawn per field from ``seed`` and the id).
    """
    collection = VocCollection(root)
    if perturbation is not None and perturbation.kind not in DETECTION_KINDS:
        raise ValueError(
            f"{perturbation.name}: {perturbation.kind} does not apply to detection "
            f"(use one of {DETECTION_KINDS})"
        )
    if ids is not None:
        chosen = list(ids)
    elif split is not None:
        chosen = collection.ids(split)
    else:
        chosen = collection.ids()
    if limit is not None:
        chosen = chosen[:limit]
    if split is not None:
        splits = {split: set(collection.ids(split))}
    else:
        splits = {
            name: set(collection.ids(name))
            for name in ("train", "val", "test")
            if collection.has_split(name)
        }
    settings = settings or DetectionSettings()
    overall = DetectionScores()
    per_split = {name: DetectionScores() for name in splits}
    estimated: list[float] = []
    failures: list[dict[str, Any]] = []
    blur_sigmas: list[float] = []
    started = time.perf_counter()
    for image_id in chosen:
        path = collection.image_path(image_id)
        assert path is not None
        truth = [box.box for box in collection.boxes(image_id, names)]
        if perturbation is None:
            cells, field_mpp, source, was_estimated = _detect_file(path, mpp, settings)
        else:
            pixels, file_mpp = read_field(path)
            given = mpp if mpp is not None else file_mpp
            applied = perturbation
            if perturbation.kind == "blur" and perturbation.strength > 0:
                applied = _blur_in_field_pixels(perturbation, pixels, given, settings)
                blur_sigmas.append(applied.strength)
            key = zlib.crc32(image_id.encode("utf-8"))
            changed = perturb_windows(pixels[None], applied, keys=np.array([key]), seed=seed)[0]
            cells, field_mpp, source, was_estimated = detect_pixels(changed, given, settings)
        if was_estimated:
            estimated.append(field_mpp)
        predicted = [cell.box for cell in cells]
        matched = len(match_boxes(predicted, truth, iou))
        overall.add(len(predicted), len(truth), matched)
        for name, members in splits.items():
            if image_id in members:
                per_split[name].add(len(predicted), len(truth), matched)
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
        "splits": {name: scores.as_dict() for name, scores in per_split.items()},
        "resolution": "given"
        if mpp is not None
        else ("the file's own, else estimated per field from red cells (7.5 um)"),
        "seconds": round(time.perf_counter() - started, 1),
        "fields_not_perfect": failures,
    }
    if split is not None:
        report["split"] = split
    if perturbation is not None:
        report["perturbation"] = {
            "name": perturbation.name,
            "kind": perturbation.kind,
            "strength": perturbation.strength,
            "description": perturbation.describe(),
            "seed": seed,
        }
        if blur_sigmas:
            report["perturbation"]["description"] = (
                f"Gaussian blur, sigma {perturbation.strength:g} px at the detector's "
                f"{settings.work_mpp:g} um/px ({perturbation.strength * settings.work_mpp:g} um)"
            )
            report["perturbation"]["sigma_field_px_median"] = round(
                float(np.median(blur_sigmas)), 3
            )
    if estimated:
        report["estimated_mpp"] = {
            "median": round(float(np.median(estimated)), 5),
            "p5": round(float(np.percentile(estimated, 5)), 5),
            "p95": round(float(np.percentile(estimated, 95)), 5),
        }
    if log is not None:
        label = f" [{perturbation.name}]" if perturbation is not None else ""
        log(f"detection{label}: {overall.as_dict()}")
    return report


# -- one field: from its file, or from pixels in memory ------------------------------------
def _detect_file(
    path: Path, mpp: float | None, settings: DetectionSettings
) -> tuple[list[WhiteCell], float, str, bool]:
    """What ``omicslens smear`` does: open (resolution given, the file's, or estimated)."""
    try:
        slide, field_mpp, source, estimate = open_smear(path, mpp)
    except ResolutionEstimateError:
        return [], float("nan"), "failed", False
    with slide:
        cells = detect_white_cells(slide, mpp=field_mpp, settings=settings).cells
    return cells, field_mpp, source, estimate is not None


def read_field(path: str | Path) -> tuple[np.ndarray, float | None]:
    """A field's RGB uint8 pixels as a slide reader decodes them, and the file's own um/px
    (None when the file states none)."""
    try:
        slide = open_slide(path)
        file_mpp: float | None = slide.mpp
    except MissingResolutionError:
        slide = open_slide(path, mpp=1.0)  # placeholder: only pixels are read
        file_mpp = None
    with slide:
        if not slide.is_rgb:
            raise UnsupportedSmearError(Path(path), "perturbations need an 8-bit RGB image")
        width, height = slide.dimensions
        pixels = np.ascontiguousarray(slide.read_region(0, 0, width, height)[..., :3])
    return pixels, file_mpp


def array_slide(pixels: np.ndarray, name: str = "<in memory>") -> Slide:
    """An (H, W, 3) uint8 array as a :class:`Slide` with a placeholder 1 um/px (pass the
    real one to the detector), with the same computed pyramid a decoded file gets."""
    level = NativeLevel(np.ascontiguousarray(pixels), "YXS")
    parts = SlideParts(format="array", levels=[level], resolution=None)
    parts.levels = add_lazy_pyramid(parts.levels, decoded_whole=True)
    return Slide(Path(name), parts, override(1.0))


def detect_pixels(
    pixels: np.ndarray, mpp: float | None, settings: DetectionSettings | None = None
) -> tuple[list[WhiteCell], float, str, bool]:
    """Detect on pixels in memory as :func:`open_smear` + :func:`detect_white_cells` would
    on a file holding them: ``mpp`` if given, else estimated from the red cells.

    Returns (cells, um/px used, where it came from, whether it was estimated); a failed
    estimate gives no cells and ``nan``.
    """
    slide = array_slide(pixels)
    source = "given"
    estimated = False
    if mpp is None:
        try:
            estimate = estimate_slide_mpp(slide)
        except ResolutionEstimateError:
            return [], float("nan"), "failed", False
        mpp, source, estimated = estimate.mpp, estimate.source, True
    cells = detect_white_cells(slide, mpp=mpp, settings=settings, mpp_source=source).cells
    return cells, float(mpp), source, estimated


def _blur_in_field_pixels(
    perturbation: Perturbation,
    pixels: np.ndarray,
    mpp: float | None,
    settings: DetectionSettings,
) -> Perturbation:
    """The blur with its sigma converted from pixels at ``work_mpp`` to field pixels, using
    the field's resolution (given, the file's, else estimated on the clean field)."""
    if mpp is None:
        try:
            mpp = estimate_slide_mpp(array_slide(pixels)).mpp
        except ResolutionEstimateError:
            mpp = settings.work_mpp  # nothing to convert with: sigma in field pixels
    sigma = perturbation.strength * max(1.0, settings.work_mpp / mpp)
    return replace(perturbation, strength=float(sigma))


# -- several perturbations, and mosaics --------------------------------------------------
def _summary(report: dict[str, Any], reference_f1: float | None) -> dict[str, Any]:
    """One condition's line of the robustness report, from a detection report."""
    scores = report["all"]
    perturbation = report.get("perturbation", {})
    entry: dict[str, Any] = {
        "name": perturbation.get("name", "identity"),
        "description": perturbation.get("description", "no change"),
        **scores,
        "delta_f1": round(scores["f1"] - reference_f1, 4) if reference_f1 is not None else 0.0,
        "fields_not_perfect": [item["id"] for item in report["fields_not_perfect"]],
        "seconds": report["seconds"],
    }
    if "estimated_mpp" in report:
        entry["estimated_mpp_median"] = report["estimated_mpp"]["median"]
    if "sigma_field_px_median" in perturbation:
        entry["sigma_field_px_median"] = perturbation["sigma_field_px_median"]
    return entry


def run_detection_robustness(
    root: str | Path,
    perturbations: Sequence[Perturbation | str] = (),
    mosaic: int | None = None,
    split: str | None = None,
    mpp: float | None = None,
    settings: DetectionSettings | None = None,
    limit: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Detection scores per perturbation (identity first, always) and, with ``mosaic``
    (fields per side), on mosaics against the same fields alone.

    What ``omicslens hemato-benchmark --perturb NAME ... --mosaic N`` prints.
    """
    chosen = [detection_perturbation(p) if isinstance(p, str) else p for p in perturbations]
    identity = Perturbation("identity", "identity")
    chosen = [identity, *[p for p in chosen if p.kind != "identity"]]
    started = time.perf_counter()
    conditions: list[dict[str, Any]] = []
    reference: float | None = None
    for perturbation in chosen:
        report = benchmark_detection(
            root,
            mpp=mpp,
            settings=settings,
            limit=limit,
            perturbation=perturbation,
            split=split,
            seed=seed,
            log=log,
        )
        entry = _summary(report, reference)
        if reference is None:
            reference = float(report["all"]["f1"])
        conditions.append(entry)
    result: dict[str, Any] = {
        "collection": str(Path(root)),
        "split": split or "all",
        "iou_threshold": 0.5,
        "resolution": "given"
        if mpp is not None
        else "the file's own, else estimated per field (on the perturbed pixels) from red cells",
        "seed": seed,
        "conditions": conditions,
    }
    if mosaic is not None:
        result["mosaic"] = benchmark_mosaics(
            root, size=mosaic, split=split, mpp=mpp, settings=settings, limit=limit, log=log
        )
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


@dataclass
class Mosaic:
    """Fields side by side in one image, and their annotated boxes moved along."""

    pixels: np.ndarray
    ids: list[str]
    #: (x, y) of each field's top-left corner in the mosaic, in the order of ``ids``
    offsets: list[tuple[int, int]]
    boxes: list[tuple[float, float, float, float]]


def compose_mosaic(
    collection: VocCollection,
    ids: Sequence[str],
    columns: int,
    names: tuple[str, ...] = WHITE_CELL_NAMES,
) -> Mosaic:
    """Fields ``ids`` row by row, ``columns`` per row, in cells as large as the largest
    field (smaller fields are padded with white, like glass); boxes offset accordingly."""
    if not ids:
        raise ValueError("a mosaic needs at least one field")
    fields = []
    for image_id in ids:
        path = collection.image_path(image_id)
        if path is None:
            raise ValueError(f"{image_id}: no image in {collection.images}")
        fields.append(read_field(path)[0])
    cell_h = max(field.shape[0] for field in fields)
    cell_w = max(field.shape[1] for field in fields)
    rows = -(-len(fields) // columns)
    pixels = np.full((rows * cell_h, columns * cell_w, 3), 255, dtype=np.uint8)
    offsets: list[tuple[int, int]] = []
    boxes: list[tuple[float, float, float, float]] = []
    for index, (image_id, field) in enumerate(zip(ids, fields, strict=True)):
        x, y = (index % columns) * cell_w, (index // columns) * cell_h
        pixels[y : y + field.shape[0], x : x + field.shape[1]] = field
        offsets.append((x, y))
        for box in collection.boxes(image_id, names):
            x0, y0, x1, y1 = box.box
            boxes.append((x0 + x, y0 + y, x1 + x, y1 + y))
    return Mosaic(pixels=pixels, ids=list(ids), offsets=offsets, boxes=boxes)


def benchmark_mosaics(
    root: str | Path,
    size: int = 2,
    split: str | None = None,
    mpp: float | None = None,
    settings: DetectionSettings | None = None,
    limit: int | None = None,
    iou: float = 0.5,
    names: tuple[str, ...] = WHITE_CELL_NAMES,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Detection on ``size`` x ``size`` mosaics of consecutive fields, against the same
    fields alone.

    Each mosaic is written as a TIFF tiled 256 px with no resolution and opened like any
    smear (:func:`open_smear`: ``mpp`` if given, else one estimate from the red cells of
    the whole mosaic), then :func:`detect_white_cells` runs on it (one stain model for
    the mosaic; tile by tile where it is larger than ``settings.tile_um``). Fields that do
    not fill a last mosaic are left out of both scores.
    """
    import tifffile

    if size < 1:
        raise ValueError(f"mosaic size must be at least 1, got {size}")
    collection = VocCollection(root)
    ids = collection.ids(split) if split is not None else collection.ids()
    if limit is not None:
        ids = ids[:limit]
    per = size * size
    groups = [ids[start : start + per] for start in range(0, len(ids) - per + 1, per)]
    used = [image_id for group in groups for image_id in group]
    settings = settings or DetectionSettings()
    scores = DetectionScores()
    mosaics: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="omicslens-mosaic-") as folder:
        for number, group in enumerate(groups):
            mosaic = compose_mosaic(collection, group, size, names)
            path = Path(folder) / f"mosaic-{number:04d}.tif"
            tifffile.imwrite(path, mosaic.pixels, tile=(256, 256), photometric="rgb")
            cells, field_mpp, source, _ = _detect_file(path, mpp, settings)
            path.unlink()
            predicted = [cell.box for cell in cells]
            matched = len(match_boxes(predicted, mosaic.boxes, iou))
            scores.add(len(predicted), len(mosaic.boxes), matched)
            mosaics.append(
                {
                    "ids": group,
                    "height": int(mosaic.pixels.shape[0]),
                    "width": int(mosaic.pixels.shape[1]),
                    "predicted": len(predicted),
                    "annotated": len(mosaic.boxes),
                    "matched": matched,
                    "mpp": round(field_mpp, 5) if np.isfinite(field_mpp) else None,
                    "mpp_source": source,
                }
            )
    mosaic_seconds = round(time.perf_counter() - started, 1)
    single = benchmark_detection(root, mpp=mpp, settings=settings, iou=iou, names=names, ids=used)
    result = {
        "size": size,
        "mosaics": len(groups),
        "fields": len(used),
        "fields_left_out": len(ids) - len(used),
        "mosaic": scores.as_dict(),
        "single_fields": single["all"],
        "delta_f1": round(scores.f1 - float(single["all"]["f1"]), 4),
        "mosaic_seconds": mosaic_seconds,
        "single_fields_seconds": single["seconds"],
        "per_mosaic": mosaics,
    }
    if log is not None:
        log(f"mosaic {size}x{size}: {scores.as_dict()} (single fields {single['all']})")
    return result


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
    split: str | None = None,
) -> dict[str, Any]:
    """Detection and typing benchmarks together (what ``omicslens hemato-benchmark`` runs).

    ``split`` restricts the detection benchmark to one split list's fields."""
    report: dict[str, Any] = {
        "detection": benchmark_detection(root, mpp=mpp, limit=limit, log=log, split=split)
    }
    report["typing"] = benchmark_typing(root, model, device)
    return report
