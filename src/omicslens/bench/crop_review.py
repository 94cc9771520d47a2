"""``omicslens bench crop-review``: crop finding and review flags on crops cut from a VOC
collection's fields (the table in docs/hematology.md, "Cells flagged for review").

Cuts CellaVision-like crops from the fields of one split (default ``val``): every
annotated white cell (box x 2), platelets (box of at least 60 px, x 2), a share of the
red cells (box x 2, clusters included), and the white-cell crops again under colour
shifts (``hed-0.2``, ``gain-0.1``, red and blue swapped). Then types every folder with
``type-cells``' job and prints, per folder, how many crops were flagged for review, how
many because no white cell was found, and the classes of the rest.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np
from PIL import Image

from omicslens.app.crops import type_cells_job
from omicslens.app.progress import run_job
from omicslens.core.perturb import perturb_windows, perturbation_named
from omicslens.hemato.voc import VocCollection

KINDS = {"WBC": "white-cells", "Platelets": "platelets", "RBC": "red-cells"}


class GroupRow(TypedDict):
    """What one folder of crops came to (a row of the printed table, or of ``--json``)."""

    crops: int
    review: int
    no_cell_found: int
    classes: dict[str, int]


def cut_around(
    rgb: np.ndarray, box: Sequence[float], margin: float = 2.0, min_side: float = 0.0
) -> tuple[np.ndarray, tuple[int, int]]:
    """The box (at least ``min_side`` px) times ``margin``, centred on it, inside the
    field; and the crop's top-left corner in the field."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(x1 - x0, y1 - y0, min_side) * margin
    height, width = rgb.shape[:2]
    left, top = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    right, bottom = int(min(width, cx + side / 2)), int(min(height, cy + side / 2))
    return rgb[top:bottom, left:right], (left, top)


def cut_crops(root: Path, out: Path, split: str, red_fraction: float, seed: int) -> list[Path]:
    collection = VocCollection(root)
    rng = np.random.default_rng(seed)
    folders = {kind: out / name for kind, name in KINDS.items()}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    ids = collection.ids(split) if collection.has_split(split) else collection.ids()
    for image_id in ids:
        path = collection.image_path(image_id)
        if path is None:
            continue
        rgb = np.asarray(Image.open(path).convert("RGB"))
        for number, box in enumerate(collection.boxes(image_id)):
            if box.name not in KINDS or (box.name == "RBC" and rng.random() > red_fraction):
                continue
            crop, _ = cut_around(rgb, box.box, 2.0, 60.0 if box.name == "Platelets" else 0.0)
            if min(crop.shape[:2]) >= 16:
                Image.fromarray(crop).save(folders[box.name] / f"{image_id}_{number}.png")
    white = folders["WBC"]
    shifted = []
    for name in ("hed-0.2", "gain-0.1", "swap"):
        target = out / f"white-cells-{name}"
        target.mkdir(exist_ok=True)
        for key, path in enumerate(sorted(white.glob("*.png"))):
            rgb = np.asarray(Image.open(path).convert("RGB"))
            if name == "swap":
                moved = np.ascontiguousarray(rgb[..., ::-1])
            else:
                moved = perturb_windows(rgb[None], perturbation_named(name), keys=np.array([key]))[
                    0
                ]
            Image.fromarray(moved).save(target / path.name)
        shifted.append(target)
    return [folders["WBC"], *shifted, folders["RBC"], folders["Platelets"]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omicslens bench crop-review", description=__doc__)
    parser.add_argument("--voc", type=Path, required=True, help="VOC collection (e.g. BCCD)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the cut crops")
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", help="typing bundle (default: the bundled one)")
    parser.add_argument("--red-fraction", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    folders = cut_crops(args.voc, args.out, args.split, args.red_fraction, args.seed)
    report = run_job(type_cells_job(folders, model=args.model))
    rows: dict[str, GroupRow] = {}
    for group in report.groups():
        members = [i for i, cell in enumerate(report.cells) if cell.crop.group == group]
        labels = [report.labels[i] for i in members]
        rows[group] = {
            "crops": len(members),
            "review": sum(report.flags[i] == "review" for i in members),
            "no_cell_found": sum(not report.cells[i].found for i in members),
            "classes": {name: labels.count(name) for name in sorted(set(labels))},
        }
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for group, row in rows.items():
            share = 100.0 * row["review"] / max(1, row["crops"])
            print(
                f"{group:<24} {row['crops']:>4} crops  review {row['review']:>4} "
                f"({share:4.0f} %)  no cell {row['no_cell_found']:>4}  {row['classes']}"
            )
    return 0
