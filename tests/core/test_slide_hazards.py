"""Issue 13's remaining slide-reading hazards: zarr chunks (truncated blosc frames, missing
chunks, device files), plain images that declare more than they hold, and region reads
of computed pyramid levels (docs/reliability.md, "Zarr chunks, plain images and
synthetic pyramids").

Cases that used to crash, hang or eat memory run in a child process with a time and an
address-space limit, so a regression fails the test instead of killing pytest.
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
from PIL import Image
from zarr.codecs import BloscCodec

from omicslens.core import CorruptSlideError, SlideReadError, UnsupportedSlideError, open_slide
from omicslens.core.formats import ome_zarr, plain
from omicslens.core.levels import NativeLevel
from omicslens.core.pyramid import READ_BLOCK, ComputedLevel, add_lazy_pyramid, halve

# -- helpers --------------------------------------------------------------------------
AXES = [
    {"name": "c", "type": "channel"},
    {"name": "y", "type": "space", "unit": "micrometer"},
    {"name": "x", "type": "space", "unit": "micrometer"},
]


def write_blosc_zarr(
    path: Path, image: np.ndarray, zarr_format: int, chunk: int = 512, levels: int = 1
) -> Path:
    """A (c, y, x) uint8 OME-Zarr whose chunks are blosc (lz4) frames."""
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)  # type: ignore[arg-type]
    compressor: Any = (
        numcodecs.Blosc(cname="lz4", shuffle=0)
        if zarr_format == 2
        else BloscCodec(cname="lz4", shuffle="noshuffle")
    )
    data = np.ascontiguousarray(np.moveaxis(image, 2, 0))
    datasets = []
    for number in range(levels):
        group.create_array(
            str(number), data=data, chunks=(data.shape[0], chunk, chunk), compressors=compressor
        )
        scale = 0.5 * 2**number
        datasets.append(
            {
                "path": str(number),
                "coordinateTransformations": [{"type": "scale", "scale": [1.0, scale, scale]}],
            }
        )
        data = np.ascontiguousarray(data[:, ::2, ::2])
    multiscales: list[Any] = [{"version": "0.4", "axes": AXES, "datasets": datasets}]
    if zarr_format == 2:
        group.attrs["multiscales"] = multiscales
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": multiscales}
    return path


def first_chunk(path: Path, zarr_format: int, level: int = 0) -> Path:
    return path / str(level) / ("0.0.0" if zarr_format == 2 else "c/0/0/0")


def noise(size: int) -> np.ndarray:
    """Incompressible pixels: blosc then stores each chunk as a plain copy (memcpyed),
    the layout whose truncation made c-blosc read past the buffer (SIGSEGV)."""
    return np.random.default_rng(13).integers(0, 256, (size, size, 3), dtype=np.uint8)


CHILD = r"""
import json, sys
from omicslens.core import open_slide
result = {}
try:
    with open_slide(sys.argv[1]) as slide:
        result["opened"] = True
        result["warnings"] = slide.warnings
        try:
            slide.read_region(0, 0, 256, 256)
            result["region"] = "ok"
        except Exception as error:
            result["region"] = [type(error).__name__, str(error)]
        try:
            slide.levels[0][:256, :256].compute()
            result["dask"] = "ok"
        except Exception as error:
            result["dask"] = [type(error).__name__, str(error)]
except Exception as error:
    result["open"] = [type(error).__name__, str(error)]
