"""A minimal writer for Hamamatsu NDPI-layout files (test fixture only).

No real NDPI file can be shipped here, and tifffile does not write NDPI. NDPI is a
little-endian classic TIFF whose IFD offsets are 8 bytes: the header's first-IFD
offset, and each IFD's next-IFD pointer, followed by the high 32 bits of every tag's
value/offset. Hamamatsu's private tags mark the format (65420 FileFormat, with Make)
and each page's role (65421 Magnification; -1 is the macro image). Resolution is in the
standard tags, in centimetres. Pixel data here is tiled JPEG; real scanners also write
strip JPEGs with restart markers, which tifffile handles the same way for readers.
"""

from __future__ import annotations

import struct
from pathlib import Path

import imagecodecs
import numpy as np

_SHORT, _LONG, _RATIONAL, _FLOAT, _ASCII = 3, 4, 5, 11, 2
_SIZE = {_SHORT: 2, _LONG: 4, _RATIONAL: 8, _FLOAT: 4, _ASCII: 1}


def _pack(kind: int, values: list[float] | bytes) -> bytes:
    if kind == _ASCII:
        assert isinstance(values, bytes)
        return values + b"\x00"
    fmt = {_SHORT: "H", _LONG: "I", _FLOAT: "f"}.get(kind)
    if kind == _RATIONAL:
        out = b""
        for value in values:
            out += struct.pack("<II", round(value * 1000), 1000)
        return out
    return struct.pack(f"<{len(values)}{fmt}", *values)


def write_ndpi(
    path: Path, pages: list[tuple[np.ndarray, float]], mpp: float, tile: int = 256
) -> Path:
    """Write ``pages`` (image, magnification) as an NDPI-layout file.

    Pyramid pages have positive magnification; -1.0 marks the macro image. ``mpp`` is the
    level-0 pixel size, written as pixels per centimetre on each page, scaled by size.
    """
    base_width = pages[0][0].shape[1]
    body = bytearray(b"II*\x00" + b"\x00" * 8)  # header; first IFD offset patched later
    previous_next_field: int | None = 4
    for image, magnification in pages:
        height, width = image.shape[:2]
        offsets, counts = [], []
        for y in range(0, height, tile):
            for x in range(0, width, tile):
                block = np.full((tile, tile, 3), 255, np.uint8)
                part = image[y : y + tile, x : x + tile]
                block[: part.shape[0], : part.shape[1]] = part
                encoded = imagecodecs.jpeg_encode(block, level=90)
                offsets.append(len(body))
                counts.append(len(encoded))
                body += encoded
        pixels_per_cm = 1e4 / (mpp * base_width / width)
        tags = [
            (256, _LONG, [width]),
            (257, _LONG, [height]),
            (258, _SHORT, [8, 8, 8]),
            (259, _SHORT, [7]),
            (262, _SHORT, [2]),
            (271, _ASCII, b"Hamamatsu"),
            (272, _ASCII, b"C13210"),
            (277, _SHORT, [3]),
            (282, _RATIONAL, [pixels_per_cm]),
            (283, _RATIONAL, [pixels_per_cm]),
            (296, _SHORT, [3]),
            (305, _ASCII, b"NDP.scan test fixture"),
            (322, _LONG, [tile]),
            (323, _LONG, [tile]),
            (324, _LONG, offsets),
            (325, _LONG, counts),
            (65420, _LONG, [1]),
            (65421, _FLOAT, [magnification]),
        ]
        # values that do not fit in 4 bytes go before the IFD
        entries = []
        for code, kind, values in tags:
            data = _pack(kind, values)
            count = len(data) // _SIZE[kind] if kind != _ASCII else len(data)
            if len(data) <= 4:
                entries.append((code, kind, count, data.ljust(4, b"\x00")))
            else:
                if len(body) % 2:
                    body += b"\x00"
                entries.append((code, kind, count, struct.pack("<I", len(body))))
                body += data
        if len(body) % 2:
            body += b"\x00"
        ifd_offset = len(body)
        assert previous_next_field is not None
        body[previous_next_field : previous_next_field + 8] = struct.pack("<Q", ifd_offset)
        body += struct.pack("<H", len(entries))
        for code, kind, count, value in entries:
            body += struct.pack("<HHI", code, kind, count) + value
        previous_next_field = len(body)
        body += struct.pack("<Q", 0)  # next IFD, patched by the next page
        body += b"\x00" * (4 * len(entries))  # high 32 bits of each value/offset
    path.write_bytes(bytes(body))
    return path
