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

This module runs the detection benchmarks (:func:`benchmark_detection`,
:func:`run_detection_robustness`) and both benchmarks together (:func:`run_benchmark`).
The code that calls the detector and the resolution estimate stays here and looks
``detect_white_cells`` and ``estimate_slide_mpp`` up in this module's namespace (tests
replace them there). The rest lives in :mod:`~omicslens.hemato.benchmark_fields`
(reading fields, in-memory slides), :mod:`~omicslens.hemato.benchmark_mosaic` (mosaics),
:mod:`~omicslens.hemato.benchmark_perturbations` (the perturbations that apply to
detection) and :mod:`~omicslens.hemato.typing_benchmark` (typing scores), re-exported here.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.perturb import Perturbation, perturb_windows
from omicslens.hemato.benchmark_fields import WHITE_CELL_NAMES, array_slide, read_field
from omicslens.hemato.benchmark_mosaic import Mosaic, benchmark_mosaics, compose_mosaic
from omicslens.hemato.benchmark_perturbations import (
    DETECTION_KINDS,
    DETECTION_PERTURBATIONS,
    _summary,
    detection_perturbation,
)
from omicslens.hemato.detect import (
    DetectionSettings,
    WhiteCell,
    detect_white_cells,
    estimate_slide_mpp,
)
from omicslens.hemato.errors import ResolutionEstimateError
from omicslens.hemato.smear import open_smear
from omicslens.hemato.typing_benchmark import benchmark_typing
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


# -- several perturbations ---------------------------------------------------------------
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