print(json.dumps(result))
"""


def read_in_child(path: Path, timeout: float = 60.0) -> dict[str, Any]:
    """Open and read ``path`` in a fresh interpreter with a 3 GiB address-space limit."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
    )
    assert done.returncode == 0, (
        f"child died with {done.returncode} (negative: signal): {done.stderr[-2000:]}"
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- 1. truncated blosc chunks ---------------------------------------------------------
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_truncated_blosc_chunk_is_a_read_error_not_a_segfault(
    tmp_path: Path, zarr_format: int
) -> None:
    path = write_blosc_zarr(tmp_path / "s.ome.zarr", noise(1024), zarr_format)
    chunk = first_chunk(path, zarr_format)
    size = chunk.stat().st_size
    assert size == 3 * 512 * 512 + 16  # stored, not compressed
    os.truncate(chunk, size // 2)  # before the fix: SIGSEGV (rc -11) on the first read

    result = read_in_child(path)

    key = "0/0.0.0" if zarr_format == 2 else "0/c/0/0/0"
    for route in ("region", "dask"):
        kind, message = result[route]
        assert kind == "SlideReadError"
        assert message.startswith(f"{path}: level 0 chunk file '{key}'")
        assert f"is {size // 2:,} bytes but its blosc header declares {size:,}" in message


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_chunk_cut_to_a_few_bytes_is_refused(
    tmp_path: Path, zarr_format: int, he_pixels: np.ndarray
) -> None:
    """A short, compressed chunk used to decode garbage read past the buffer, silently."""
    path = write_blosc_zarr(tmp_path / "s.ome.zarr", he_pixels[:512, :512], zarr_format, 256)
    chunk = first_chunk(path, zarr_format)
    os.truncate(chunk, 64)
    with open_slide(path) as slide, pytest.raises(SlideReadError, match="blosc header"):
        slide.read_region(0, 0, 64, 64)
    chunk.write_bytes(b"\x02\x01")
    with open_slide(path) as slide, pytest.raises(SlideReadError, match="shorter than a blosc"):
        slide.read_region(0, 0, 64, 64)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_sound_blosc_zarr_reads_the_pixels_written(
    tmp_path: Path, zarr_format: int, he_pixels: np.ndarray
) -> None:
    image = np.ascontiguousarray(he_pixels[:700, :900])
    path = write_blosc_zarr(tmp_path / "s.ome.zarr", image, zarr_format, 256, levels=2)
    with open_slide(path) as slide:
        assert slide.warnings == []
        assert "missing_chunks" not in slide.metadata
        np.testing.assert_array_equal(slide.read_region(0, 0, 900, 700), image)
        np.testing.assert_array_equal(np.asarray(slide.levels[0]), image)
        np.testing.assert_array_equal(slide.read_region(0, 0, 450, 350, level=1), image[::2, ::2])


def test_sharded_zarr_v3_still_reads(tmp_path: Path, he_pixels: np.ndarray) -> None:
    image = np.ascontiguousarray(np.moveaxis(he_pixels[:512, :512], 2, 0))
    group = zarr.open_group(str(tmp_path / "s.ome.zarr"), mode="w", zarr_format=3)
    group.create_array("0", data=image, chunks=(3, 128, 128), shards=(3, 256, 256))
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{"axes": AXES, "datasets": [{"path": "0"}]}],
    }
    with open_slide(tmp_path / "s.ome.zarr", mpp=0.5) as slide:
        assert slide.warnings == []
        np.testing.assert_array_equal(slide.read_region(0, 0, 512, 512), he_pixels[:512, :512])


def header(nbytes: int, blocksize: int, cbytes: int, flags: int = 0x01) -> bytes:
    return bytes([2, 1, flags, 1]) + struct.pack("<III", nbytes, blocksize, cbytes)


@pytest.mark.parametrize(
    ("data", "expected", "problem"),
    [
        (header(1000, 1000, 40)[:12], 1000, "shorter than a blosc header"),
        (header(1000, 1000, 4000) + bytes(24), 1000, "declares 4,000 (truncated"),
        (header(1000, 1000, 20) + bytes(24), 1000, "declares 20 (truncated or padded)"),
        (header(2**31, 2**16, 40) + bytes(24), 1000, "declaring 2,147,483,648 decoded"),
        (header(2**31, 2**16, 40) + bytes(24), None, "beyond"),
        (header(1000, 0, 40) + bytes(24), 1000, "block size 0"),
        (header(1000, 1000, 40, flags=0x03) + bytes(24), 1000, "stored (uncompressed)"),
    ],
)
def test_blosc_header_checks(data: bytes, expected: int | None, problem: str) -> None:
    found = ome_zarr.blosc_header_problem(data, expected, decoded_limit=10**6)
    assert found is not None and problem in found


