"""Detection under image perturbations and on mosaics of fields, on real BCCD fields
(tests/data/bccd: four fields, one train and three val, BCCD_Dataset, MIT licence)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import pytest

import omicslens.hemato.benchmark as benchmark
from omicslens.cli.smear_commands import add_smear_commands
from omicslens.core.perturb import Perturbation, channel_gain, gaussian_blur, perturbation_named
from omicslens.hemato.benchmark import (
    benchmark_detection,
    benchmark_mosaics,
    compose_mosaic,
    detect_pixels,
    read_field,
)
from omicslens.hemato.detect import DetectionSettings, detect_white_cells, estimate_slide_mpp
from omicslens.hemato.smear import open_smear
from omicslens.hemato.voc import VocCollection
from tests.hemato.conftest import BCCD, field_pixels

IDENTITY = Perturbation("identity", "identity")
THREE = ["BloodImage_00001", "BloodImage_00099", "BloodImage_00193"]


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="omicslens")
    add_smear_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


class Spy:
    """Records the pixels of every slide the benchmark hands to the detector."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.detected: list[np.ndarray] = []
        self.estimated: list[np.ndarray] = []
        monkeypatch.setattr(benchmark, "detect_white_cells", self._detect)
        monkeypatch.setattr(benchmark, "estimate_slide_mpp", self._estimate)

    @staticmethod
    def _pixels(slide: Any) -> np.ndarray:
        width, height = slide.dimensions
        return np.asarray(slide.read_region(0, 0, width, height)[..., :3])

    def _detect(self, slide: Any, *args: Any, **kwargs: Any) -> Any:
        self.detected.append(self._pixels(slide))
        return detect_white_cells(slide, *args, **kwargs)

    def _estimate(self, slide: Any, *args: Any, **kwargs: Any) -> Any:
        self.estimated.append(self._pixels(slide))
        return estimate_slide_mpp(slide, *args, **kwargs)


def test_in_memory_path_equals_the_file_path() -> None:
    """Detection on pixels in memory = opening the file and detecting (boxes and mpp)."""
    path = BCCD / "JPEGImages" / "BloodImage_00193.jpg"
    slide, mpp, source, estimate = open_smear(path)
    with slide:
        expected = detect_white_cells(slide, mpp=mpp).cells
    pixels, file_mpp = read_field(path)
    assert file_mpp is None  # BCCD states no resolution
    np.testing.assert_array_equal(pixels, field_pixels("BloodImage_00193"))
    cells, found_mpp, found_source, estimated = detect_pixels(pixels, None)
    assert estimated and estimate is not None
    assert found_mpp == pytest.approx(mpp, rel=1e-12)
    assert found_source == source
    assert len(expected) == 2
    np.testing.assert_allclose([c.box for c in cells], [c.box for c in expected], rtol=1e-12)


def test_identity_is_the_plain_benchmark() -> None:
    plain = benchmark_detection(BCCD)
    same = benchmark_detection(BCCD, perturbation=IDENTITY)
    for key in ("all", "splits", "estimated_mpp", "fields_not_perfect"):
        assert same[key] == plain[key], key
    assert plain["all"]["fields"] == 4 and plain["all"]["true_positives"] == 5
    assert same["perturbation"]["name"] == "identity"


def test_split_restricts_the_fields() -> None:
    report = benchmark_detection(BCCD, split="val", perturbation=IDENTITY)
    assert report["all"]["fields"] == 3
    assert set(report["splits"]) == {"val"}
    assert report["split"] == "val"


def test_the_perturbed_pixels_are_what_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    gain = perturbation_named("gain-0.1")
    benchmark_detection(BCCD, ids=THREE[:2], perturbation=gain)
    assert len(spy.detected) == 2 and len(spy.estimated) == 2
    for image_id, detected, estimated in zip(THREE, spy.detected, spy.estimated, strict=False):
        clean = field_pixels(image_id)
        wanted = channel_gain(clean[None], (1.1, 1.0, 0.9))[0]
        assert not np.array_equal(wanted, clean)
        np.testing.assert_array_equal(detected, wanted)
        # the resolution is estimated on the perturbed field too, as a user would see it
        np.testing.assert_array_equal(estimated, wanted)


