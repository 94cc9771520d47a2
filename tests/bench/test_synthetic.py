"""Generated benchmark slides are real slides to the reader, and their levels are exact.

The 100k x 100k benchmark files are written with the same code at small sizes here:
if the reader sees the geometry, resolution and flavour that was written, and each
level shows the downsampled level 0, the benchmark measures a faithful slide.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from omicslens.bench import io as bench_io
from omicslens.bench import synthetic
from omicslens.core import open_slide
from omicslens.core.pyramid import halve
from tests.conftest import CMU1

#: Mean absolute error allowed between two JPEG decodes of the same content: dense
#: H&E (CMU-1) differs by ~7 grey levels, mostly 4:2:0 chroma subsampling at edges;
#: a region shifted by a few pixels differs by ~50.
PIXEL_TOLERANCE = 10.0
#: The same comparison on 8 x 8 block means, where codec error averages out (~0.9;
#: ~33 for the shifted region).
BLOCK_TOLERANCE = 2.0


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _block_means(image: np.ndarray, block: int = 8) -> np.ndarray:
    h, w = image.shape[0] // block * block, image.shape[1] // block * block
    view = image[:h, :w].reshape(h // block, block, w // block, block, -1)
    return view.mean(axis=(1, 3))


def _write(tmp_path: Path, pixels: np.ndarray, flavour: str) -> synthetic.WrittenPyramid:
    options = {"ome": {"tile": 512, "level_factor": 2}, "svs": {"tile": 256, "level_factor": 4}}
    suffix = ".ome.tif" if flavour == "ome" else ".svs"
    return synthetic.write_periodic_pyramid(
        tmp_path / f"periodic{suffix}",
        pixels,
        size=(3000, 2000),
        mpp=0.25,
        flavour=flavour,  # type: ignore[arg-type]
        **options[flavour],
    )


def test_pyramid_shapes_of_the_benchmark_slides() -> None:
    shapes, halvings = synthetic.pyramid_shapes(100_000, 100_000, level_factor=2)
    assert len(shapes) == 8 and shapes[-1] == (781, 781) and halvings[-1] == 7
    shapes, halvings = synthetic.pyramid_shapes(100_000, 100_000, level_factor=4)
    assert [s[0] for s in shapes] == [100_000, 25_000, 6_250, 1_562, 390]
    assert halvings == [0, 2, 4, 6, 8]


def test_mirrored_block_tiles_without_seams(he_pixels: np.ndarray) -> None:
    block, _ = synthetic.periodic_block(he_pixels, 512)
    assert block.shape == (512, 512, 3)
    # Across the wrap-around edge, neighbours are mirror images: identical rows/columns.
    assert np.array_equal(block[0], block[-1]) and np.array_equal(block[:, 0], block[:, -1])


def test_ome_flavour_opens_with_written_geometry(tmp_path: Path, he_pixels: np.ndarray) -> None:
    written = _write(tmp_path, he_pixels, "ome")
    with tifffile.TiffFile(written.path) as tif:
        assert tif.is_ome and len(tif.series[0].levels) == 3
    with open_slide(written.path) as slide:
        assert slide.format == "ome-tiff"
        assert slide.dimensions == (3000, 2000)
        assert slide.level_shapes == [(2000, 3000), (1000, 1500), (500, 750)]
        assert slide.level_shapes == written.level_shapes
        assert slide.mpp_x == pytest.approx(0.25) and slide.mpp_y == pytest.approx(0.25)
        assert slide.tile_sizes[0] == (512, 512) and slide.compressions[0] == "jpeg"


def test_svs_flavour_opens_as_aperio(tmp_path: Path, he_pixels: np.ndarray) -> None:
    written = _write(tmp_path, he_pixels, "svs")
    with tifffile.TiffFile(written.path) as tif:
        assert tif.is_svs and not tif.is_bigtiff
        assert [level.shape[:2] for level in tif.series[0].levels] == [(2000, 3000), (500, 750)]
    with open_slide(written.path) as slide:
        assert slide.format == "aperio-svs"
        assert slide.level_shapes == [(2000, 3000), (500, 750)]
        assert slide.mpp == pytest.approx(0.25)
        assert slide.objective_power == 20
        assert slide.tile_sizes[0] == (256, 256)
        assert slide.associated_images == ["label", "macro", "thumbnail"]


@pytest.mark.parametrize("flavour", ["ome", "svs"])
def test_every_level_is_the_downsampled_level_0(
    tmp_path: Path, he_pixels: np.ndarray, flavour: str
) -> None:
    written = _write(tmp_path, he_pixels, flavour)
    block, _ = synthetic.periodic_block(he_pixels, written.period)
    with open_slide(written.path) as slide:
        for level, halvings in enumerate(written.halvings):
            h, w = slide.level_shapes[level]
            x, y, width, height = w // 3 + 1, h // 4 + 3, min(240, w // 2), min(160, h // 2)
            got = slide.read_region(x, y, width, height, level=level)
            scale = 2**halvings
            from_level_0 = slide.read_region(x * scale, y * scale, width * scale, height * scale)
            for _ in range(halvings):
                from_level_0 = halve(from_level_0)
            exact = synthetic.expected_region(block, x, y, width, height, halvings)
            shifted = synthetic.expected_region(block, x + 37, y + 11, width, height, halvings)
            for reference in (from_level_0, exact):
                assert _mean_abs(got, reference) < PIXEL_TOLERANCE
                assert _mean_abs(_block_means(got), _block_means(reference)) < BLOCK_TOLERANCE
            # The tolerance is tight enough to tell the right content from nearby content.
            assert _mean_abs(_block_means(got), _block_means(shifted)) > 3 * BLOCK_TOLERANCE


def test_edge_tiles_continue_the_pattern(tmp_path: Path, he_pixels: np.ndarray) -> None:
    written = _write(tmp_path, he_pixels, "ome")
    block, _ = synthetic.periodic_block(he_pixels, written.period)
    with open_slide(written.path) as slide:
        corner = slide.read_region(2900, 1900, 100, 100)
    assert (
        _mean_abs(corner, synthetic.expected_region(block, 2900, 1900, 100, 100, 0))
        < PIXEL_TOLERANCE
    )


def test_period_must_allow_exact_levels(he_pixels: np.ndarray, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not divisible"):
        synthetic.write_periodic_pyramid(
            tmp_path / "x.ome.tif", he_pixels, size=(40_000, 40_000), period=32
        )


def test_io_benchmark_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = bench_io.run_io_benchmark(
        tmp_path, size=1500, reads=3, seed=1, source_jpeg=CMU1, open_runs=2
    )
    assert set(result) == {"machine", "config", "slides", "targets"}
    assert set(result["slides"]) == {"ome", "svs"}
    assert set(result["targets"]) == {"open_under_100ms", "reads_at_least_0.9x_zarr"}
    for flavour, expected_format in (("ome", "ome-tiff"), ("svs", "aperio-svs")):
        entry = result["slides"][flavour]
        assert entry["file"]["format"] == expected_format
        assert entry["file"]["file_bytes"] > 0 and entry["file"]["reused"] is False
        opened = entry["open"]
        for key in ("open_slide_ms", "tifffile_ms", "tifffile_zarr_ms", "ratio_vs_tifffile"):
            assert opened[key] > 0
        assert [row["level"] for row in entry["reads"]] == [0, 1]
        for row in entry["reads"]:
            assert row["identical_pixels"] is True
            for key in ("slide_mpix_s", "zarr_mpix_s", "dask_mpix_s", "ratio", "dask_ratio"):
                assert row[key] > 0
    assert "| ome |" in bench_io.to_markdown(result)

    # A second run reuses the files; the CLI entry point prints the same structure.
    markdown = tmp_path / "io.md"
    argv = ["--data-dir", str(tmp_path), "--size", "1500", "--reads", "2", "--open-runs", "1"]
    code = bench_io.main([*argv, "--source", str(CMU1), "--json", "--markdown", str(markdown)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert all(entry["file"]["reused"] for entry in printed["slides"].values())
    assert "Targets:" in markdown.read_text()
