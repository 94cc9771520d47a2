"""Plain raster images (JPEG, PNG): blood-smear fields, HER2ST sections, screenshots.

These formats cannot be read a tile at a time, so the image is decoded once, on first
use, and kept; the header (size, density) is read at open without decoding. Most JPEG
and PNG writers store 72 or 96 dpi, which is not a microscope scale, so in practice
these files need a resolution from the user.

Because the decode is whole, the declared size is checked at open against the file and
a memory budget (docs/reliability.md): a Huffman-coded JPEG spends at least one bit on
every 8x8 block and deflate compresses at most 1032:1, so a header claiming more pixels
than the file can encode is corrupt; and an image whose decoded pixels exceed
:func:`decode_budget` (4 GiB, ``$OMICSLENS_MAX_DECODE_GIB``) is refused before a byte is
allocated. Before this, a 23 kB JPEG declaring 40000 x 40000 px decoded to 4.5 GiB of
grey on the first read.
"""

from __future__ import annotations

import math
import os
import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from omicslens.core import resolution as res
from omicslens.core.errors import CorruptSlideError, UnsupportedSlideError
from omicslens.core.levels import NativeLevel
from omicslens.core.settings import bytes_from_environment
from omicslens.core.slide import SlideParts

# HER2ST sections are ~92 Mpx, above Pillow's default decompression-bomb guard (89 Mpx).
# We only read headers with Pillow, and the limit below still stops absurd headers.
_MAX_PIXELS = 2_000_000_000