def test_blosc_header_of_real_frames_passes() -> None:
    for payload in (bytes(5000), noise(64).tobytes(), b"omicslens" * 700):
        frame = numcodecs.Blosc(cname="zstd").encode(payload)
        assert ome_zarr.blosc_header_problem(frame, len(payload), 10**6) is None


# -- 2. missing chunks -----------------------------------------------------------------
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_missing_chunks_are_a_warning(
    tmp_path: Path, zarr_format: int, he_pixels: np.ndarray
) -> None:
    image = np.ascontiguousarray(he_pixels[:512, :768])
    path = write_blosc_zarr(tmp_path / "s.ome.zarr", image, zarr_format, 256, levels=2)
    first_chunk(path, zarr_format).unlink()
    with open_slide(path) as slide:
        assert slide.warnings == [
            "level 0 (array '0') lacks 1 of its 6 chunk files; those areas read as the fill "
            "value (0): chunks equal to it may have been skipped by the writer, or lost"
        ]
        assert slide.metadata["missing_chunks"] == {"0": {"missing": 1, "expected": 6}}
        info = slide.info()
        assert info["warnings"] == slide.warnings
        assert info["metadata"]["missing_chunks"] == {"0": {"missing": 1, "expected": 6}}
        assert not slide.read_region(0, 0, 256, 256).any()  # the fill value, as before
        np.testing.assert_array_equal(slide.read_region(256, 0, 256, 256), image[:256, 256:512])
    from omicslens.cli.main import format_info

    assert "warning     level 0 (array '0') lacks 1 of its 6 chunk files" in format_info(info)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_level_0_without_chunks_is_refused(
    tmp_path: Path, zarr_format: int, he_pixels: np.ndarray
) -> None:
    path = write_blosc_zarr(tmp_path / "s.ome.zarr", he_pixels[:512, :512], zarr_format, 256, 2)
    folder = path / "0"
    for chunk in [
        p for p in folder.rglob("*") if p.is_file() and p.name not in ome_zarr._METADATA_NAMES
    ]:
        chunk.unlink()
    with pytest.raises(CorruptSlideError, match=r"level 0 \(array '0'\) has none of its 4 chunk"):
        open_slide(path)


def test_chunk_count_ignores_stray_files(tmp_path: Path, he_pixels: np.ndarray) -> None:
    path = write_blosc_zarr(tmp_path / "s.ome.zarr", he_pixels[:512, :512], 2, 256)
    (path / "0" / "notes.txt").write_text("x")
    (path / "0" / "9.9.9").write_bytes(b"x")  # outside the 1 x 2 x 2 grid
    array = zarr.open_array(str(path / "0"), mode="r")
    assert ome_zarr.count_chunk_files(path, "0", array) == (4, 4)


# -- 5. chunk files that are not bounded regular files ------------------------------------
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_chunk_symlinked_to_dev_zero_is_refused(
    tmp_path: Path, zarr_format: int, he_pixels: np.ndarray
) -> None:
    """Before: zarr read /dev/zero until memory ran out (12 GB in the report)."""
    path = write_blosc_zarr(tmp_path / "s.ome.zarr", he_pixels[:512, :512], zarr_format, 256)
    chunk = first_chunk(path, zarr_format)
    chunk.unlink()
    chunk.symlink_to("/dev/zero")

    result = read_in_child(path)

    kind, message = result["region"]
    assert kind == "SlideReadError"
    assert "level 0 chunk file" in message and "is not a regular file" in message
    assert result["dask"][0] == "SlideReadError"


def test_chunk_that_is_a_fifo_is_refused_without_blocking(
    tmp_path: Path, he_pixels: np.ndarray
) -> None:
    path = write_blosc_zarr(tmp_path / "s.ome.zarr", he_pixels[:512, :512], 2, 256)
    chunk = first_chunk(path, 2)
    chunk.unlink()
    os.mkfifo(chunk)
    result = read_in_child(path, timeout=60)
    assert result["region"][0] == "SlideReadError"
    assert "is not a regular file" in result["region"][1]


