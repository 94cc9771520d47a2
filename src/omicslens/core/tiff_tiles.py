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

A reader can instead hand its JPEG tiles, as standalone streams (core/jpeg_streams.py),
to another decoder, a batched GPU one (:meth:`TiffTileReader.use_stream_decoder`). A
tile that decoder fails on, or returns in the wrong shape, is decoded here by tifffile
instead, counted and logged, never shown wrong or dropped.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.jpeg_streams import JpegStreamBuilder, UnsupportedJpeg

log = logging.getLogger(__name__)

StreamDecoder = Callable[[bytes], np.ndarray]


@dataclass(frozen=True)
class StreamDecodeStats:
    """Tiles a reader's stream decoder took, and those it left to tifffile (and why)."""

    decoded: int
    fallbacks: int
    last_fallback: str | None


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
        self._lock = threading.Lock()  # around closing and the stream decoder's counters
        #: this page's stream builder, or why it has none; made once (stream_builder)
        self._builder: JpegStreamBuilder | UnsupportedJpeg | None = None
        self._stream_decode: StreamDecoder | None = None
        self._decoded = self._fallbacks = 0
        self._last_fallback: str | None = None

    @property
    def tile_count(self) -> int:
        return len(self._counts)

    def __call__(self, cy: int, cx: int) -> np.ndarray:
        index = cy * self.across + cx
        top, left = cy * self.tile[0], cx * self.tile[1]
        height = min(self.tile[0], self.size[0] - top)
        width = min(self.tile[1], self.size[1] - left)
        if int(self._counts[index]) == 0:
            return np.zeros((height, width, self.samples), dtype=self.page.dtype)
        data = self.raw(index)
        tile = self._from_stream(data, index) if self._stream_decode is not None else None
        if tile is None:
            tile = self._decode_here(data, index)
        return np.ascontiguousarray(tile[:height, :width])

    def raw(self, index: int) -> bytes:
        """The bytes of tile ``index`` as the file stores them."""
        fd = self._fd
        if fd is None:
            raise ValueError(f"{self.page.parent.filehandle.name}: the slide is closed")
        return os.pread(fd, int(self._counts[index]), int(self._offsets[index]))

    def decode_here(self, index: int) -> np.ndarray:
        """Tile ``index`` whole (uncropped), decoded by tifffile in this thread."""
        return self._decode_here(self.raw(index), index)

    def stream_builder(self) -> JpegStreamBuilder:
        """This page's stream builder (made once); :class:`UnsupportedJpeg` if it has none."""
        builder = self._builder
        if builder is None:
            first = self.raw(0) if int(self._counts[0]) > 0 else b""
            try:
                builder = JpegStreamBuilder.for_page(self.page, first_tile=first)
            except UnsupportedJpeg as error:
                builder = error
            self._builder = builder
        if isinstance(builder, UnsupportedJpeg):
            raise builder
        return builder

    def stream(self, index: int) -> bytes:
        """Tile ``index`` as a standalone JPEG stream (:class:`UnsupportedJpeg` if not)."""
        return self.stream_builder().stream(self.raw(index))

    def largest_tiles(self, count: int) -> list[int]:
        """The ``count`` tiles with the most bytes: the most detail, the hardest to decode
        alike (glass compresses to almost nothing and agrees trivially)."""
        counts = np.asarray(self._counts, dtype=np.int64)
        order = np.argsort(-counts, kind="stable")[:count]
        return [int(i) for i in order if counts[i] > 0]

    def use_stream_decoder(self, decode: StreamDecoder | None) -> None:
        """Decode tiles by handing their standalone JPEG streams to ``decode`` (None: back
        to tifffile). Raises :class:`UnsupportedJpeg` when this page's tiles cannot be."""
        if decode is not None:
            self.stream_builder()
        with self._lock:
            self._stream_decode = decode

    def drop_stream_decoder(self, decode: StreamDecoder) -> None:
        """Back to tifffile if ``decode`` is still this reader's decoder (another session
        on the same slide may have installed its own since)."""
        with self._lock:
            if self._stream_decode == decode:  # ==: bound methods are new objects each time
                self._stream_decode = None

    def stream_stats(self) -> StreamDecodeStats:
        with self._lock:
            return StreamDecodeStats(self._decoded, self._fallbacks, self._last_fallback)

    def _decode_here(self, data: bytes, index: int) -> np.ndarray:
        segment, _, _ = self.page.decode(data, index, jpegtables=self._jpegtables)
        return np.asarray(segment).reshape(self.tile[0], self.tile[1], self.samples)

    def _from_stream(self, data: bytes, index: int) -> np.ndarray | None:
        """The tile from the stream decoder, or None (logged) to decode it here."""
        builder, decode = self._builder, self._stream_decode
        if not isinstance(builder, JpegStreamBuilder) or decode is None:
            return None
        try:
            tile = np.asarray(decode(builder.stream(data)))
            if tile.ndim == 2:
                tile = tile[..., None]
            expected = (self.tile[0], self.tile[1], self.samples)
            if tile.shape != expected or tile.dtype != self.page.dtype:
                raise ValueError(
                    f"decoder returned {tile.dtype} {tile.shape}, expected "
                    f"{self.page.dtype} {expected}"
                )
        except Exception as error:  # UnsupportedJpeg, a decoder error, a wrong shape
            reason = f"tile {index}: {type(error).__name__}: {error}"
            with self._lock:
                self._fallbacks += 1
                first = self._last_fallback is None
                self._last_fallback = reason
            if first:
                log.warning(
                    "%s: stream decoder failed, tile decoded on the CPU instead (%s)",
                    self.page.parent.filehandle.name,
                    reason,
                )
            return None
        with self._lock:
            self._decoded += 1
        return tile

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
