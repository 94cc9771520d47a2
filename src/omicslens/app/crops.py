"""Typing a collection of single-cell crops (``omicslens type-cells`` and the Smear dock).

Each crop is read, its centred white cell found and normalised to the typing model's cell
patch (:mod:`omicslens.hemato.crops`), typed in batches, and scored against the bundle's
training cells. With a genetic model, every group (a folder given on the command line: a
patient) gets patient-level scores from its cells, exactly as ``omicslens smear`` scores
one smear.

A crop that cannot be read is reported in ``failed`` with its error and is not a row of
the table: a failure is never written as data.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.app.progress import Progress
from omicslens.core.atomic import write_text_atomic
from omicslens.hemato.cell_encoder import CellEncoder
from omicslens.hemato.cell_reference import REVIEW_CLASS
from omicslens.hemato.crops import (
    CropCell,
    CropFile,
    CropReadError,
    collect_crops,
    find_crop_cell,
    read_crop,
)
from omicslens.hemato.errors import OutputExistsError
from omicslens.hemato.mil.bundle import PatientScores, load_aggregator
from omicslens.hemato.typing import CellTypes, TypingModel

RESEARCH_ONLY = "Research use only. Not a medical device; not for diagnosis or treatment decisions."
BATCH = 64


@dataclass
class CropFailure:
    path: Path
    error: str


@dataclass
class GroupScores:
    """Patient-level scores of one group of crops (a patient folder)."""

    group: str
    cells: int
    scores: PatientScores


@dataclass
class CropTypingReport:
    """Every typed crop (aligned lists), the crops that failed, and patient scores."""

    cells: list[CropCell]
    types: CellTypes
    failed: list[CropFailure] = field(default_factory=list)
    patients: list[GroupScores] = field(default_factory=list)
    genetic_model: str | None = None
    gallery: list[np.ndarray] = field(default_factory=list)  # one RGB square per cell
    #: a reviewer's class per crop index, overriding the model's (kept and exported)
    corrections: dict[int, str] = field(default_factory=dict)

    @property
    def model_labels(self) -> list[str]:
        """The model's label per crop: ``Review`` also where no white cell was found."""
        return [
            REVIEW_CLASS if not cell.found else label
            for cell, label in zip(self.cells, self.types.labels, strict=True)
        ]

    @property
    def labels(self) -> list[str]:
        """The label per crop: the reviewer's correction if any, else the model's."""
        return [self.corrections.get(i, label) for i, label in enumerate(self.model_labels)]

    @property
    def flags(self) -> list[str]:
        flags = self.types.flags
        return ["review" if not cell.found else flags[i] for i, cell in enumerate(self.cells)]

    def reasons(self) -> list[str]:
        out = []
        flags = self.types.flags
        for index, cell in enumerate(self.cells):
            if not cell.found:
                out.append(cell.reason)
            elif flags[index]:
                out.append("far from every training class")
            else:
                out.append("")
        return out

    def counts(self) -> dict[str, int]:
        """Crops per label (the differential; Review and Unknown apart)."""
        names = [*self.types.class_names, "Unknown", REVIEW_CLASS]
        labels = self.labels
        return {name: labels.count(name) for name in names}

    def groups(self) -> list[str]:
        return list(dict.fromkeys(cell.crop.group for cell in self.cells))


def type_cells_job(
    paths: Sequence[str | Path],
    *,
    model: str | Path | TypingModel | None = None,
    mpp: float | None = None,
    genetic: str | Path | None = None,
    device: str | None = None,
    gallery_px: int | None = None,
) -> Generator[Progress, None, CropTypingReport]:
    """Type every crop under ``paths``; patient scores per group with ``genetic``."""
    crops = collect_crops(paths)
    typing_model = model if isinstance(model, TypingModel) else TypingModel(model, device=device)
    aggregator = load_aggregator(genetic) if genetic else None
    encoder = CellEncoder(aggregator, typing_model) if aggregator is not None else None
    cells: list[CropCell] = []
    probabilities: list[np.ndarray] = []
    features: list[np.ndarray] = []
    genetic_features: list[np.ndarray] = []
    failed: list[CropFailure] = []
    gallery: list[np.ndarray] = []
    yield Progress("crops", 0, len(crops), message="finding and typing the cells")
    for start in range(0, len(crops), BATCH):
        batch = crops[start : start + BATCH]
        found, patches = [], []
        images = []
        for crop in batch:
            try:
                rgb = read_crop(crop.path)
            except CropReadError as error:
                failed.append(CropFailure(crop.path, str(error)))
                continue
            cell = find_crop_cell(rgb, crop, mpp=mpp)
            found.append(cell)
            images.append(rgb)
            patches.append(typing_model.patches(rgb, [cell.cell], _mpp(cell))[0])
            if gallery_px:
                gallery.append(_square(rgb, cell, gallery_px))
        if found:
            probs, feats = typing_model.predict_patches(np.stack(patches))
            probabilities.append(probs)
            features.append(feats)
            if encoder is not None and not encoder.uses_typing_features:
                for rgb, cell in zip(images, found, strict=True):
                    genetic_features.append(encoder.features(rgb, [cell.cell], _mpp(cell)))
            cells.extend(found)
        yield Progress("crops", len(cells), len(crops), failed=len(failed))
    classes = len(typing_model.class_names)
    all_probabilities = (
        np.concatenate(probabilities) if probabilities else np.zeros((0, classes), np.float32)
    )
    all_features = (
        np.concatenate(features)
        if features
        else np.zeros((0, typing_model.feature_dim), np.float32)
    )
    report = CropTypingReport(
        cells=cells,
        types=typing_model.types_of(all_probabilities, all_features),
        failed=failed,
        gallery=gallery,
    )
    if aggregator is not None and cells:
        encoded = np.concatenate(genetic_features) if genetic_features else all_features
        report.genetic_model = aggregator.name
        for group in report.groups():
            members = np.array([cell.crop.group == group for cell in cells])
            report.patients.append(
                GroupScores(group, int(members.sum()), aggregator.score(encoded[members]))
            )
        yield Progress("patients", len(report.patients), len(report.patients))
    return report