def test_metadata_symlinked_to_dev_zero_is_refused_at_open(
    tmp_path: Path, he_pixels: np.ndarray
) -> None:
    path = write_blosc_zarr(tmp_path / "s.ome.zarr", he_pixels[:512, :512], 2, 256)
    (path / "0" / ".zarray").unlink()
    (path / "0" / ".zarray").symlink_to("/dev/zero")
    result = read_in_child(path)
    kind, message = result["open"]
    assert kind == "CorruptSlideError"
    assert "file '0/.zarray' is not a regular file" in message


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_oversized_chunk_file_is_refused_before_reading(
    tmp_path: Path, zarr_format: int, he_pixels: np.ndarray
) -> None:
    path = write_blosc_zarr(tmp_path / "s.ome.zarr", he_pixels[:512, :512], zarr_format, 256)
    chunk = first_chunk(path, zarr_format)
    os.truncate(chunk, 2**30)  # sparse: 1 GiB for a chunk that decodes to 192 kB
    with open_slide(path) as slide, pytest.raises(SlideReadError) as caught:
        slide.read_region(0, 0, 64, 64)
    limit = 3 * 256 * 256 + 3 * 256 * 256 // 16 + ome_zarr.CHUNK_MARGIN
    assert f"is 1,073,741,824 bytes, more than it can hold ({limit:,} bytes at most)" in str(
        caught.value
    )


# -- 3. plain images declaring more than they hold -------------------------------------
def jpeg_declaring(width: int, height: int, pad_to: int = 0) -> bytes:
    """A real 256 px JPEG whose frame header is rewritten to ``width`` x ``height``,
    optionally padded with comment segments to ``pad_to`` bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 120, 180)).save(buffer, "JPEG", quality=90)
    data = bytearray(buffer.getvalue())
    index = 2
    while data[index + 1] not in (0xC0, 0xC1, 0xC2):
        index += 2 + struct.unpack(">H", data[index + 2 : index + 4])[0]
    data[index + 5 : index + 9] = struct.pack(">HH", height, width)
    comments = b""
    while len(data) + len(comments) < pad_to:
        size = min(65533, pad_to - len(data) - len(comments))
        comments += b"\xff\xfe" + struct.pack(">H", size + 2) + bytes(size)
    return bytes(data[:2] + comments + data[2:])


def test_small_jpeg_declaring_40000_px_is_refused_at_open(tmp_path: Path) -> None:
    """The report's 23 kB file: before, the first read allocated and filled 4.5 GiB."""
    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg_declaring(40000, 40000, pad_to=23_000))
    with pytest.raises(CorruptSlideError) as caught:
        open_slide(path, mpp=0.5)
    message = str(caught.value)
    assert "JPEG header declares 40,000 x 40,000 px but the file is 23,0" in message
    assert "needs at least 3,125,000 bytes" in message


def test_jpeg_that_could_hold_its_pixels_meets_the_memory_budget(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg_declaring(40000, 40000, pad_to=3_200_000))  # passes the 1 bit/block
    with pytest.raises(
        UnsupportedSlideError,
        match=r"40,000 x 40,000 px would decode whole to 4\.5 GiB, over the 4 GiB",
    ):
        open_slide(path, mpp=0.5)


def test_memory_budget_is_configurable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, he_pixels: np.ndarray
) -> None:
    path = tmp_path / "he.jpg"
    Image.fromarray(he_pixels).save(path, quality=90)
    monkeypatch.setenv("OMICSLENS_MAX_DECODE_GIB", "0.001")
    with pytest.raises(UnsupportedSlideError, match="1,200 x 1,000 px would decode whole"):
        open_slide(path, mpp=0.5)
    for value in ("", "abc", "-1", "nan"):
        monkeypatch.setenv("OMICSLENS_MAX_DECODE_GIB", value)
        assert plain.decode_budget() == plain.DEFAULT_DECODE_BUDGET
    monkeypatch.setenv("OMICSLENS_MAX_DECODE_GIB", "0.5")
    assert plain.decode_budget() == 2**29
    with open_slide(path, mpp=0.5) as slide:
        assert slide.read_region(0, 0, 8, 8).shape == (8, 8, 3)


