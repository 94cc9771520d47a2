"""Decode one tile of a tiled TIFF page in the calling thread, without zarr.

Why: tifffile's zarr store (``series.aszarr``) under zarr 3 serves every chunk through
zarr's one asyncio "zarr_io" thread. Reader threads that ask for tiles at the same time
wait for that one thread, so JPEG decoding never ran on more than one core, and the
event loop's futures, locks and wake-ups cost more than the decode itself on small tiles
(measured on the peer slide's 256 px JPEG tiles: 1.0 ms per tile through zarr, 0.34 ms
here; the py-spy profile of a whole-slide run had the readers waiting on "zarr_io").

Here a tile's bytes are read with ``os.pread`` (no shared file position, so no lock
between threads) and decoded by tifffile's own ``TiffPage.decode``, the same function
the zarr store calls, so the pixels are the same bit for bit (tests compare every
layout). JPEG tables, YCbCr, JPEG 2000 and the other codecs stay tifffile's business.
A tile the file does not hold (byte count 0) is zeros, as tifffile's store fills it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np


def tile_reader_for(path: Path, level: Any) -> TiffTileReader | None:
    """A reader for ``level`` (a tifffile series level) when it is one tiled, contiguous
    page in the image plane; None otherwise (strips, planar or 3-D tiles, stacks)."""
    pages = getattr(level, "pages", None)
    if pages is None or len(pages) != 1:
        return None
    page = level.keyframe
    if not page.is_tiled or page.tiledepth != 1 or page.imagedepth != 1:
        return None
    if page.planarconfig != 1 and page.samplesperpixel > 1:  # 1 = contiguous samples
        return None
    if level.axes not in ("YXS", "YX"):
        return None
    if len(page.dataoffsets) != len(page.databytecounts):
        return None
    return TiffTileReader(path, page)


class TiffTileReader:
    """``reader(cy, cx)`` -> the tile at tile row ``cy``, column ``cx`` as (h, w, s),
    cropped at the image's edges."""

    def __init__(self, path: Path, page: Any) -> None:
        self.page = page
        self.tile = (int(page.tilelength), int(page.tilewidth))
        self.size = (int(page.imagelength), int(page.imagewidth))
        self.samples = int(page.samplesperpixel)
        self.across = -(-self.size[1] // self.tile[1])
        self._offsets = page.dataoffsets
        self._counts = page.databytecounts
        self._jpegtables = page.jpegtables
        self._fd: int | None = os.open(path, os.O_RDONLY)
        self._lock = threading.Lock()  # only around closing

    def __call__(self, cy: int, cx: int) -> np.ndarray:
        index = cy * self.across + cx
        top, left = cy * self.tile[0], cx * self.tile[1]
        height = min(self.tile[0], self.size[0] - top)
        width = min(self.tile[1], self.size[1] - left)
        count = int(self._counts[index])
        if count == 0:
            return np.zeros((height, width, self.samples), dtype=self.page.dtype)
        fd = self._fd
        if fd is None:
            raise ValueError(f"{self.page.parent.filehandle.name}: the slide is closed")
        data = os.pread(fd, count, int(self._offsets[index]))
        segment, _, _ = self.page.decode(data, index, jpegtables=self._jpegtables)
        tile = np.asarray(segment).reshape(self.tile[0], self.tile[1], self.samples)
        return np.ascontiguousarray(tile[:height, :width])

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
