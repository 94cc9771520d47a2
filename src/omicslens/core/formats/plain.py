"""Plain raster images (JPEG, PNG): blood-smear fields, HER2ST sections, screenshots.

These formats cannot be read a tile at a time, so the image is decoded once, on first
use, and kept; the header (size, density) is read at open without decoding. Most JPEG
and PNG writers store 72 or 96 dpi, which is not a microscope scale, so in practice
these files need a resolution from the user.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from omicslens.core import resolution as res
from omicslens.core.errors import CorruptSlideError
from omicslens.core.levels import NativeLevel
from omicslens.core.slide import SlideParts

# HER2ST sections are ~92 Mpx, above Pillow's default decompression-bomb guard (89 Mpx).
# We only read headers with Pillow, and the limit below still stops absurd headers.
_MAX_PIXELS = 2_000_000_000


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
