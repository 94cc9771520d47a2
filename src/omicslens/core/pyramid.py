"""Downsampled levels for large images that are stored at one resolution only.

napari draws a multiscale image at the level that matches the zoom; without lower
levels, zooming out on a 20k px image would read every pixel on every redraw.

Two strategies, because the cost of reading level 0 differs:

* tiled files (a big single-level TIFF): each level is a 2x2 mean of the previous one
  as lazy dask operations (what napari draws), and an exact region read
  (:meth:`ComputedLevel.read`, what the CLI and the tile pipeline use) reads only the
  level-0 pixels beneath the region, in bounded blocks, and halves them ``k`` times.
  Level ``k`` still costs 4^k level-0 pixels per pixel: a 256 px read at level 5 of a
  200,000 px file decodes 8192 x 8192 px (docs/reliability.md). Through the dask chain
  the same read used to touch a whole 1024 px chunk of level 5, 32768^2 level-0 pixels
  (1.07 Gpx), which took 56 s;
* images decoded whole (JPEG, PNG): the full image is in memory after the first read, so
  each level is computed once from the one above and kept (a 92 Mpx HER2ST section adds
  a third of its size), instead of recomputing the chain on every redraw.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from omicslens.core.levels import LevelSource, NativeLevel

if TYPE_CHECKING:  # dask is imported where a lazy array is built: not for the CLI
    import dask.array as da

#: Images whose longer side exceeds this get a computed pyramid.
PYRAMID_THRESHOLD = 4096
#: The smallest computed level is no larger than this on its longer side.
SMALLEST_LEVEL = 1024
#: A direct read of a computed level decodes level 0 in blocks of about this many
#: pixels on a side, so memory stays near 4096^2 x channels whatever the level.
READ_BLOCK = 4096


def add_lazy_pyramid(levels: list[LevelSource], decoded_whole: bool = False) -> list[LevelSource]:
    """Return ``levels`` plus computed 2x downsamples when there is a single large level."""
    if len(levels) != 1:
        return levels
    base = levels[0]
    height, width, _ = base.shape
    if max(height, width) <= PYRAMID_THRESHOLD:
        return levels
    result = list(levels)
    if decoded_whole:
        parent: Any = _LevelArray(base)
        while max(parent.shape[0], parent.shape[1]) > SMALLEST_LEVEL:
            parent = CachedHalf(parent)
            result.append(NativeLevel(parent, "YXS", tile=None, compression="computed 2x2 mean"))
        return result
    computed: ComputedLevel | None = None
    while max((computed or base).shape[:2]) > SMALLEST_LEVEL:
        computed = ComputedLevel(base, computed)
        result.append(computed)
    return result


class ComputedLevel:
    """One computed 2x2-mean level over a tiled level 0 (``halvings`` steps below it).

    ``as_dask`` is the lazy 2x2-mean chain, built on first use (for a 200,000 px file
    building it takes seconds, which a CLI region read does not need); ``read`` computes
    a region straight from the level-0 pixels beneath it (the same values: each step is
    the same rounded 2x2 mean of the same pixels), block by block, without a dask graph.
    """

    tile: tuple[int, int] | None = None
    compression: str | None = "computed 2x2 mean"

    def __init__(self, base: LevelSource, parent: ComputedLevel | None = None) -> None:
        self.base = base
        self.parent = parent
        self.halvings: int = parent.halvings + 1 if parent else 1
        height, width, channels = parent.shape if parent else base.shape
        self._shape = (height // 2, width // 2, channels)
        self._array: da.Array | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.base.dtype

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        factor = 1 << self.halvings
        step = max(1, READ_BLOCK // factor)  # output pixels per block side
        out = np.empty((y1 - y0, x1 - x0, self.shape[2]), dtype=self.dtype)
        for by in range(y0, y1, step):
            ey = min(by + step, y1)
            for bx in range(x0, x1, step):
                ex = min(bx + step, x1)
                block = self.base.read(by * factor, ey * factor, bx * factor, ex * factor)
                for _ in range(self.halvings):
                    block = halve(block)
                out[by - y0 : ey - y0, bx - x0 : ex - x0] = block
        return out

    def as_dask(self) -> da.Array:
        if self._array is None:
            above = self.parent.as_dask() if self.parent else self.base.as_dask()
            self._array = _halve_lazy(above)
        return self._array


def halve(image: np.ndarray) -> np.ndarray:
    """2x2 mean of a (y, x, c) image, odd edges dropped, dtype kept (rounded half up)."""
    height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    if image.dtype == np.uint8:
        # Integer sums are ~10x faster than a float mean on 100 Mpx images.
        total = image[0:height:2, 0:width:2].astype(np.uint16)
        total += image[1:height:2, 0:width:2]
        total += image[0:height:2, 1:width:2]
        total += image[1:height:2, 1:width:2]
        total += 2
        total >>= 2
        return total.astype(np.uint8)
    blocks = image[:height, :width].reshape(height // 2, 2, width // 2, 2, image.shape[2])
    mean = blocks.mean(axis=(1, 3), dtype=np.float64)
    if np.issubdtype(image.dtype, np.integer):
        mean = np.rint(mean)
    return mean.astype(image.dtype)


class _LevelArray:
    """Adapter: a LevelSource seen as a (y, x, c) array-like."""

    def __init__(self, source: LevelSource) -> None:
        self._source = source
        self.shape = source.shape
        self.dtype = source.dtype

    def full(self) -> np.ndarray:
        return self._source.read(0, self.shape[0], 0, self.shape[1])


class CachedHalf:
    """Half-size version of a parent array, computed on first access and kept."""

    def __init__(self, parent: Any) -> None:
        self._parent = parent
        self.shape = (parent.shape[0] // 2, parent.shape[1] // 2, parent.shape[2])
        self.dtype = parent.dtype
        self.ndim = 3
        self._data: np.ndarray | None = None
        self._lock = threading.Lock()

    def full(self) -> np.ndarray:
        with self._lock:
            if self._data is None:
                self._data = halve(self._parent.full())
            return self._data

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.full()[index]


def _halve_lazy(image: da.Array) -> da.Array:
    height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    trimmed = image[:height, :width]
    # Even chunks so that each 2x2 block lies inside one chunk.
    even = tuple(max(2, c[0] // 2 * 2) for c in trimmed.chunks[:2])
    even = (*even, trimmed.shape[2])
    trimmed = trimmed.rechunk(even)
    reduced = trimmed.map_blocks(
        halve,
        chunks=(*(tuple(c // 2 for c in ch) for ch in trimmed.chunks[:2]), trimmed.shape[2]),
        dtype=image.dtype,
    )
    target = max(256, min(1024, reduced.shape[0], reduced.shape[1]))
    return reduced.rechunk((target, target, reduced.shape[2]))