def test_blur_sigma_is_at_the_detectors_spacing(monkeypatch: pytest.MonkeyPatch) -> None:
    """blur-1 is 1 px at 0.25 um/px: about 3.4 px of a 0.073 um/px BCCD field."""
    spy = Spy(monkeypatch)
    report = benchmark_detection(
        BCCD, ids=["BloodImage_00099"], perturbation=perturbation_named("blur-1")
    )
    clean = field_pixels("BloodImage_00099")
    # two estimates: the clean field's (to convert the sigma), then the blurred field's
    assert len(spy.estimated) == 2
    np.testing.assert_array_equal(spy.estimated[0], clean)
    mpp = estimate_slide_mpp(benchmark.array_slide(clean)).mpp
    sigma = 0.25 / mpp
    assert 2.5 < sigma < 4.5
    assert report["perturbation"]["sigma_field_px_median"] == pytest.approx(sigma, abs=1e-3)
    blurred = gaussian_blur(clean[None], sigma)[0]
    np.testing.assert_array_equal(spy.estimated[1], blurred)
    np.testing.assert_array_equal(spy.detected[0], blurred)


def test_hed_jitter_is_drawn_per_field_not_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    hed = perturbation_named("hed-0.1")
    benchmark_detection(BCCD, ids=THREE, perturbation=hed)
    benchmark_detection(BCCD, ids=THREE[2:], perturbation=hed)
    np.testing.assert_array_equal(spy.detected[2], spy.detected[3])
    assert not np.array_equal(spy.detected[2], field_pixels(THREE[2]))


def test_non_image_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="does not apply to detection"):
        benchmark_detection(BCCD, perturbation=perturbation_named("scale-1.1"))


def test_mosaic_sums_and_offsets_the_boxes() -> None:
    collection = VocCollection(BCCD)
    mosaic = compose_mosaic(collection, THREE, columns=2)
    assert mosaic.pixels.shape == (960, 1280, 3)
    assert mosaic.offsets == [(0, 0), (640, 0), (0, 480)]
    per_field = [[b.box for b in collection.boxes(i, benchmark.WHITE_CELL_NAMES)] for i in THREE]
    assert len(mosaic.boxes) == sum(len(boxes) for boxes in per_field) == 4
    expected = [
        (x0 + ox, y0 + oy, x1 + ox, y1 + oy)
        for boxes, (ox, oy) in zip(per_field, mosaic.offsets, strict=True)
        for x0, y0, x1, y1 in boxes
    ]
    assert mosaic.boxes == expected
    for image_id, (ox, oy) in zip(THREE, mosaic.offsets, strict=True):
        np.testing.assert_array_equal(
            mosaic.pixels[oy : oy + 480, ox : ox + 640], field_pixels(image_id)
        )
    assert (mosaic.pixels[480:, 640:] == 255).all()  # the empty cell is glass-white


def test_mosaic_benchmark_finds_the_cells_where_they_were_moved() -> None:
    report = benchmark_mosaics(BCCD, size=2)
    assert report["mosaics"] == 1 and report["fields"] == 4 and report["fields_left_out"] == 0
    (only,) = report["per_mosaic"]
    assert (only["width"], only["height"]) == (1280, 960)
    assert only["annotated"] == 5
    assert "estimated" in only["mpp_source"]  # the TIFF states no resolution
    assert report["mosaic"]["true_positives"] == 5
    assert report["mosaic"]["f1"] == 1.0 and report["single_fields"]["f1"] == 1.0


def test_mosaic_detection_runs_tile_by_tile() -> None:
    """Small detection tiles on a 2x2 mosaic: the tiled path (one stain model from sample
    tiles, cells owned by one tile core) finds the same cells."""
    settings = DetectionSettings(tile_um=30.0, overlap_um=22.0)
    report = benchmark_mosaics(BCCD, size=2, settings=settings)
    assert report["mosaic"]["true_positives"] == 5
    assert report["mosaic"]["false_positives"] == 0


def test_cli_prints_one_entry_per_perturbation(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["hemato-benchmark", "--bccd", str(BCCD), "--json", "--mosaic", "2"]
    assert run([*argv, "--perturb", "gain-0.1", "--perturb", "jpeg-30"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in report["conditions"]] == ["identity", "gain-0.1", "jpeg-30"]
    for condition in report["conditions"]:
        assert {"precision", "recall", "f1", "delta_f1"} <= set(condition)
        assert condition["fields"] == 4
    assert report["conditions"][0]["delta_f1"] == 0.0
    assert report["mosaic"]["size"] == 2 and report["mosaic"]["mosaic"]["fields"] == 1
    assert "typing" not in report


def test_cli_split_and_bad_names(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["hemato-benchmark", "--bccd", str(BCCD), "--split", "val"]
    assert run([*argv, "--perturb", "hed-0.2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "val"
    assert [(c["name"], c["fields"]) for c in report["conditions"]] == [
        ("identity", 3),
        ("hed-0.2", 3),
    ]
    assert run([*argv, "--perturb", "scale-1.1"]) == 2
    assert "scale-1.1" in capsys.readouterr().err