def _mpp(cell: CropCell) -> float:
    """The pixel size for the typing patch (only box-mode patches ignore it)."""
    return cell.mpp if math.isfinite(cell.mpp) and cell.mpp > 0 else 0.25


def _square(rgb: np.ndarray, cell: CropCell, size: int) -> np.ndarray:
    from PIL import Image

    x0, y0, x1, y1 = cell.cell.box
    side = max(x1 - x0, y1 - y0) * 1.2 + 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    height, width = rgb.shape[:2]
    left, top = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    right, bottom = min(width, int(cx + side / 2)), min(height, int(cy + side / 2))
    region = rgb[top:bottom, left:right] if right > left and bottom > top else rgb
    return np.asarray(Image.fromarray(np.ascontiguousarray(region)).resize((size, size)))


# -- outputs ------------------------------------------------------------------------------
def crops_csv(report: CropTypingReport) -> str:
    """``file, group, class, confidence, prob_<CLASS>..., flag, reason, ood_score, ...``.

    ``class`` is a reviewer's correction if any (``corrected`` = 1), else ``Review`` for a
    flagged crop (the model's best guess stays in ``model_class``), ``Unknown`` below the
    confidence threshold. Box columns are crop
    pixels; ``mpp_source`` says how the crop's scale was set.
    """
    types = report.types
    header = [
        "file",
        "group",
        "class",
        "confidence",
        *(f"prob_{name}" for name in types.class_names),
        "flag",
        "reason",
        "ood_score",
        "model_class",
        "corrected",
        "box_x0",
        "box_y0",
        "box_x1",
        "box_y1",
        "mpp",
        "mpp_source",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    labels, flags, reasons = report.labels, report.flags, report.reasons()
    for index, cell in enumerate(report.cells):
        probabilities = types.probabilities[index]
        best = types.class_names[int(np.argmax(probabilities))]
        writer.writerow(
            [
                str(cell.crop.path),
                cell.crop.group,
                labels[index],
                f"{float(probabilities.max()):.6f}",
                *(f"{float(p):.6f}" for p in probabilities),
                flags[index],
                reasons[index],
                "" if types.ood is None else f"{float(types.ood[index]):.4f}",
                best,
                int(index in report.corrections),
                *(f"{value:.1f}" for value in cell.cell.box),
                "" if not math.isfinite(cell.mpp) else f"{cell.mpp:.5f}",
                cell.mpp_source,
            ]
        )
    return buffer.getvalue()


def crops_summary(report: CropTypingReport) -> dict[str, Any]:
    types = report.types
    summary: dict[str, Any] = {
        "note": RESEARCH_ONLY,
        "crops": len(report.cells),
        "failed": [{"file": str(f.path), "error": f.error} for f in report.failed],
        "counts": report.counts(),
        "review": sum(1 for flag in report.flags if flag),
        "no_cell_found": sum(1 for cell in report.cells if not cell.found),
        "typing_model": {
            "name": types.model_name,
            "hash": types.model_hash,
            "unknown_threshold": types.unknown_threshold,
            "review_threshold": types.review_threshold,
            "cell_reference": types.ood is not None,
        },
        "groups": {group: _group_counts(report, group) for group in report.groups()},
    }
    if report.patients:
        summary["genetic_model"] = report.genetic_model
        summary["patients"] = {
            entry.group: {
                "cells": entry.cells,
                "predicted": entry.scores.predicted,
                "probabilities": {
                    name: round(float(p), 6)
                    for name, p in zip(
                        entry.scores.class_names, entry.scores.probabilities, strict=True
                    )
                },
            }
            for entry in report.patients
        }
    return summary


def _group_counts(report: CropTypingReport, group: str) -> dict[str, int]:
    labels = [
        label
        for cell, label in zip(report.cells, report.labels, strict=True)
        if cell.crop.group == group
    ]
    return {name: labels.count(name) for name in dict.fromkeys(labels)}


def write_crops_outputs(report: CropTypingReport, out: str | Path, force: bool = False) -> Path:
    """``out`` (the CSV) and, next to it, ``<out>.json`` with the summary; atomic."""
    out = Path(out)
    summary_path = out.with_suffix(out.suffix + ".json")
    existing = [path for path in (out, summary_path) if path.exists()]
    if existing and not force:
        raise OutputExistsError(existing)
    write_text_atomic(out, crops_csv(report))
    write_text_atomic(summary_path, json.dumps(crops_summary(report), indent=2) + "\n")
    return out


__all__ = [
    "CropFailure",
    "CropFile",
    "CropTypingReport",
    "GroupScores",
    "crops_csv",
    "crops_summary",
    "type_cells_job",
    "write_crops_outputs",
]