#: Decoded bytes of level 0 above which a JPEG/PNG is refused (it is decoded whole; the
#: computed pyramid adds a third, and a conversion can briefly double the peak).
DEFAULT_DECODE_BUDGET = 4 * 2**30
#: Deflate's best possible ratio is 1032:1 (a 258-byte match in 2 bits); a little slack.
_DEFLATE_MAX_RATIO = 1100
#: SOF markers of Huffman-coded JPEG processes (arithmetic coding can spend < 1 bit/block).
_HUFFMAN_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7})
_ALL_SOF = _HUFFMAN_SOF | {0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def decode_budget() -> int:
    """Bytes one plain image may decode to: ``$OMICSLENS_MAX_DECODE_GIB`` GiB, else 4 GiB."""
    budget = bytes_from_environment(
        "OMICSLENS_MAX_DECODE_GIB", DEFAULT_DECODE_BUDGET / 2**30, 2**30
    )
    return budget if budget > 0 else DEFAULT_DECODE_BUDGET


class LazyDecodedImage:
    """Array-like that decodes the whole file on first indexing, once, thread-safely."""

    def __init__(self, path: Path, shape: tuple[int, int, int]) -> None:
        self.path = path
        self.shape = shape
        self.dtype = np.dtype(np.uint8)
        self.ndim = 3
        self._data: np.ndarray | None = None
        self._lock = threading.Lock()

    def _decoded(self) -> np.ndarray:
        with self._lock:
            if self._data is None:
                self._data = _decode(self.path, self.shape)
            return self._data

    def __getitem__(self, index: Any) -> np.ndarray:
        return self._decoded()[index]


def _decode(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    try:
        import imagecodecs

        data = np.asarray(imagecodecs.imread(str(path)))
    except Exception:  # imagecodecs missing or refusing the file: Pillow is slower but broad
        with Image.open(path) as image:
            data = np.asarray(image.convert("RGB" if shape[2] == 3 else "RGBA"))
    if data.ndim == 2:
        data = np.repeat(data[..., None], 3, axis=2)
    if data.shape != shape:
        raise CorruptSlideError(path, f"decoded image has shape {data.shape}, header said {shape}")
    return data


def open_plain(path: Path) -> SlideParts:
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, _MAX_PIXELS)
    try:
        with Image.open(path) as image:
            width, height = image.size
            mode = image.mode
            image_format = image.format or "image"
            dpi = image.info.get("dpi")
    except Exception as exc:
        raise CorruptSlideError(path, f"cannot read the image header ({exc})") from exc
    _check_not_truncated(path, image_format)
    channels = 4 if mode in ("RGBA", "LA", "PA") else 3
    check_declared_size(path, image_format, mode, width, height, channels)
    level = NativeLevel(LazyDecodedImage(path, (height, width, channels)), "YXS")
    resolution, problem = (None, None)
    if dpi:
        resolution, problem = res.from_tiff_tags(float(dpi[0]), float(dpi[1]), 2)
    if resolution is None and problem is None:
        problem = f"{image_format} files carry no microscope resolution"
    return SlideParts(
        format=image_format.lower(),
        levels=[level],
        resolution=resolution,
        resolution_problem=problem,
        metadata={"image_format": image_format, "mode": mode, "dpi": dpi},
    )


def _check_not_truncated(path: Path, image_format: str) -> None:
    """JPEG must end with an EOI marker and PNG with an IEND chunk (cheap tail read)."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 32))
        tail = handle.read()
    if image_format == "JPEG" and b"\xff\xd9" not in tail:
        raise CorruptSlideError(path, "JPEG is truncated (no end-of-image marker)")
    if image_format == "PNG" and b"IEND" not in tail:
        raise CorruptSlideError(path, "PNG is truncated (no IEND chunk)")


def check_declared_size(
    path: Path, image_format: str, mode: str, width: int, height: int, channels: int
) -> None:
    """Refuse a header the file cannot back, or a decode beyond :func:`decode_budget`."""
    if width <= 0 or height <= 0:
        return  # check_level_sizes names the empty level
    file_size = path.stat().st_size
    if image_format == "JPEG":
        frame = jpeg_frame_marker(path)
        if frame in _HUFFMAN_SOF:
            # every 8x8 block of a full-resolution component costs >= 1 bit (a DC code)
            needed = math.ceil(math.ceil(width / 8) * math.ceil(height / 8) / 8)
            if file_size < needed:
                raise CorruptSlideError(
                    path,
                    f"JPEG header declares {width:,} x {height:,} px but the file is "
                    f"{file_size:,} bytes; a Huffman-coded JPEG that size needs at least "
                    f"{needed:,} bytes (1 bit per 8x8 block): the header is corrupt",
                )
    elif image_format == "PNG":
        bits = {"RGB": 24, "RGBA": 32, "LA": 16, "I;16": 16, "I": 16}.get(mode, 1)
        raw = height * (1 + math.ceil(width * bits / 8))
        needed = math.ceil(raw / _DEFLATE_MAX_RATIO)
        if file_size < needed:
            raise CorruptSlideError(
                path,
                f"PNG header declares {width:,} x {height:,} px ({raw:,} bytes of scanlines) "
                f"but the file is {file_size:,} bytes, less than deflate's best ratio "
                f"allows ({needed:,}): the header is corrupt",
            )
    decoded = width * height * channels
    budget = decode_budget()
    if decoded > budget:
        raise UnsupportedSlideError(
            path,
            f"{image_format} of {width:,} x {height:,} px would decode whole to "
            f"{decoded / 2**30:.1f} GiB, over the {budget / 2**30:.3g} GiB budget for "
            "plain images; convert it to a tiled pyramidal TIFF or OME-Zarr, or raise "
            "$OMICSLENS_MAX_DECODE_GIB",
        )


def jpeg_frame_marker(path: Path) -> int | None:
    """The SOFn marker byte (0xC0 baseline, 0xC2 progressive, ...) of a JPEG, or None.

    Walks the marker segments from SOI to the first frame header, seeking over each
    segment's length; None if a scan starts first or the structure ends.
    """
    with open(path, "rb") as handle:
        if handle.read(2) != b"\xff\xd8":
            return None
        for _ in range(100_000):
            byte = handle.read(1)
            if byte != b"\xff":
                return None
            marker = handle.read(1)
            while marker == b"\xff":  # fill bytes
                marker = handle.read(1)
            if not marker:
                return None
            code = marker[0]
            if code == 0x01 or 0xD0 <= code <= 0xD7:
                continue  # standalone markers carry no length
            if code in (0xD9, 0xDA):
                return None  # end of image or start of scan before any frame
            length = handle.read(2)
            if len(length) < 2:
                return None
            if code in _ALL_SOF:
                return code
            handle.seek(struct.unpack(">H", length)[0] - 2, os.SEEK_CUR)
    return None
