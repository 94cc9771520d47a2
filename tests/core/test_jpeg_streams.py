"""Standalone JPEG streams built from TIFF tiles (core/jpeg_streams.py) decode, in a
decoder that never sees the TIFF tags (Pillow's libjpeg), to tifffile's pixels bit for
bit on every JPEG layout: Aperio SVS with shared tables and RGB-in-JPEG (CMU-1), the
Bio-Formats OME-TIFF (OS-1), the HER2ST pyramid, and tifffile-written YCbCr, RGB, grey
and unsubsampled tiles with edge tiles. What cannot be a stream says why."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from omicslens.core import open_slide
from omicslens.core.jpeg_streams import (
    JpegStreamBuilder,
    UnsupportedJpeg,
    adobe_segment,
    parse_header,
)
from omicslens.core.tiff_tiles import tile_reader_for
from tests.conftest import CMU1, OS1, SAMPLES, TCGA

REAL_JPEG = [CMU1, OS1, SAMPLES / "her2st-C6-half.ome.tif"]


def pillow_decode(stream: bytes) -> np.ndarray:
    """An independent libjpeg decode of a standalone stream (no TIFF tags)."""
    with Image.open(io.BytesIO(stream)) as image:
        assert image.format == "JPEG"
        return np.asarray(image)


def _check_tiles(reader, tiles) -> int:
    for index in tiles:
        expected = reader.decode_here(index)
        got = pillow_decode(reader.stream(index)).reshape(expected.shape)
        np.testing.assert_array_equal(got, expected, err_msg=f"tile {index}")
    return len(tiles)


def _edge_and_detailed(reader) -> list[int]:
    return sorted({*reader.largest_tiles(6), reader.tile_count - 1, reader.across - 1})


@pytest.mark.parametrize("path", REAL_JPEG, ids=lambda p: p.name)
def test_real_slides_streams_decode_like_tifffile(path: Path) -> None:
    checked = 0
    with open_slide(path, mpp=0.25) as slide:
        for level in slide.level_sources:
            reader = level.tile_reader
            assert reader is not None
            checked += _check_tiles(reader, _edge_and_detailed(reader))
    assert checked >= 6


@pytest.mark.parametrize(
    ("pixels_kind", "options"),
    [
        ("rgb", {"photometric": "rgb"}),  # tifffile stores YCbCr + JFIF
        ("rgb", {"photometric": "ycbcr", "subsampling": (1, 1)}),
        ("rgb", {"photometric": "rgb", "compressionargs": {"outcolorspace": "rgb"}}),  # Adobe 0
        ("grey", {}),
    ],
    ids=["ycbcr-420", "ycbcr-444", "rgb-adobe", "grey"],
)
def test_written_jpeg_tiles_streams_decode_like_tifffile(tmp_path, he_pixels, pixels_kind, options):
    pixels = np.resize(he_pixels, (700, 900, 3))
    if pixels_kind == "grey":
        pixels = np.ascontiguousarray(pixels[..., 1])
    path = tmp_path / "tiles.tif"
    tifffile.imwrite(path, pixels, tile=(256, 256), compression="jpeg", **options)
    with tifffile.TiffFile(path) as tif:
        reader = tile_reader_for(path, tif.series[0].levels[0])
        assert reader is not None
        assert _check_tiles(reader, list(range(reader.tile_count))) == 12


def _strip_adobe(stream: bytes) -> bytes:
    segment = adobe_segment(0)
    assert stream[2 : 2 + len(segment)] == segment
    return stream[:2] + stream[2 + len(segment) :]


def test_aperio_rgb_tiles_need_the_colour_marker() -> None:
    """CMU-1's JPEG holds RGB with component ids 0, 1, 2 and no marker: a decoder left
    to itself converts it from YCbCr. The Adobe segment is what makes the colours right."""
    with open_slide(CMU1) as slide:
        reader = slide.level_sources[0].tile_reader
        index = reader.largest_tiles(1)[0]
        tables = JpegStreamBuilder.for_page(reader.page).tables
        header = parse_header(b"\xff\xd8" + tables + reader.raw(index)[2:])
        assert header.component_ids == (0, 1, 2) and not header.jfif
        expected = reader.decode_here(index)
        stream = reader.stream(index)
        np.testing.assert_array_equal(pillow_decode(stream), expected)
        wrong = pillow_decode(_strip_adobe(stream)).astype(int)
        assert np.abs(wrong - expected).mean() > 20  # grossly wrong colours without it


def test_shared_tables_are_merged() -> None:
    """Aperio tiles carry no tables of their own; the stream must bring the page's."""
    with open_slide(CMU1) as slide:
        reader = slide.level_sources[0].tile_reader
        raw = reader.raw(0)
        assert b"\xff\xc4" not in raw.split(b"\xff\xda")[0]  # no DHT before the scan
        stream = reader.stream(0)
        assert stream.count(b"\xff\xd8") == 1 and b"\xff\xc4" in stream.split(b"\xff\xda")[0]
        assert stream.endswith(b"\xff\xd9")


