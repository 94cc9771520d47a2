"""Finding the centred white cell in single-cell crops cut from real BCCD fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omicslens.bench.crop_review import cut_around
from omicslens.hemato.crops import (
    CropFile,
    CropReadError,
    collect_crops,
    find_crop_cell,
    nucleus_scale_mpp,
    read_crop,
)
from omicslens.hemato.voc import VocCollection, box_iou

from .conftest import BCCD, FIELDS, field_pixels, reference_mpp


def white_cell_crops(bccd: VocCollection):
    for image_id in FIELDS:
        rgb = field_pixels(image_id)
        for box in bccd.boxes(image_id, ["WBC"]):
            crop, offset = cut_around(rgb, box.box)
            yield image_id, crop, offset, box.box


@pytest.mark.parametrize("given_mpp", [False, True])
def test_the_annotated_white_cell_is_found_in_its_crop(bccd: VocCollection, given_mpp) -> None:
    found = 0
    total = 0
    for image_id, crop, (left, top), truth in white_cell_crops(bccd):
        mpp = reference_mpp(bccd, image_id) if given_mpp else None
        cell = find_crop_cell(crop, CropFile(Path(image_id), "x"), mpp=mpp)
        x0, y0, x1, y1 = cell.cell.box
        total += 1
        if cell.found and box_iou((x0 + left, y0 + top, x1 + left, y1 + top), truth) >= 0.5:
            found += 1
        if not given_mpp:
            assert "red cells" in cell.mpp_source or "nucleus" in cell.mpp_source
    assert total == 5
    assert found >= 4  # one-to-one with the annotation on real crops, not a whole-crop box


def test_nucleus_scale_is_near_the_red_cell_scale(bccd: VocCollection) -> None:
    ratios = []
    for image_id, crop, _, _ in white_cell_crops(bccd):
        estimate = nucleus_scale_mpp(crop)
        assert estimate is not None
        ratios.append(estimate / reference_mpp(bccd, image_id))
    assert 0.5 < float(np.median(ratios)) < 2.0


def test_a_crop_without_a_white_cell_is_typed_whole_and_says_so() -> None:
    pink = np.full((120, 120, 3), (230, 190, 200), np.uint8)
    cell = find_crop_cell(pink, CropFile(Path("pink.png"), "x"))
    assert not cell.found
    assert cell.cell.box == (0.0, 0.0, 120.0, 120.0)
    assert cell.reason == "no white cell found"


def test_collect_crops_groups_by_the_folder_given(tmp_path: Path) -> None:
    for sub in ("p1/a", "p1/b", "p2", "p2/.hidden"):
        (tmp_path / sub).mkdir(parents=True)
    source = next((BCCD / "crops" / "Neutrophil").iterdir())
    for target in ("p1/a/x.jpg", "p1/b/y.JPG", "p2/z.jpg", "p2/.hidden/h.jpg", "p2/notes.txt"):
        (tmp_path / target).write_bytes(source.read_bytes())
    crops = collect_crops([tmp_path / "p1", tmp_path / "p2", tmp_path / "p2" / "z.jpg"])
    assert [(c.path.name, c.group) for c in crops] == [
        ("x.jpg", "p1"),
        ("y.JPG", "p1"),
        ("z.jpg", "p2"),
    ]
    with pytest.raises(CropReadError, match="no such file"):
        collect_crops([tmp_path / "missing"])
    with pytest.raises(CropReadError, match=r"notes.txt: not a crop image"):
        collect_crops([tmp_path / "p2" / "notes.txt"])


def test_unreadable_crops_are_typed_errors_naming_the_file(tmp_path: Path) -> None:
    text = tmp_path / "cell.png"
    text.write_text("not an image")
    with pytest.raises(CropReadError, match=r"cell.png: not a readable image"):
        read_crop(text)
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (4, 4)).save(tiny)
    with pytest.raises(CropReadError, match="too small"):
        read_crop(tiny)
    truncated = tmp_path / "cut.jpg"
    whole = next((BCCD / "crops" / "Lymphocyte").iterdir()).read_bytes()
    truncated.write_bytes(whole[:200])
    with pytest.raises(CropReadError, match=r"cut.jpg"):
        read_crop(truncated)
