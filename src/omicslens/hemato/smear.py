"""The smear pipeline: detect white cells, type them, embed them, score the patient, write.

:func:`analyse_smear` runs everything on one image (any format the slide reader opens)
and returns a :class:`SmearAnalysis`; :func:`write_smear_outputs` writes it, every file
atomically, refusing to overwrite unless ``force``:

``cells.csv``
    One row per cell: ``id``, ``centre_x``, ``centre_y``, ``box_x0``, ``box_y0``,
    ``box_x1``, ``box_y1`` (level-0 pixels), ``area_um2``, ``nucleus_area_um2``,
    ``class`` (a reviewer's correction if any, else the model's; ``Unknown`` below the
    confidence threshold, ``Review`` far from every training class), ``model_class``,
    ``corrected`` (0/1), ``confidence``, ``prob_<CLASS>`` per class, ``flag``
    (``review`` or empty), ``ood_score`` (empty without a cell reference), and
    ``attention`` when a genetic model ran.
``cells.geojson``
    A QuPath-style FeatureCollection: one Feature per cell with a UUID ``id``,
    ``geometry`` = the cell outline polygon and ``nucleusGeometry`` = the nucleus polygon
    (level-0 pixels), ``properties.objectType = "cell"``, ``properties.classification``
    ``{name, color}`` and ``properties.measurements``. Import it in QuPath with
    File > Import objects.
``features.h5``
    ``features`` (N, D) float32: each cell's embedding (the typing network's penultimate
    layer), ``cell_ids`` (N,) aligned with ``cells.csv``; attributes name the model.
    With a genetic model whose cell encoder is not the typing model, its embeddings are
    in ``genetic_features`` too.
``smear.json``
    Resolution used and where it came from (``mpp_source``), models, counts per class,
    detection settings.
``patient.json`` (with a genetic model only)
    Patient-level probabilities, the attention per cell, and the most similar reference
    patients when the bundle has a reference bank. Research use only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.atomic import write_bytes_atomic, write_text_atomic
from omicslens.core.errors import MissingResolutionError
from omicslens.core.open import open_slide
from omicslens.core.run_marker import begin_run, clean_stale_temporaries, end_run, unfinished_run
from omicslens.core.slide import Slide
from omicslens.hemato.cell_encoder import CellEncoder
from omicslens.hemato.cell_reference import REVIEW_CLASS
from omicslens.hemato.detect import (
    DetectionResult,
    DetectionSettings,
    MppEstimate,
    WhiteCell,
    detect_white_cells,
    estimate_slide_mpp,
)
from omicslens.hemato.errors import OutputExistsError, UnsupportedSmearError
from omicslens.hemato.mil.bundle import (
    AggregatorBundle,
    PatientScores,
    attention_entropy,
    load_aggregator,
)
from omicslens.hemato.mil.reference_bank import retrieve_similar
from omicslens.hemato.typing import (
    CellTypes,
    TypingModel,
    class_colour,
)

__all__ = [
    "OUTPUT_FILES",
    "SmearAnalysis",
    "analyse_smear",
    "cells_geojson",
    "open_smear",
    "output_paths",
    "write_smear_outputs",
]

OUTPUT_FILES = ("cells.csv", "cells.geojson", "features.h5", "smear.json")
PATIENT_FILE = "patient.json"
RESEARCH_ONLY = "Research use only. Not a medical device; not for diagnosis or treatment decisions."
_UUID_NAMESPACE = uuid.UUID("6f1b2c1e-5a3d-4f7e-9c2b-0d6a1e8b7c44")


@dataclass
class SmearAnalysis:
    """Everything :func:`analyse_smear` found in one smear image."""

    path: Path
    detection: DetectionResult
    types: CellTypes
    patient: PatientScores | None = None
    genetic_model: str | None = None
    genetic_features: np.ndarray | None = None
    similar_patients: list[dict[str, Any]] = field(default_factory=list)
    #: A reviewer's class per cell id, overriding the model's (kept and exported).
    corrections: dict[int, str] = field(default_factory=dict)

    def label(self, index: int) -> str:
        """The class of cell ``index``: the reviewer's correction if any, else the model's."""
        return self.corrections.get(self.cells[index].id, self.types.labels[index])

    def labels(self) -> list[str]:
        return [self.label(index) for index in range(len(self.cells))]

    @property
    def cells(self) -> list[WhiteCell]:
        return self.detection.cells

    @property
    def mpp(self) -> float:
        return self.detection.mpp

    @property
    def mpp_source(self) -> str:
        return self.detection.mpp_source

    def counts(self) -> dict[str, int]:
        """Cells per class, corrections applied (the differential count); cells flagged
        for review and low-confidence cells are counted apart, never in a class."""
        names = [*self.types.class_names, "Unknown", REVIEW_CLASS]
        labels = self.labels()
        return {name: labels.count(name) for name in names}


def open_smear(
    path: str | Path, mpp: float | None = None
) -> tuple[Slide, float, str, MppEstimate | None]:
    """Open a smear image: (slide, um/px to use, where it came from, the estimate if any).

    The file's own resolution is used when it states one; ``mpp`` overrides it. When the
    file states none and no ``mpp`` is given, the resolution is estimated from the median
    red-cell diameter and the source says so. (The slide is then opened with a
    placeholder of 1 um/px only to read pixels; nothing measures with that value.)
    """
    if mpp is not None:
        slide = open_slide(path, mpp=mpp)
        return slide, float(mpp), "given (--mpp)", None
    try:
        slide = open_slide(path)
        return slide, slide.mpp, slide.resolution.source, None
    except MissingResolutionError:
        pass
    slide = open_slide(path, mpp=1.0)
    if not slide.is_rgb:
        slide.close()
        raise UnsupportedSmearError(
            path, "the resolution can be estimated from red cells only on 8-bit RGB images"
        )
    try:
        estimate = estimate_slide_mpp(slide)
    except Exception:
        slide.close()
        raise
    return slide, estimate.mpp, estimate.source, estimate


def output_paths(out_dir: str | Path, genetic: bool) -> list[Path]:
    names = [*OUTPUT_FILES, PATIENT_FILE] if genetic else list(OUTPUT_FILES)
    return [Path(out_dir) / name for name in names]


def check_outputs_free(out_dir: str | Path, genetic: bool, force: bool) -> None:
    """Raise :class:`OutputExistsError` if any output is already there (unless ``force``).

    Outputs of an unfinished run of ours (killed while writing) are not in the way: the
    rerun replaces them (see :mod:`omicslens.core.run_marker`)."""
    if force or unfinished_run(out_dir):
        return
    existing = [path for path in output_paths(out_dir, genetic) if path.exists()]
    if existing:
        raise OutputExistsError(existing)


def analyse_smear(
    path: str | Path,
    mpp: float | None = None,
    model: str | Path | TypingModel | None = None,
    genetic: str | Path | AggregatorBundle | None = None,
    device: str | None = None,
    settings: DetectionSettings | None = None,
    top_k_similar: int = 5,
) -> SmearAnalysis:
    """Detect, type and embed the white cells of one smear; score the patient if asked."""
    path = Path(path)
    typing_model = model if isinstance(model, TypingModel) else TypingModel(model, device=device)
    aggregator = (
        genetic
        if isinstance(genetic, AggregatorBundle) or genetic is None
        else load_aggregator(genetic)
    )
    slide, used_mpp, source, estimate = open_smear(path, mpp)
    with slide:
        if not slide.is_rgb:
            raise UnsupportedSmearError(
                path,
                f"smear analysis needs an 8-bit RGB brightfield image, this one has "
                f"{slide.channels} channel(s) of {slide.dtype}",
            )
        detection = detect_white_cells(slide, mpp=used_mpp, settings=settings, mpp_source=source)
        detection.mpp_estimate = estimate
        types = typing_model.classify(slide, detection.cells, used_mpp)
        analysis = SmearAnalysis(path=path, detection=detection, types=types)
        if aggregator is not None:
            encoder = CellEncoder(aggregator, typing_model)
            features = encoder.features(slide, detection.cells, used_mpp, types.features)
            if features is not types.features:
                analysis.genetic_features = features
            analysis.patient = aggregator.score(features)
            analysis.genetic_model = aggregator.name
            bank = aggregator.reference_bank_path
            if bank is not None:
                analysis.similar_patients = retrieve_similar(
                    analysis.patient.embedding, bank, top_k_similar
                )
    return analysis


# -- writing ------------------------------------------------------------------------------
def write_smear_outputs(
    analysis: SmearAnalysis, out_dir: str | Path, force: bool = False
) -> list[Path]:
    """Write all outputs (atomically); refuses to overwrite unless ``force``."""
    out_dir = Path(out_dir)
    genetic = analysis.patient is not None
    check_outputs_free(out_dir, genetic, force)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out_dir, [path.name for path in output_paths(out_dir, True)])
    begin_run(out_dir, {"smear": str(analysis.path)})
    written = [
        write_text_atomic(out_dir / "cells.csv", cells_csv(analysis)),
        write_text_atomic(
            out_dir / "cells.geojson",
            json.dumps(cells_geojson(analysis), separators=(",", ":")) + "\n",
        ),
        write_bytes_atomic(out_dir / "features.h5", features_h5(analysis)),
        write_text_atomic(out_dir / "smear.json", json.dumps(summary(analysis), indent=2) + "\n"),
    ]
    if genetic:
        written.append(
            write_text_atomic(
                out_dir / PATIENT_FILE, json.dumps(patient_report(analysis), indent=2) + "\n"
            )
        )
    end_run(out_dir)
    return written


def _probability_columns(class_names: Sequence[str]) -> list[str]:
    return [f"prob_{name}" for name in class_names]


def cells_csv(analysis: SmearAnalysis) -> str:
    types = analysis.types
    header = [
        "id",
        "centre_x",
        "centre_y",
        "box_x0",
        "box_y0",
        "box_x1",
        "box_y1",
        "area_um2",
        "nucleus_area_um2",
        "class",
        "model_class",
        "corrected",
        "confidence",
        *_probability_columns(types.class_names),
        "flag",
        "ood_score",
    ]
    flags = types.flags
    attention = analysis.patient.attention if analysis.patient is not None else None
    if attention is not None:
        header.append("attention")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for index, cell in enumerate(analysis.cells):
        probabilities = types.probabilities[index]
        row: list[Any] = [
            cell.id,
            f"{cell.centre_x:.2f}",
            f"{cell.centre_y:.2f}",
            *(f"{value:.2f}" for value in cell.box),
            f"{cell.cell_area_um2:.3f}",
            f"{cell.nucleus_area_um2:.3f}",
            analysis.label(index),
            types.labels[index],
            int(cell.id in analysis.corrections),
            f"{float(probabilities.max()):.6f}",
            *(f"{float(p):.6f}" for p in probabilities),
            flags[index],
            "" if types.ood is None else f"{float(types.ood[index]):.4f}",
        ]
        if attention is not None:
            row.append(f"{float(attention[index]):.6g}")
        writer.writerow(row)
    return buffer.getvalue()


def _ring(points: np.ndarray) -> list[list[float]]:
    ring = [[round(float(x), 2), round(float(y), 2)] for x, y in points]
    if ring and ring[0] != ring[-1]:
        ring.append(list(ring[0]))
    return ring


def cell_uuid(analysis: SmearAnalysis, cell: WhiteCell) -> str:
    """A UUID per cell, stable for the same image and cell (QuPath needs unique ids)."""
    key = f"{analysis.path.name}:{cell.id}:{cell.centre_x:.1f}:{cell.centre_y:.1f}"
    return str(uuid.uuid5(_UUID_NAMESPACE, key))


def cells_geojson(analysis: SmearAnalysis) -> dict[str, Any]:
    types = analysis.types
    attention = analysis.patient.attention if analysis.patient is not None else None
    features = []
    for index, cell in enumerate(analysis.cells):
        label = analysis.label(index)
        measurements: dict[str, float] = {
            "Cell id": float(cell.id),
            "Cell: Area µm^2": round(cell.cell_area_um2, 4),
            "Nucleus: Area µm^2": round(cell.nucleus_area_um2, 4),
            "Nucleus: Lobes": float(cell.lobes),
            "Nucleus: Optical density (red - blue) mean": round(cell.nucleus_od, 5),
            "Corrected by reviewer": float(cell.id in analysis.corrections),
        }
        for name, value in zip(types.class_names, types.probabilities[index], strict=True):
            measurements[f"Probability: {name}"] = round(float(value), 6)
        if attention is not None:
            measurements["Attention"] = float(attention[index])
        if types.ood is not None:  # QuPath measurements are numbers: 1 = flagged for review
            measurements["Out-of-distribution score"] = round(float(types.ood[index]), 4)
        features.append(
            {
                "type": "Feature",
                "id": cell_uuid(analysis, cell),
                "geometry": {"type": "Polygon", "coordinates": [_ring(cell.outline)]},
                "nucleusGeometry": {"type": "Polygon", "coordinates": [_ring(cell.nucleus)]},
                "properties": {
                    "objectType": "cell",
                    "name": f"cell {cell.id}",
                    "classification": {"name": label, "color": list(class_colour(label))},
                    "isLocked": False,
                    "measurements": measurements,
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def features_h5(analysis: SmearAnalysis) -> bytes:
    import h5py

    types = analysis.types
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        data = handle.create_dataset("features", data=np.asarray(types.features, np.float32))
        data.attrs["description"] = "penultimate-layer embeddings of the typing network"
        data.attrs["model"] = types.model_name
        data.attrs["model_hash"] = types.model_hash
        handle.create_dataset(
            "cell_ids", data=np.asarray([cell.id for cell in analysis.cells], dtype=np.int64)
        )
        handle.attrs["image"] = str(analysis.path)
        handle.attrs["mpp"] = analysis.mpp
        handle.attrs["mpp_source"] = analysis.mpp_source
        handle.attrs["class_names"] = json.dumps(list(types.class_names))
        if analysis.genetic_features is not None:
            genetic = handle.create_dataset(
                "genetic_features", data=np.asarray(analysis.genetic_features, np.float32)
            )
            genetic.attrs["description"] = "cell embeddings read by the genetic model"
            genetic.attrs["model"] = analysis.genetic_model or ""
    return buffer.getvalue()


def summary(analysis: SmearAnalysis) -> dict[str, Any]:
    detection = analysis.detection
    estimate = detection.mpp_estimate
    return {
        "image": str(analysis.path),
        "width": detection.image_size[0],
        "height": detection.image_size[1],
        "mpp": detection.mpp,
        "mpp_source": detection.mpp_source,
        "mpp_estimate": None
        if estimate is None
        else {
            "median_red_cell_diameter_px": round(estimate.median_diameter_px, 3),
            "red_cell_diameter_um": estimate.red_cell_diameter_um,
            "red_cells_measured_about": estimate.samples,
        },
        "white_cells": len(analysis.cells),
        "counts": analysis.counts(),
        "typing_model": {
            "name": analysis.types.model_name,
            "hash": analysis.types.model_hash,
            "unknown_threshold": analysis.types.unknown_threshold,
            "review_threshold": analysis.types.review_threshold,
            "cell_reference": analysis.types.ood is not None,
        },
        "genetic_model": analysis.genetic_model,
        "detection": {"tiles": detection.tiles, "settings": asdict(detection.settings)},
        "note": RESEARCH_ONLY,
    }


def patient_report(analysis: SmearAnalysis) -> dict[str, Any]:
    patient = analysis.patient
    if patient is None:
        raise ValueError("no patient-level scores in this analysis")
    ids = [cell.id for cell in analysis.cells]
    order = np.argsort(-patient.attention)
    return {
        "note": RESEARCH_ONLY,
        "image": str(analysis.path),
        "model": analysis.genetic_model,
        "cells": len(ids),
        "mpp": analysis.mpp,
        "mpp_source": analysis.mpp_source,
        "class_names": list(patient.class_names),
        "probabilities": {
            name: round(float(p), 6)
            for name, p in zip(patient.class_names, patient.probabilities, strict=True)
        },
        "predicted": patient.predicted,
        "attention": {
            "cell_ids": ids,
            "weights": [float(w) for w in patient.attention],
            "normalised_entropy": round(attention_entropy(patient.attention), 4),
            "top_cells": [
                {"cell_id": ids[i], "weight": float(patient.attention[i])}
                for i in order[: min(10, len(ids))]
            ],
        },
        "patient_embedding_dim": int(patient.embedding.shape[0]),
        "similar_patients": analysis.similar_patients,
    }


def describe(analysis: SmearAnalysis) -> str:
    """A short human-readable summary (what the CLI prints)."""
    lines = [
        f"image       {analysis.path}",
        f"resolution  {analysis.mpp:.5g} um/px ({analysis.mpp_source})",
        f"white cells {len(analysis.cells)}",
    ]
    total = max(1, len(analysis.cells))
    for name, count in analysis.counts().items():
        if count:
            lines.append(f"  {name:<12} {count:>5}  {100.0 * count / total:5.1f} %")
    if analysis.patient is not None:
        lines.append(f"genetic     {analysis.genetic_model} (research use only)")
        for name, p in zip(
            analysis.patient.class_names, analysis.patient.probabilities, strict=True
        ):
            lines.append(f"  {name:<20} {p:.3f}")
    if not math.isfinite(analysis.mpp):
        lines.append("warning: resolution is not finite")
    return "\n".join(lines)
