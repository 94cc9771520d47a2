"""The ``Slide``: one opened image, its pyramid, its physical scale and its metadata.

A ``Slide`` is what every consumer (napari reader, CLI, tile pipeline) works with. It is
lazy: opening decodes at most one small tile (to prove the pixel data is readable);
pixels are decoded when a region or a dask chunk is asked for.

Coordinates follow the slide convention used by OpenSlide and QuPath: ``x`` is the column,
``y`` the row, level-0 pixels unless a level is named. Arrays are (y, x, channel).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from omicslens.core.errors import CorruptSlideError, SlideReadError
from omicslens.core.levels import LevelSource
from omicslens.core.resolution import Resolution

if TYPE_CHECKING:  # dask is imported where a lazy array is built: not for the CLI
    import dask.array as da

#: Declared sizes beyond these are refused before anything is allocated: no slide scanner
#: writes a side over ten million pixels (a 25 mm slide at 0.25 um/px is 100,000 px), and a
#: header that claims 4294967295 x 4294967295 px is a corrupt file, not an image.
MAX_SIDE_PX = 10**7
MAX_LEVEL0_BYTES = 2**40


def check_level_sizes(path: Path, levels: list[Any]) -> None:
    """Refuse empty or absurd declared level shapes (CorruptSlideError naming the size)."""
    if not levels:
        raise CorruptSlideError(path, "the file declares no image level")
    for index, level in enumerate(levels):
        height, width, channels = level.shape
        if height <= 0 or width <= 0 or channels <= 0:
            raise CorruptSlideError(
                path,
                f"level {index} declares an empty image ({width} x {height} px, "
                f"{channels} channels)",
            )
    height, width, channels = levels[0].shape
    nbytes = height * width * channels * np.dtype(levels[0].dtype).itemsize
    if max(height, width) > MAX_SIDE_PX or nbytes > MAX_LEVEL0_BYTES:
        raise CorruptSlideError(
            path,
            f"declared size {width:,} x {height:,} px x {channels} channels "
            f"({nbytes / 2**40:.3g} TiB uncompressed) is beyond any real slide; "
            "the header is corrupt",
        )


@dataclass
class SlideParts:
    """What a format reader found in a file, before the resolution policy is applied.

    ``resolution`` is None when the file states none; ``resolution_problem`` then says
    what, if anything, was there and why it was not usable, and ``resolution_hint``
    carries related facts (e.g. the objective magnification) for the error message.
    ``warnings`` are problems that do not stop the slide from opening (e.g. missing zarr
    chunks); they reach ``Slide.warnings`` and ``info()["warnings"]``.
    """

    format: str
    levels: list[LevelSource]
    resolution: Resolution | None
    resolution_problem: str | None = None
    resolution_hint: str | None = None
    objective_power: float | None = None
    associated: dict[str, Callable[[], np.ndarray]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    close: Callable[[], None] | None = None
    warnings: list[str] = field(default_factory=list)


class Slide:
    """An opened slide. Create it with :func:`omicslens.core.open_slide`."""

    def __init__(self, path: Path, parts: SlideParts, resolution: Resolution) -> None:
        if not parts.levels:
            raise ValueError("a slide needs at least one level")
        self.path = path
        self.format = parts.format
        self.resolution = resolution
        self.objective_power = parts.objective_power
        self.metadata: dict[str, Any] = parts.metadata
        #: Problems that did not stop the slide from opening, one sentence each.
        self.warnings: list[str] = list(parts.warnings)
        self._levels = parts.levels
        self._associated = parts.associated
        self._close = parts.close
        self._dask_levels: list[da.Array] | None = None

    # -- geometry ---------------------------------------------------------------------
    @property
    def mpp_x(self) -> float:
        return self.resolution.mpp_x

    @property
    def mpp_y(self) -> float:
        return self.resolution.mpp_y

    @property
    def mpp(self) -> float:
        """Mean level-0 pixel size in micrometres."""
        return self.resolution.mpp

    @property
    def level_sources(self) -> list[LevelSource]:
        """The pyramid's levels as read (full resolution first); for readers that need
        more than pixels, such as a level's TIFF tile reader."""
        return list(self._levels)

    @property
    def level_count(self) -> int:
        return len(self._levels)

    @property
    def level_shapes(self) -> list[tuple[int, int]]:
        """(height, width) of every level, level 0 first."""
        return [(s.shape[0], s.shape[1]) for s in self._levels]

    @property
    def dimensions(self) -> tuple[int, int]:
        """(width, height) of level 0, OpenSlide order."""
        height, width = self.level_shapes[0]
        return width, height

    @property
    def channels(self) -> int:
        return self._levels[0].shape[2]

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._levels[0].dtype

    @property
    def is_rgb(self) -> bool:
        return self.channels in (3, 4) and self.dtype == np.uint8

    @property
    def downsamples(self) -> list[float]:
        """Level-0 size divided by each level's size (mean of x and y)."""
        h0, w0 = self.level_shapes[0]
        return [((w0 / w) + (h0 / h)) / 2.0 for h, w in self.level_shapes]

    def level_mpp(self, level: int) -> tuple[float, float]:
        """Pixel size (x, y) in micrometres at ``level``, from the actual level shapes."""
        h0, w0 = self.level_shapes[0]
        h, w = self.level_shapes[level]
        return self.mpp_x * w0 / w, self.mpp_y * h0 / h

    def best_level_for_downsample(self, downsample: float) -> int:
        """The most downsampled level whose downsample does not exceed ``downsample``.

        Reading from a level at least as fine as needed and resampling down keeps detail
        that reading a coarser level and upsampling would lose.
        """
        best = 0
        for index, value in enumerate(self.downsamples):
            if value <= downsample * (1 + 1e-6):
                best = index
        return best

    @property
    def tile_sizes(self) -> list[tuple[int, int] | None]:
        return [s.tile for s in self._levels]

    @property
    def compressions(self) -> list[str | None]:
        return [s.compression for s in self._levels]

    # -- pixels -----------------------------------------------------------------------
    @property
    def levels(self) -> list[da.Array]:
        """Lazy (y, x, c) dask arrays, level 0 first: the napari multiscale list.

        The arrays read through the file handle this Slide owns, which cannot be
        pickled: compute them with dask's threaded scheduler (napari does), or reopen the
        slide inside each worker process.
        """
        if self._dask_levels is None:
            try:
                self._dask_levels = [source.as_dask() for source in self._levels]
            except Exception as exc:  # odd chunk metadata: say which file
                raise SlideReadError(
                    self.path, f"cannot build the lazy levels: {type(exc).__name__}: {exc}"
                ) from exc
        return self._dask_levels

    def read_region(
        self,
        x: int,
        y: int,
        width: int,
        height: int,
        level: int = 0,
        fill: int | float | None = None,
    ) -> np.ndarray:
        """Pixels of a rectangle in ``level`` coordinates, shape (height, width, channels).

        Parts of the rectangle outside the image are filled with ``fill`` (default white,
        255, for 8-bit images, which is what glass looks like; 0 otherwise), so tiles on
        the slide border have the same shape as every other tile.
        """
        if width <= 0 or height <= 0:
            raise ValueError(f"region size must be positive, got {width}x{height}")
        if not 0 <= level < self.level_count:
            raise IndexError(f"level {level} out of range: this slide has {self.level_count}")
        source = self._levels[level]
        level_h, level_w, channels = source.shape
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(level_w, x + width), min(level_h, y + height)
        inside = x0 < x1 and y0 < y1
        if inside and (x0, y0, x1, y1) == (x, y, x + width, y + height):
            return self._read(source, level, y0, y1, x0, x1)
        if fill is None:
            fill = 255 if source.dtype == np.uint8 else 0
        out = np.full((height, width, channels), fill, dtype=source.dtype)
        if inside:
            out[y0 - y : y1 - y, x0 - x : x1 - x] = self._read(source, level, y0, y1, x0, x1)
        return out

    def _read(
        self, source: LevelSource, level: int, y0: int, y1: int, x0: int, x1: int
    ) -> np.ndarray:
        try:
            return source.read(y0, y1, x0, x1)
        except SlideReadError:  # already names the file and the part (e.g. a zarr chunk)
            raise
        except Exception as exc:  # a decode error deep in a codec: say where it happened
            raise SlideReadError(
                self.path,
                f"cannot read level {level} region x={x0}..{x1}, y={y0}..{y1}: "
                f"{type(exc).__name__}: {exc}",
            ) from exc

    def thumbnail(self, max_size: int = 1024) -> np.ndarray:
        """A downsampled overview no larger than ``max_size`` on its longer side.

        Reads the smallest level that is still at least ``max_size`` on its longer side
        (or the smallest level, if all are smaller), then subsamples.
        """
        level = self.level_count - 1
        for index, (h, w) in enumerate(self.level_shapes):
            if max(h, w) >= max_size:
                level = index
        h, w = self.level_shapes[level]
        pixels = self.read_region(0, 0, w, h, level=level)
        step = max(1, math.ceil(max(h, w) / max_size))
        return pixels[::step, ::step]

    # -- associated images and metadata -------------------------------------------------
    @property
    def associated_images(self) -> list[str]:
        """Names of the images stored beside the pyramid: 'label', 'macro', 'thumbnail'."""
        return sorted(self._associated)

    def associated_image(self, name: str) -> np.ndarray:
        """Decode one associated image, (y, x, c)."""
        try:
            loader = self._associated[name]
        except KeyError:
            available = ", ".join(self.associated_images) or "none"
            raise KeyError(
                f"{self.path}: no associated image {name!r} (available: {available})"
            ) from None
        try:
            return loader()
        except Exception as exc:
            raise SlideReadError(
                self.path, f"cannot read associated image {name!r}: {exc}"
            ) from exc

    def info(self) -> dict[str, Any]:
        """A JSON-serialisable summary (what ``omicslens info --json`` prints).

        Raises :class:`SlideReadError` (naming the file) if odd metadata breaks the summary.
        """
        try:
            return self._info()
        except Exception as exc:
            raise SlideReadError(
                self.path, f"cannot summarise the slide: {type(exc).__name__}: {exc}"
            ) from exc

    def _info(self) -> dict[str, Any]:
        levels = []
        for index, ((h, w), down, tile, comp) in enumerate(
            zip(
                self.level_shapes, self.downsamples, self.tile_sizes, self.compressions, strict=True
            )
        ):
            mpp_x, mpp_y = self.level_mpp(index)
            levels.append(
                {
                    "level": index,
                    "width": w,
                    "height": h,
                    "downsample": round(down, 4),
                    "mpp_x": round(mpp_x, 6),
                    "mpp_y": round(mpp_y, 6),
                    "tile_width": tile[1] if tile else None,
                    "tile_height": tile[0] if tile else None,
                    "compression": comp,
                }
            )
        return {
            "path": str(self.path),
            "format": self.format,
            "width": self.dimensions[0],
            "height": self.dimensions[1],
            "channels": self.channels,
            "dtype": str(self.dtype),
            "mpp_x": self.mpp_x,
            "mpp_y": self.mpp_y,
            "mpp_source": self.resolution.source,
            "objective_power": self.objective_power,
            "levels": levels,
            "associated_images": {name: None for name in self.associated_images},
            "warnings": list(self.warnings),
            "metadata": _jsonable(self.metadata),
        }

    # -- lifetime ---------------------------------------------------------------------
    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None
        self._closed = True

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran (the file handles are released)."""
        return getattr(self, "_closed", False)

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.dimensions
        return (
            f"<Slide {self.path.name!r} {self.format} {w}x{h} levels={self.level_count} "
            f"mpp={self.mpp_x:.4g}x{self.mpp_y:.4g}>"
        )


def _jsonable(value: Any, depth: int = 0) -> Any:
    """Metadata as JSON: numbers, strings, lists, dicts; long arrays summarised."""
    if depth > 8:
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        if value.size > 64:
            return f"<array shape={value.shape} dtype={value.dtype}>"
        return value.tolist()
    if isinstance(value, (list, tuple)):
        if len(value) > 64:
            return f"<{len(value)} values>"
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value
