"""Shared fixtures for the hematology tests: real BCCD fields and crops in tests/data/bccd."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from omicslens.hemato.voc import VocCollection

ROOT = Path(__file__).resolve().parents[2]
BCCD = ROOT / "tests" / "data" / "bccd"
TYPING_BUNDLE = ROOT / "assets" / "models" / "bccd-wbc-typing"
FIELDS = ("BloodImage_00001", "BloodImage_00028", "BloodImage_00099", "BloodImage_00193")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def bccd() -> VocCollection:
    return VocCollection(BCCD)


def field_pixels(image_id: str) -> np.ndarray:
    with Image.open(BCCD / "JPEGImages" / f"{image_id}.jpg") as image:
        return np.asarray(image.convert("RGB"))


def reference_mpp(collection: VocCollection, image_id: str) -> float:
    """7.5 um over the median (w + h) / 2 of the field's non-truncated annotated red cells."""
    boxes = [b.box for b in collection.boxes(image_id, ["RBC"]) if not b.truncated]
    sides = [((x1 - x0) + (y1 - y0)) / 2.0 for x0, y0, x1, y1 in boxes]
    return 7.5 / float(np.median(sides))