def test_jpeg_2000_and_other_codecs_are_refused_with_the_reason(tmp_path, he_pixels) -> None:
    with open_slide(TCGA, mpp=0.5) as slide:
        reader = slide.level_sources[0].tile_reader
        with pytest.raises(UnsupportedJpeg, match=r"JP2000.*not JPEG"):
            JpegStreamBuilder.for_page(reader.page)
    path = tmp_path / "zlib.tif"
    tifffile.imwrite(path, he_pixels[:300, :300], tile=(128, 128), compression="zlib")
    with tifffile.TiffFile(path) as tif, pytest.raises(UnsupportedJpeg, match=r"DEFLATE.*not"):
        JpegStreamBuilder.for_page(tif.pages[0])


def _pillow_jpeg(pixels: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def test_headers_gpu_decoders_cannot_take_are_refused(he_pixels) -> None:
    progressive = _pillow_jpeg(he_pixels[:64, :64], progressive=True)
    with pytest.raises(UnsupportedJpeg, match="progressive"):
        parse_header(progressive)
    with pytest.raises(UnsupportedJpeg, match="start-of-image"):
        parse_header(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    baseline = _pillow_jpeg(he_pixels[:64, :64])
    sof = baseline.index(b"\xff\xc0")
    twelve_bit = baseline[: sof + 4] + b"\x0c" + baseline[sof + 5 :]
    with pytest.raises(UnsupportedJpeg, match="12-bit"):
        parse_header(twelve_bit)
    with pytest.raises(UnsupportedJpeg, match="no JPEG frame header"):
        parse_header(baseline[:sof])


def test_a_tile_that_contradicts_the_tags_is_refused(he_pixels) -> None:
    """tifffile decodes Aperio-style pages as RGB whatever the stream says; a tile whose
    own JFIF marker says YCbCr cannot be handed to a decoder that would believe it."""
    jfif = _pillow_jpeg(he_pixels[:64, :64])
    forced_rgb = JpegStreamBuilder(tables=b"", forced_transform=0, samples=3, tile=(64, 64))
    with pytest.raises(UnsupportedJpeg, match="says colour transform 1"):
        forced_rgb.stream(jfif)
    free = JpegStreamBuilder(tables=b"", forced_transform=None, samples=3, tile=(64, 64))
    assert free.stream(jfif) == jfif  # the stream's own marker is what libjpeg reads
    with pytest.raises(UnsupportedJpeg, match="start-of-image"):
        free.stream(b"\x00\x00" + jfif[2:])  # a damaged tile is not passed on
    wrong_size = JpegStreamBuilder(tables=b"", forced_transform=None, samples=3, tile=(32, 32))
    with pytest.raises(UnsupportedJpeg, match="64 x 64"):
        wrong_size.stream(jfif)
