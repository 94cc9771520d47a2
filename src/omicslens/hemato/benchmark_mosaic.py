"""Mosaics: fields of a smear collection side by side in one image, and detection on them.

Split out of :mod:`omicslens.hemato.benchmark` (which re-exports these names). A mosaic
is written as a tiled TIFF with no resolution and read back like any smear, so one stain
model and one resolution estimate serve several fields; its F1 is compared with that of
the same fields alone. :func:`benchmark_mosaics` detects through
``omicslens.hemato.benchmark._detect_file`` and scores the single fields with
``omicslens.hemato.benchmark.benchmark_detection``, imported when it runs: the detector
calls stay in that module, whose namespace tests patch, and a module-level import would
be circular (it re-exports this one).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.hemato.benchmark_fields import WHITE_CELL_NAMES, read_field
from omicslens.hemato.detect import DetectionSettings
from omicslens.hemato.voc import DetectionScores, VocCollection, match_boxes

__all__ = ["Mosaic", "benchmark_mosaics", "compose_mosaic"]


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

    from omicslens.hemato.benchmark import _detect_file, benchmark_detection

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