@pytest.mark.parametrize("progressive", [False, True])
def test_uniform_jpeg_at_its_smallest_is_not_refused(tmp_path: Path, progressive: bool) -> None:
    """The bound is a real one: even a flat grey image spends ~2 bits per block."""
    path = tmp_path / "flat.jpg"
    Image.new("L", (4800, 4096), 128).save(path, quality=1, optimize=True, progressive=progressive)
    with open_slide(path, mpp=0.5) as slide:
        assert slide.read_region(100, 100, 4, 4).max() in (127, 128, 129)


def test_png_declaring_more_than_deflate_can_hold_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (255, 255, 255)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", 40000, 40000)  # IHDR width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # keep the CRC valid
    path = tmp_path / "big.png"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptSlideError, match="PNG header declares 40,000 x 40,000 px"):
        open_slide(path, mpp=0.5)


def test_flat_png_is_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "flat.png"
    Image.new("RGB", (6000, 5000), (255, 255, 255)).save(path, optimize=True)
    with open_slide(path, mpp=0.5) as slide:
        assert slide.read_region(0, 0, 2, 2).min() == 255


# -- 4. computed pyramid levels ----------------------------------------------------------
class CountingArray:
    """A (y, x, 3) uint8 array-like that makes its pixels up and counts what is read."""

    def __init__(self, height: int, width: int) -> None:
        self.shape = (height, width, 3)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 3
        self.pixels = 0
        self.largest = 0

    def __getitem__(self, index: Any) -> np.ndarray:
        rows, cols = (range(*s.indices(n)) for s, n in zip(index[:2], self.shape, strict=False))
        self.pixels += len(rows) * len(cols)
        self.largest = max(self.largest, len(rows) * len(cols))
        value = (np.asarray(rows) % 251).astype(np.uint8)  # rows differ, columns repeat
        return np.broadcast_to(value[:, None, None], (len(rows), len(cols), 3))


def test_computed_level_read_equals_the_dask_chain() -> None:
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (4100, 5003, 3), dtype=np.uint8)
    levels = add_lazy_pyramid([NativeLevel(image, "YXS", tile=(256, 256))])
    assert [level.shape[:2] for level in levels] == [
        (4100, 5003), (2050, 2501), (1025, 1250), (512, 625),
    ]  # fmt: skip
    for level in levels[1:]:
        assert isinstance(level, ComputedLevel)
        chain = np.asarray(level.as_dask())
        height, width, _ = level.shape
        np.testing.assert_array_equal(level.read(0, height, 0, width), chain)
        np.testing.assert_array_equal(level.read(3, 101, 7, 333), chain[3:101, 7:333])


def test_computed_level_read_decodes_only_the_pixels_beneath() -> None:
    """Before: a 256 px read at level 5 of a 200,000 px file went through the dask chain,
    touched a whole 1024 px chunk of level 5 (32768^2 = 1.07 Gpx of level 0) and took
    21.7 s here with free decoding (56 s in the report, with JPEG tiles)."""
    source = CountingArray(200_000, 200_000)
    levels = add_lazy_pyramid([NativeLevel(source, "YXS", tile=(256, 256))])
    level = levels[5]
    assert level.shape[:2] == (6250, 6250)
    assert isinstance(level, ComputedLevel) and level._array is None  # no graph at open
    region = level.read(1024, 1280, 1024, 1280)
    assert source.pixels == (256 * 32) ** 2  # exactly the 8192^2 px beneath
    assert source.largest <= READ_BLOCK**2  # decoded block by block
    expected = source[1024 * 32 : 1280 * 32, 1024 * 32 : 1280 * 32]
    for _ in range(5):
        expected = halve(expected)
    np.testing.assert_array_equal(region, expected)
