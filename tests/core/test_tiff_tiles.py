"""Tiles decoded in the calling thread (core/tiff_tiles.py) are the pixels zarr gives,
bit for bit, on every tiled layout: SVS JPEG 240/256 px, JPEG 2000 (TCGA), OME-TIFF
512 px pyramids, and files written here with tifffile (edge tiles, other codecs, grey)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile

from omicslens.core import open_slide
from omicslens.core.grid import TileGrid
from omicslens.core.patches import read_patch
from omicslens.core.tiff_tiles import tile_reader_for
from tests.conftest import CMU1, OS1, SAMPLES, TCGA

REAL = [CMU1, SAMPLES / "her2st-C6-half.ome.tif", TCGA, OS1]


def _rectangles(height: int, width: int, count: int = 25) -> list[tuple[int, int, int, int]]:
    rng = np.random.default_rng(7)
    out = [(height - 37, height, width - 41, width), (0, min(height, 600), 0, min(width, 600))]
    for _ in range(count):
        y0, x0 = int(rng.integers(0, height - 1)), int(rng.integers(0, width - 1))
        out.append((y0, min(height, y0 + int(rng.integers(1, 700))), x0,
                    min(width, x0 + int(rng.integers(1, 700)))))  # fmt: skip
    return out


def _assert_same_as_zarr(path: Path, mpp: float | None = None) -> int:
    """Every level: rectangles through the tile reader equal zarr's; returns how many
    levels had a reader."""
    used = 0
    with open_slide(path, mpp=mpp) as slide:
        for level in slide._levels:
            used += getattr(level, "tile_reader", None) is not None
            height, width, _ = level.shape
            for y0, y1, x0, x1 in _rectangles(height, width):
                direct = level.read(y0, y1, x0, x1)
                through_zarr = level._read_direct(y0, y1, x0, x1)
                assert direct.dtype == through_zarr.dtype
                np.testing.assert_array_equal(direct, through_zarr)
    return used


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_slides_decode_identically(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path.name} is not in this checkout")
    assert _assert_same_as_zarr(path, mpp=0.25) >= 1  # the fast path is really taken


@pytest.mark.parametrize(
    ("compression", "shape", "tile"),
    [
        ("jpeg", (700, 900, 3), (256, 256)),
        ("zlib", (700, 900, 3), (128, 256)),
        (None, (513, 1025, 3), (256, 256)),
        ("zlib", (700, 900), (256, 256)),  # grey, YX
    ],
)
def test_written_tiled_files_decode_identically(tmp_path, he_pixels, compression, shape, tile):
    pixels = np.resize(he_pixels, shape) if len(shape) == 3 else np.resize(he_pixels[..., 1], shape)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, pixels, tile=tile, compression=compression,
                     resolution=(20000, 20000), resolutionunit="CENTIMETER")  # fmt: skip
    assert _assert_same_as_zarr(path) == 1
    with open_slide(path) as slide:  # and the patches a model is fed
        grid = TileGrid.for_slide(slide, 64, slide.mpp_x)
        for index in (0, grid.size // 2, grid.size - 1):
            np.testing.assert_array_equal(
                read_patch(slide, grid, index),
                read_patch_via_zarr(slide, grid, index),
            )


def read_patch_via_zarr(slide, grid, index):
    """read_patch with the tile readers taken away (the zarr path)."""
    readers = [level.tile_reader for level in slide._levels]
    for level in slide._levels:
        level.tile_reader = None
    try:
        from omicslens.core.chunk_cache import shared_cache

        shared_cache().clear()
        return read_patch(slide, grid, index)
    finally:
        for level, reader in zip(slide._levels, readers, strict=True):
            level.tile_reader = reader
        shared_cache().clear()


def test_strips_and_planar_files_keep_the_zarr_path(tmp_path, he_pixels) -> None:
    strips = tmp_path / "strips.tif"
    tifffile.imwrite(strips, he_pixels[:300, :300], rowsperstrip=64)
    planar = tmp_path / "planar.tif"
    tifffile.imwrite(planar, np.moveaxis(he_pixels[:300, :300], -1, 0), tile=(128, 128),
                     planarconfig="separate", photometric="rgb")  # fmt: skip
    for path in (strips, planar):
        with tifffile.TiffFile(path) as tif:
            assert tile_reader_for(path, tif.series[0].levels[0]) is None


def test_threads_decode_at_once_and_a_closed_slide_says_so(tmp_path, he_pixels) -> None:
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, np.resize(he_pixels, (1024, 1024, 3)), tile=(128, 128),
                     compression="jpeg")  # fmt: skip
    with tifffile.TiffFile(path) as tif:
        reader = tile_reader_for(path, tif.series[0].levels[0])
        assert reader is not None
        expected = {(cy, cx): reader(cy, cx) for cy in range(8) for cx in range(8)}
        got: dict[tuple[int, int], np.ndarray] = {}

        def work(row: int) -> None:
            for cx in range(8):
                got[(row, cx)] = reader(row, cx)

        threads = [threading.Thread(target=work, args=(row,)) for row in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for key, tile in expected.items():
            np.testing.assert_array_equal(got[key], tile)
        reader.close()
        with pytest.raises(ValueError, match="closed"):
            reader(0, 0)
