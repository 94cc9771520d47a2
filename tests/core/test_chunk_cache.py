"""The shared decoded-tile cache: same pixels as reading through zarr, bounded memory,
one decode per tile even under concurrency, failures never cached, no stale hits."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from omicslens.core import open_slide
from omicslens.core.chunk_cache import DecodedChunkCache, set_shared_budget, shared_cache
from omicslens.core.grid import TileGrid
from omicslens.core.levels import NativeLevel
from omicslens.core.patches import read_patch
from tests.conftest import CMU1, OS1, TCGA


@pytest.fixture
def fresh_cache():
    cache = set_shared_budget(64 * 2**20)
    yield cache
    set_shared_budget(256 * 2**20)


def _random_boxes(height: int, width: int, count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        h, w = (int(v) for v in rng.integers(1, 700, 2))
        y = int(rng.integers(0, max(1, height - 1)))
        x = int(rng.integers(0, max(1, width - 1)))
        yield y, min(height, y + h), x, min(width, x + w)


@pytest.mark.parametrize(
    "path, mpp", [(CMU1, None), (OS1, None), (TCGA, 0.25)], ids=["svs", "ome-tiff", "jp2k"]
)
def test_regions_are_bit_identical_to_zarr_reads(path: Path, mpp, fresh_cache) -> None:
    with open_slide(path, mpp=mpp) as slide:
        for level in range(slide.level_count):
            source = slide._levels[level]
            assert isinstance(source, NativeLevel)
            height, width, _ = source.shape
            for y0, y1, x0, x1 in _random_boxes(height, width, 25, seed=level):
                cached = source.read(y0, y1, x0, x1)
                np.testing.assert_array_equal(cached, source._read_direct(y0, y1, x0, x1))
    assert fresh_cache.stats().hits > 0  # the boxes overlap: tiles were reused


def test_odd_sized_planar_and_strip_tiffs(tmp_path: Path, fresh_cache) -> None:
    """Partial edge tiles, separate colour planes and strips (not tiles) give the same
    pixels through the cache."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (301, 467, 3), dtype=np.uint8)
    layouts = {
        "tiled.tif": {"tile": (64, 48), "compression": "zlib"},
        "planar.tif": {"tile": (32, 32), "planarconfig": "separate", "compression": "zlib"},
        "strips.tif": {"rowsperstrip": 17, "compression": "zlib"},
    }
    for name, options in layouts.items():
        target = tmp_path / name
        planar = options.get("planarconfig") == "separate"
        data = np.moveaxis(pixels, 2, 0) if planar else pixels
        tifffile.imwrite(
            target,
            data,
            photometric="rgb",
            resolution=(1e4, 1e4),
            resolutionunit="CENTIMETER",
            **options,
        )
        with open_slide(target) as slide:
            source = slide._levels[0]
            assert source._chunk_yx is not None, name
            for y0, y1, x0, x1 in _random_boxes(301, 467, 40, seed=7):
                np.testing.assert_array_equal(source.read(y0, y1, x0, x1), pixels[y0:y1, x0:x1])


def test_patches_do_not_change_with_the_cache(fresh_cache) -> None:
    with open_slide(CMU1) as slide:
        grid = TileGrid.for_slide(slide, 224, 0.5)
        indices = range(0, grid.size, 3)
        cached = [read_patch(slide, grid, i) for i in indices]
    set_shared_budget(0)
    with open_slide(CMU1) as slide:
        direct = [read_patch(slide, grid, i) for i in indices]
    for a, b in zip(cached, direct, strict=True):
        np.testing.assert_array_equal(a, b)


def test_memory_stays_within_the_budget() -> None:
    tile = np.zeros((100, 100, 3), np.uint8)  # 30,000 bytes
    cache = DecodedChunkCache(budget_bytes=100_000)
    for key in range(20):
        cache.get(key, lambda: tile.copy())
        assert cache.stats().bytes <= 100_000
    assert cache.stats().entries == 3
    decodes = []
    cache.get(19, lambda: decodes.append(1) or tile)  # the newest is still there
    cache.get(0, lambda: decodes.append(1) or tile)  # the oldest was dropped
    assert decodes == [1]


def test_cached_tiles_are_read_only() -> None:
    cache = DecodedChunkCache(budget_bytes=10**6)
    tile = cache.get("k", lambda: np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError):
        tile[0, 0] = 1


def test_two_threads_asking_for_one_tile_share_one_decode() -> None:
    cache = DecodedChunkCache(budget_bytes=10**6)
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow_decode() -> np.ndarray:
        calls.append(threading.current_thread().name)
        started.set()
        release.wait(5)
        return np.ones((8, 8), np.uint8)

    results = []
    first = threading.Thread(target=lambda: results.append(cache.get("t", slow_decode)))
    first.start()
    started.wait(5)
    second = threading.Thread(target=lambda: results.append(cache.get("t", slow_decode)))
    second.start()
    time.sleep(0.1)  # the second is now waiting on the first's decode
    release.set()
    first.join(5)
    second.join(5)
    assert len(calls) == 1 and len(results) == 2
    assert results[0] is results[1]
    assert cache.stats().waits == 1


def test_a_failed_decode_is_raised_and_not_cached() -> None:
    cache = DecodedChunkCache(budget_bytes=10**6)

    def broken() -> np.ndarray:
        raise OSError("truncated tile")

    with pytest.raises(OSError, match="truncated tile"):
        cache.get("t", broken)
    assert cache.get("t", lambda: np.zeros(3)).shape == (3,)  # retried, not a stale error


def test_levels_never_share_keys(fresh_cache) -> None:
    """Two arrays with the same chunk grid (e.g. a file replaced and reopened) never see
    each other's tiles."""
    one = zarr.create_array({}, shape=(64, 64, 3), chunks=(32, 32, 3), dtype="uint8")
    two = zarr.create_array({}, shape=(64, 64, 3), chunks=(32, 32, 3), dtype="uint8")
    one[:] = 10
    two[:] = 200
    a, b = NativeLevel(one, "YXS"), NativeLevel(two, "YXS")
    assert a.read(0, 16, 0, 16).max() == 10
    assert b.read(0, 16, 0, 16).min() == 200


def test_budget_zero_turns_it_off() -> None:
    cache = set_shared_budget(0)
    try:
        decodes = []
        for _ in range(3):
            shared_cache().get("k", lambda: decodes.append(1) or np.zeros(2))
        assert len(decodes) == 3 and cache.stats().entries == 0
    finally:
        set_shared_budget(256 * 2**20)
