"""A slide's levels go to another JPEG decoder only where it agrees with tifffile on the
level's most detailed tiles (core/stream_decode.py). With an exact decoder (Pillow,
standing in for a GPU one) the patches a model is fed stay identical; a decoder that is
off, or fails, leaves the level with tifffile, says why, and never shows its pixels."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from omicslens.core import open_slide
from omicslens.core.batch_decode import BatchingDecoder
from omicslens.core.chunk_cache import shared_cache
from omicslens.core.grid import TileGrid
from omicslens.core.patches import read_patch
from omicslens.core.stream_decode import (
    CPU_DECODER,
    install_stream_decoder,
    remove_stream_decoder,
)
from tests.conftest import CMU1, SAMPLES, TCGA
from tests.core.test_jpeg_streams import pillow_decode

HER2ST = SAMPLES / "her2st-C6-half.ome.tif"


def _patches(slide, grid, indices) -> list[np.ndarray]:
    shared_cache().clear()
    return [read_patch(slide, grid, int(i)) for i in indices]


def _grid_sample(slide) -> tuple[TileGrid, np.ndarray]:
    grid = TileGrid.for_slide(slide, 224, 0.5)
    return grid, np.linspace(0, grid.size - 1, 12).astype(int)


def test_an_exact_decoder_takes_every_jpeg_level_and_the_patches_stay_identical() -> None:
    for path in (CMU1, HER2ST):
        with open_slide(path) as slide:
            grid, indices = _grid_sample(slide)
            before = _patches(slide, grid, indices)
            batching = BatchingDecoder(lambda streams: [pillow_decode(s) for s in streams])
            plan = install_stream_decoder(slide, batching.decode, "pillow")
            assert plan.switched == list(range(slide.level_count)), plan
            assert all(level.agreement.identical_tiles == level.agreement.tiles
                       for level in plan.levels)  # fmt: skip
            after = _patches(slide, grid, indices)
            for a, b in zip(before, after, strict=True):
                np.testing.assert_array_equal(a, b)
            used = [level.tile_reader.stream_stats() for level in slide.level_sources]
            assert sum(u.decoded for u in used) > 0 and sum(u.fallbacks for u in used) == 0
            assert batching.stats().tiles >= sum(u.decoded for u in used)
            remove_stream_decoder(slide, lambda stream: stream)  # not ours: kept
            assert slide.level_sources[0].tile_reader._stream_decode is not None
            remove_stream_decoder(slide, batching.decode)
            assert slide.level_sources[0].tile_reader._stream_decode is None
            batching.close()


def test_a_decoder_that_is_off_is_not_used() -> None:
    def brighter(stream: bytes) -> np.ndarray:
        return np.clip(pillow_decode(stream).astype(int) + 3, 0, 255).astype(np.uint8)

    with open_slide(CMU1) as slide:
        grid, indices = _grid_sample(slide)
        before = _patches(slide, grid, indices)
        plan = install_stream_decoder(slide, brighter, "off-by-three")
        assert plan.switched == []
        level = plan.levels[0]
        assert level.decoder == CPU_DECODER and "differs from tifffile" in level.reason
        assert level.agreement is not None and level.agreement.mean_abs > 1
        after = _patches(slide, grid, indices)
        for a, b in zip(before, after, strict=True):
            np.testing.assert_array_equal(a, b)
        assert slide.level_sources[0].tile_reader.stream_stats().decoded == 0
        assert plan.as_dict()["levels"][0]["agreement"]["tiles"] == 8


def test_a_decoder_that_fails_on_the_check_is_not_used() -> None:
    def broken(stream: bytes) -> np.ndarray:
        raise RuntimeError("CUDA error: out of memory")

    with open_slide(CMU1) as slide:
        plan = install_stream_decoder(slide, broken, "broken")
        assert plan.switched == []
        assert "broken failed on the checked tiles (RuntimeError: CUDA error" in (
            plan.levels[0].reason
        )


def test_a_tile_the_decoder_fails_on_later_is_decoded_by_tifffile(caplog) -> None:
    calls = {"n": 0}

    def flaky(stream: bytes) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] > 8 and calls["n"] % 2:  # passes the check, then fails every other
            raise RuntimeError("nvjpeg status 6")
        return pillow_decode(stream)

    with open_slide(CMU1) as slide:
        grid, indices = _grid_sample(slide)
        before = _patches(slide, grid, indices)
        assert install_stream_decoder(slide, flaky, "flaky").switched == [0]
        with caplog.at_level(logging.WARNING, logger="omicslens.core.tiff_tiles"):
            after = _patches(slide, grid, indices)
        for a, b in zip(before, after, strict=True):
            np.testing.assert_array_equal(a, b)
        stats = slide.level_sources[0].tile_reader.stream_stats()
        assert stats.decoded > 0 and stats.fallbacks > 0
        assert "nvjpeg status 6" in stats.last_fallback
        assert "decoded on the CPU instead" in caplog.text


def test_levels_that_are_not_jpeg_stay_with_tifffile_and_say_why() -> None:
    with open_slide(TCGA, mpp=0.5) as slide:
        plan = install_stream_decoder(slide, pillow_decode, "pillow")
    assert plan.switched == []
    assert all("APERIO_JP2000_RGB-compressed, not JPEG" in level.reason for level in plan.levels)
    plain = sorted((Path(__file__).parents[1] / "data" / "her2st-cut" / "images").glob("*.jpg"))
    assert plain  # a plain JPEG: no tile reader at all
    with open_slide(plain[0], mpp=0.5) as slide:
        plan = install_stream_decoder(slide, pillow_decode, "pillow")
    assert plan.levels[0].reason == "not one tiled TIFF page"
