"""White-cell detection, segmentation, tiling and the red-cell resolution estimate on real
BCCD fields (tests/data/bccd)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from omicslens.core import open_slide
from omicslens.hemato.detect import (
    DetectionSettings,
    detect_in_field,
    detect_white_cells,
    estimate_mpp_from_red_cells,
    estimated_mpp_source,
)
from omicslens.hemato.errors import ResolutionEstimateError
from omicslens.hemato.imaging import boundary_polygon, otsu_threshold, polygon_area
from omicslens.hemato.voc import VocCollection, box_iou, match_boxes
from tests.hemato.conftest import BCCD, FIELDS, field_pixels, reference_mpp


@pytest.mark.parametrize("image_id", FIELDS)
def test_red_cell_estimate_within_15_percent(bccd: VocCollection, image_id: str) -> None:
    estimate = estimate_mpp_from_red_cells(field_pixels(image_id))
    reference = reference_mpp(bccd, image_id)
    assert abs(estimate.mpp / reference - 1.0) < 0.15, (estimate.mpp, reference)
    assert estimate.source == "estimated from median red-cell diameter (7.5 um)"
    assert estimate.samples >= 3


@pytest.mark.parametrize("image_id", FIELDS)
def test_detection_finds_the_annotated_white_cells(bccd: VocCollection, image_id: str) -> None:
    pixels = field_pixels(image_id)
    mpp = estimate_mpp_from_red_cells(pixels).mpp
    cells = detect_in_field(pixels, mpp)
    truth = [box.box for box in bccd.boxes(image_id, ["WBC"])]
    matches = match_boxes([cell.box for cell in cells], truth, 0.5)
    assert len(matches) == len(truth), [round(box_iou(c.box, t), 2) for c in cells for t in truth]
    assert len(cells) == len(truth)  # and nothing else (platelets, red cells)


def test_cells_are_measured_in_physical_units(bccd: VocCollection) -> None:
    pixels = field_pixels("BloodImage_00099")
    mpp = reference_mpp(bccd, "BloodImage_00099")
    (cell,) = detect_in_field(pixels, mpp)
    # a lymphocyte: nucleus ~ 6-9 um across, cell ~ 7-12 um
    assert 20 < cell.nucleus_area_um2 < 80
    assert cell.nucleus_area_um2 < cell.cell_area_um2 < 150
    x0, y0, x1, y1 = cell.box
    assert x0 <= cell.centre_x <= x1 and y0 <= cell.centre_y <= y1
    # outline and nucleus are polygons in image pixels, the nucleus inside the cell box
    assert cell.outline.shape[1] == 2 and len(cell.outline) >= 8
    nx0, ny0 = cell.nucleus.min(axis=0)
    nx1, ny1 = cell.nucleus.max(axis=0)
    assert x0 - 2 <= nx0 and nx1 <= x1 + 2 and y0 - 2 <= ny0 and ny1 <= y1 + 2
    assert polygon_area(cell.nucleus) * mpp * mpp == pytest.approx(cell.nucleus_area_um2, rel=0.3)


def test_a_field_without_white_cells_gives_none(bccd: VocCollection) -> None:
    pixels = field_pixels("BloodImage_00099")
    (truth,) = [b.box for b in bccd.boxes("BloodImage_00099", ["WBC"])]
    # the real field with the white cell's side cut away: red cells and glass only
    x0, _, x1, _ = (int(v) for v in truth)
    part = pixels[:, : max(0, x0 - 20)] if x0 > 320 else pixels[:, x1 + 20 :]
    assert part.shape[1] > 200
    assert detect_in_field(part, reference_mpp(bccd, "BloodImage_00099")) == []


def test_detection_is_stable_under_a_colour_cast(bccd: VocCollection) -> None:
    """A different camera white balance (a blue-green cast) finds the same cells."""
    pixels = field_pixels("BloodImage_00028")
    cast = np.clip(pixels.astype(np.float32) * np.array([0.85, 1.0, 1.1]), 0, 255)
    mpp = reference_mpp(bccd, "BloodImage_00028")
    truth = [b.box for b in bccd.boxes("BloodImage_00028", ["WBC"])]
    cells = detect_in_field(cast.astype(np.uint8), mpp)
    assert len(match_boxes([c.box for c in cells], truth)) == len(truth) == len(cells)


def _mosaic(tmp_path: Path) -> tuple[Path, list[tuple[float, float]]]:
    """A 2 x 2 mosaic of four real fields as a tiled TIFF at 0.0735 um/px."""
    tiles = [field_pixels(image_id) for image_id in FIELDS]
    top = np.concatenate(tiles[:2], axis=1)
    bottom = np.concatenate(tiles[2:], axis=1)
    mosaic = np.concatenate([top, bottom], axis=0)
    path = tmp_path / "mosaic.tif"
    resolution = 1e4 / 0.0735  # pixels per cm
    tifffile.imwrite(
        path,
        mosaic,
        tile=(256, 256),
        resolution=(resolution, resolution),
        resolutionunit="CENTIMETER",
    )
    return path, [(0, 0), (640, 0), (0, 480), (640, 480)]


def test_tiles_find_each_cell_once(tmp_path: Path, bccd: VocCollection) -> None:
    path, offsets = _mosaic(tmp_path)
    truth = [
        (b.box[0] + ox, b.box[1] + oy, b.box[2] + ox, b.box[3] + oy)
        for image_id, (ox, oy) in zip(FIELDS, offsets, strict=True)
        for b in bccd.boxes(image_id, ["WBC"])
    ]
    # tiles of 30 um (~400 px) with 25 um overlap: many cells straddle a tile border
    settings = DetectionSettings(tile_um=30.0, overlap_um=25.0)
    with open_slide(path) as slide:
        result = detect_white_cells(slide, settings=settings)
    assert result.tiles > 4
    assert result.mpp == pytest.approx(0.0735, rel=1e-4)
    boxes = [cell.box for cell in result.cells]
    # no duplicates: no two detections overlap much
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert box_iou(boxes[i], boxes[j]) < 0.3
    matched = match_boxes(boxes, truth)
    assert len(matched) >= len(truth) - 1
    assert [cell.id for cell in result.cells] == list(range(1, len(result.cells) + 1))


def test_estimate_refuses_an_empty_image() -> None:
    with pytest.raises(ResolutionEstimateError, match="--mpp"):
        estimate_mpp_from_red_cells(np.full((300, 400, 3), 230, np.uint8))


def test_estimated_source_text() -> None:
    assert estimated_mpp_source() == "estimated from median red-cell diameter (7.5 um)"


def test_otsu_and_polygon_helpers() -> None:
    values = np.concatenate([np.full(100, 1.0), np.full(100, 5.0)])
    assert 1.0 <= otsu_threshold(values) < 5.0
    mask = np.zeros((40, 40), bool)
    yy, xx = np.mgrid[:40, :40]
    mask[(yy - 20) ** 2 + (xx - 18) ** 2 <= 100] = True
    polygon = boundary_polygon(mask)
    assert polygon_area(polygon) == pytest.approx(mask.sum(), rel=0.08)
    assert boundary_polygon(np.zeros((5, 5), bool)).shape == (0, 2)


def test_voc_reader(bccd: VocCollection) -> None:
    assert bccd.ids() == sorted(FIELDS)
    assert bccd.ids("val") == ["BloodImage_00028", "BloodImage_00099", "BloodImage_00193"]
    boxes = bccd.boxes("BloodImage_00193", ["wbc"])
    assert len(boxes) == 2 and all(b.name == "WBC" for b in boxes)
    assert (BCCD / "LICENSE").is_file()
