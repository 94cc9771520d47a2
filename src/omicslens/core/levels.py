"""Pyramid levels: a uniform (y, x, channel) view over each format's native arrays.

Two consumers read pixels, with different needs:

* napari wants a lazy array per level (``as_dask``); chunks are whole multiples of the
  file's tiles, about 1024 px, so a screenful costs a handful of dask tasks rather than
  hundreds.
* the tile pipeline and the CLI read exact rectangles (``read``). Those go straight to the
  zarr store (or whatever native array backs the level), skipping dask's graph
  construction, which costs ~40% on a 1024 px read (measured in docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from omicslens.core.chunk_cache import new_token, shared_cache

if TYPE_CHECKING:  # dask is imported where a lazy array is built: not for the CLI
    import dask.array as da

#: Target edge of a dask chunk handed to napari, in pixels.
DASK_CHUNK_TARGET = 1024


class LevelSource(Protocol):
    """One resolution level: shape, lazy view, and exact region reads in (y, x, c)."""

    @property
    def shape(self) -> tuple[int, int, int]: ...

    @property
    def dtype(self) -> np.dtype[Any]: ...

    tile: tuple[int, int] | None
    compression: str | None

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray: ...

    def as_dask(self) -> da.Array: ...


def _channel_axis(axes: str) -> str | None:
    for name in ("S", "C"):
        if name in axes:
            return name
    return None


@dataclass
class NativeLevel:
    """A level backed by an indexable native array with named axes (tifffile convention).

    ``axes`` uses tifffile's letters: Y and X are the image plane, S samples (RGB) or C
    channels; any other axis (T, Z, I, ...) is fixed at index 0, because a slide viewer
    shows one plane.
    """

    array: Any
    axes: str
    tile: tuple[int, int] | None = None
    compression: str | None = None
    #: read whole chunks through the shared decoded-tile cache (core/chunk_cache.py)
    cache_chunks: bool = True
    #: ``(cy, cx) -> tile`` decoding a chunk in the calling thread (core/tiff_tiles.py);
    #: used for cached chunks when the chunks are the file's tiles, else zarr is read
    tile_reader: Any = None
    _token: int = field(default_factory=new_token, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if "Y" not in self.axes or "X" not in self.axes:
            raise ValueError(f"expected an array with Y and X axes, got axes {self.axes!r}")
        if len(self.axes) != len(self.array.shape):
            raise ValueError(
                f"axes {self.axes!r} do not match array shape {tuple(self.array.shape)}"
            )
        self._channel = _channel_axis(self.axes)
        kept = [a for a in self.axes if a in ("Y", "X") or a == self._channel]
        order = ["Y", "X"] + ([self._channel] if self._channel else [])
        self._transpose = tuple(kept.index(a) for a in order)
        self._chunk_yx = _chunk_plane(self.array, self.axes) if self.cache_chunks else None

    @property
    def shape(self) -> tuple[int, int, int]:
        size = dict(zip(self.axes, self.array.shape, strict=True))
        channels = size[self._channel] if self._channel else 1
        return int(size["Y"]), int(size["X"]), int(channels)

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self.array.dtype)

    def _index(self, rows: slice, cols: slice) -> tuple[Any, ...]:
        index: list[Any] = []
        for axis in self.axes:
            if axis == "Y":
                index.append(rows)
            elif axis == "X":
                index.append(cols)
            elif axis == self._channel:
                index.append(slice(None))
            else:
                index.append(0)
        return tuple(index)

    def _to_yxc(self, block: Any) -> Any:
        block = block.transpose(self._transpose)
        if self._channel is None:
            block = block[..., None]
        return block

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        if self._chunk_yx is None:
            return self._read_direct(y0, y1, x0, x1)
        chunk_h, chunk_w = self._chunk_yx
        height, width, channels = self.shape
        out = np.empty((y1 - y0, x1 - x0, channels), dtype=self.dtype)
        cache = shared_cache()
        direct = self.tile_reader is not None and tuple(self.tile_reader.tile) == (chunk_h, chunk_w)
        for cy in range(y0 // chunk_h, (y1 - 1) // chunk_h + 1):
            top = cy * chunk_h
            bottom = min(height, top + chunk_h)
            for cx in range(x0 // chunk_w, (x1 - 1) // chunk_w + 1):
                left = cx * chunk_w
                right = min(width, left + chunk_w)
                load = (
                    partial(self.tile_reader, cy, cx)
                    if direct
                    else partial(self._read_direct, top, bottom, left, right)
                )
                tile = cache.get((self._token, cy, cx), load)
                ty0, ty1 = max(y0, top), min(y1, bottom)
                tx0, tx1 = max(x0, left), min(x1, right)
                out[ty0 - y0 : ty1 - y0, tx0 - x0 : tx1 - x0] = tile[
                    ty0 - top : ty1 - top, tx0 - left : tx1 - left
                ]
        return out

    def _read_direct(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        block = np.asarray(self.array[self._index(slice(y0, y1), slice(x0, x1))])
        return np.ascontiguousarray(self._to_yxc(block))

    def as_dask(self) -> da.Array:
        import dask.array as da

        chunks = []
        for axis, size in zip(self.axes, self.array.shape, strict=True):
            if axis in ("Y", "X"):
                native = _native_chunk(self.array, self.axes.index(axis), self.tile, axis)
                chunks.append(min(int(size), _chunk_multiple(native)))
            elif axis == self._channel:
                chunks.append(int(size))
            else:
                chunks.append(1)
        if hasattr(self.array, "store") and hasattr(self.array, "chunks"):
            lazy = da.from_zarr(self.array, chunks=tuple(chunks))
        else:
            # An explicit meta stops dask from slicing the array to infer it, which for a
            # lazily decoded JPEG would decode the whole image at open time.
            meta = np.empty((0,) * len(self.array.shape), dtype=self.dtype)
            lazy = da.from_array(
                self.array, chunks=tuple(chunks), asarray=True, lock=False, meta=meta
            )
        return self._to_yxc(lazy[self._index(slice(None), slice(None))])


@dataclass
class DaskLevel:
    """A level that is already a lazy (y, x, c) dask array (e.g. a computed downsample)."""

    array: da.Array
    tile: tuple[int, int] | None = None
    compression: str | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        y, x, c = self.array.shape
        return int(y), int(x), int(c)

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self.array.dtype)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return np.asarray(self.array[y0:y1, x0:x1].compute(scheduler="threads"))

    def as_dask(self) -> da.Array:
        return self.array


def _chunk_plane(array: Any, axes: str) -> tuple[int, int] | None:
    """(rows, cols) of a zarr array's chunks in the image plane, or None when the array
    is not chunked (a decoded image, a numpy array) or a chunk is the whole plane."""
    chunks = getattr(array, "chunks", None)
    if not hasattr(array, "store") or not isinstance(chunks, tuple):
        return None
    if len(chunks) != len(axes) or not all(isinstance(c, int) and c > 0 for c in chunks):
        return None
    rows, cols = chunks[axes.index("Y")], chunks[axes.index("X")]
    shape = array.shape
    if rows >= shape[axes.index("Y")] and cols >= shape[axes.index("X")]:
        return None
    return int(rows), int(cols)


def _native_chunk(array: Any, axis_index: int, tile: tuple[int, int] | None, axis: str) -> int:
    chunks = getattr(array, "chunks", None)
    if isinstance(chunks, tuple) and len(chunks) > axis_index:
        value = chunks[axis_index]
        if isinstance(value, int):
            return value
    if tile:
        return tile[0] if axis == "Y" else tile[1]
    return 256


def _chunk_multiple(native: int) -> int:
    """Largest multiple of the native chunk edge that stays near ``DASK_CHUNK_TARGET``."""
    native = max(1, int(native))
    return native * max(1, round(DASK_CHUNK_TARGET / native))
