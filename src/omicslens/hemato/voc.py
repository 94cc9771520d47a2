"""Pascal VOC smear collections (BCCD's layout) and box matching for detection scores.

Layout: ``JPEGImages/<id>.jpg`` (or .png/.tif), ``Annotations/<id>.xml`` with ``object``
elements named e.g. ``WBC``, ``RBC``, ``Platelets``; optional ``train.txt``/``val.txt`` (or
``ImageSets/Main/*.txt``) listing ids. Optional ``crops/<Class>/*`` hold single-cell images
by type, for typing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omicslens.hemato.errors import DatasetLayoutError

__all__ = [
    "DetectionScores",
    "VocBox",
    "VocCollection",
    "box_iou",
    "match_boxes",
    "read_voc_boxes",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class VocBox:
    """One annotated object: class name and box in pixels (x0, y0, x1, y1), VOC inclusive."""

    name: str
    box: tuple[float, float, float, float]
    truncated: bool = False
    difficult: bool = False


def read_voc_boxes(path: str | Path, names: Sequence[str] | None = None) -> list[VocBox]:
    """Objects of a VOC XML file (only those whose name is in ``names``, if given)."""
    path = Path(path)
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise DatasetLayoutError(path, f"not a readable Pascal VOC annotation: {error}") from error
    wanted = None if names is None else {name.lower() for name in names}
    boxes = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if wanted is not None and name.lower() not in wanted:
            continue
        bndbox = obj.find("bndbox")
        if bndbox is None:
            continue
        try:
            coords = tuple(float(bndbox.findtext(key) or "nan") for key in _BOX_KEYS)
        except ValueError:
            continue
        if not all(np.isfinite(coords)) or coords[2] <= coords[0] or coords[3] <= coords[1]:
            continue
        boxes.append(
            VocBox(
                name=name,
                box=(coords[0], coords[1], coords[2], coords[3]),
                truncated=(obj.findtext("truncated") or "0").strip() == "1",
                difficult=(obj.findtext("difficult") or "0").strip() == "1",
            )
        )
    return boxes


_BOX_KEYS = ("xmin", "ymin", "xmax", "ymax")


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(
    predicted: Sequence[Sequence[float]],
    truth: Sequence[Sequence[float]],
    threshold: float = 0.5,
) -> list[tuple[int, int, float]]:
    """One-to-one matches (pred index, truth index, IoU) with IoU >= ``threshold``.

    Greedy by descending IoU, which for boxes this sparse equals the optimal assignment
    in practice (each white cell overlaps at most one annotation).
    """
    pairs = [(box_iou(p, t), i, j) for i, p in enumerate(predicted) for j, t in enumerate(truth)]
    pairs = [pair for pair in pairs if pair[0] >= threshold]
    pairs.sort(reverse=True)
    used_p: set[int] = set()
    used_t: set[int] = set()
    matches = []
    for iou, i, j in pairs:
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        matches.append((i, j, iou))
    return matches


@dataclass
class DetectionScores:
    """Counts over a set of fields, and precision/recall/F1 from them."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    fields: int = 0

    def add(self, predicted: int, truth: int, matched: int) -> None:
        self.true_positives += matched
        self.false_positives += predicted - matched
        self.false_negatives += truth - matched
        self.fields += 1

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 0.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "fields": self.fields,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


class VocCollection:
    """A folder in Pascal VOC layout: images, annotations and optional split lists."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.images = self.root / "JPEGImages"
        self.annotations = self.root / "Annotations"
        if not self.images.is_dir() or not self.annotations.is_dir():
            raise DatasetLayoutError(
                self.root, "expected Pascal VOC layout: JPEGImages/ and Annotations/ folders"
            )

    def ids(self, split: str | None = None) -> list[str]:
        """Image ids that have both an image and an annotation, optionally of one split."""
        if split is not None:
            for candidate in (
                self.root / f"{split}.txt",
                self.root / "ImageSets" / "Main" / f"{split}.txt",
            ):
                if candidate.is_file():
                    wanted = candidate.read_text(encoding="utf-8").split()
                    return [i for i in wanted if self.image_path(i) is not None]
            raise DatasetLayoutError(self.root, f"no {split}.txt split list")
        ids = sorted(p.stem for p in self.annotations.glob("*.xml"))
        return [i for i in ids if self.image_path(i) is not None]

    def has_split(self, split: str) -> bool:
        return (self.root / f"{split}.txt").is_file() or (
            self.root / "ImageSets" / "Main" / f"{split}.txt"
        ).is_file()

    def image_path(self, image_id: str) -> Path | None:
        for suffix in IMAGE_SUFFIXES:
            for variant in (suffix, suffix.upper()):
                path = self.images / f"{image_id}{variant}"
                if path.is_file():
                    return path
        return None

    def boxes(self, image_id: str, names: Sequence[str] | None = None) -> list[VocBox]:
        return read_voc_boxes(self.annotations / f"{image_id}.xml", names)

    @property
    def crops(self) -> Path:
        return self.root / "crops"
