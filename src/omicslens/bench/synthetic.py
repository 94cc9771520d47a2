"""Very large test slides written from real H&E pixels, fast and exact.

A 100k x 100k slide cannot be scanned for a benchmark, and encoding 10 gigapixels of
JPEG on a laptop takes most of an hour. This module writes one in seconds, without
inventing pixels:

* a crop of a real H&E image is mirrored into a block twice its size, which tiles the
  plane without seams (every edge meets its own mirror image);
* level 0 repeats that block over the whole slide, so it has only a few distinct tiles;
* level k is the exact 2^k downsample (repeated 2x2 mean, as ``core.pyramid.halve``) of
  level 0. A periodic image halves into a periodic image with half the period, so each
  level again has only a few distinct tiles.

Each distinct tile is JPEG-encoded once; tifffile then writes the encoded bytes over
and over. The container (tile layout, SubIFDs or Aperio pages, compression, metadata)
is what a real scanner or converter writes, so readers do exactly the work they do on a
real slide; only the content repeats (see docs/benchmarks.md for what that changes).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import imagecodecs
import numpy as np
import tifffile

from omicslens.core.pyramid import halve

Flavour = Literal["ome", "svs"]

#: Longest period of the repeated block; 8192 px is a 4096 px real crop, mirrored.
MAX_PERIOD = 8192
#: Pyramids stop at the first level whose longer side is at most this.
SMALLEST_LEVEL = 1024
#: Version of the layout written here; a benchmark regenerates files written by another.
GENERATOR_VERSION = 1

_APERIO = "Aperio Image Library v12.0.0"


@dataclass(frozen=True)
class WrittenPyramid:
    """What was written, so a caller can check the reader and report the file."""

    path: Path
    flavour: Flavour
    width: int
    height: int
    mpp: float
    tile: int
    quality: int
    level_factor: int
    period: int
    crop_origin: tuple[int, int]
    level_shapes: list[tuple[int, int]]
    halvings: list[int]
    distinct_tiles: list[int]
    tile_counts: list[int]
    file_bytes: int
    bigtiff: bool
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (paths as strings, shapes as lists)."""
        return {
            "path": str(self.path),
            "flavour": self.flavour,
            "width": self.width,
            "height": self.height,
            "mpp": self.mpp,
            "tile": self.tile,
            "quality": self.quality,
            "level_factor": self.level_factor,
            "period": self.period,
            "crop_origin": list(self.crop_origin),
            "level_shapes": [list(s) for s in self.level_shapes],
            "halvings": self.halvings,
            "distinct_tiles": self.distinct_tiles,
            "tile_counts": self.tile_counts,
            "file_bytes": self.file_bytes,
            "bigtiff": self.bigtiff,
            "seconds": self.seconds,
        }


# -- geometry ---------------------------------------------------------------------------
def pyramid_shapes(
    width: int, height: int, level_factor: int = 2, smallest: int = SMALLEST_LEVEL
) -> tuple[list[tuple[int, int]], list[int]]:
    """(height, width) of every level and its number of 2x halvings from level 0.

    Each halving drops an odd last row/column, as ``halve`` does, so a level's shape is
    exactly the shape of the downsampled level 0; levels stop once the longer side is at
    most ``smallest``.
    """
    if level_factor < 2 or level_factor & (level_factor - 1):
        raise ValueError(f"level_factor must be a power of two >= 2, got {level_factor}")
    steps = int(math.log2(level_factor))
    shapes, halvings = [(height, width)], [0]
    while max(shapes[-1]) > smallest:
        h, w = shapes[-1]
        h, w = h >> steps, w >> steps
        if min(h, w) < 1:
            break
        shapes.append((h, w))
        halvings.append(halvings[-1] + steps)
    return shapes, halvings


def choose_period(source_shape: tuple[int, ...], max_period: int = MAX_PERIOD) -> int:
    """Largest power of two <= ``max_period`` whose half fits inside the source image."""
    fits = min(source_shape[0], source_shape[1])
    if fits < 16:
        raise ValueError(f"source image {source_shape[:2]} is too small to build a mosaic")
    return 2 ** int(math.log2(min(max_period, 2 * fits)))


def tissue_window(image: np.ndarray, size: int, step: int = 16) -> tuple[int, int]:
    """Top-left (y, x) of the ``size`` square with the most tissue in ``image``.

    Slides are mostly glass; a benchmark on glass would measure how fast a JPEG decoder
    skips white. Tissue is taken as pixels darker than 200 (mean of RGB), found on a
    ``step``-subsampled copy with a summed-area table.
    """
    h, w = image.shape[:2]
    if size > min(h, w):
        raise ValueError(f"window {size} does not fit in an image of {h}x{w}")
    small = image[::step, ::step, :3].mean(axis=2) < 200
    table = np.pad(small.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    k = max(1, size // step)
    limit_y, limit_x = (h - size) // step, (w - size) // step
    sums = (
        table[k : k + limit_y + 1, k : k + limit_x + 1]
        - table[: limit_y + 1, k : k + limit_x + 1]
        - table[k : k + limit_y + 1, : limit_x + 1]
        + table[: limit_y + 1, : limit_x + 1]
    )
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y) * step, int(x) * step


def mirror_block(crop: np.ndarray) -> np.ndarray:
    """2x larger block that tiles the plane without seams (crop, flipped right and down)."""
    top = np.concatenate([crop, crop[:, ::-1]], axis=1)
    return np.ascontiguousarray(np.concatenate([top, top[::-1]], axis=0))


def periodic_block(source_image: np.ndarray, period: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The repeated ``period`` x ``period`` block and the origin of its real crop."""
    if source_image.ndim != 3 or source_image.shape[2] < 3 or source_image.dtype != np.uint8:
        raise ValueError("source_image must be an RGB(A) uint8 array (height, width, channels)")
    half = period // 2
    y, x = tissue_window(source_image, half)
    crop = source_image[y : y + half, x : x + half, :3]
    return mirror_block(crop), (y, x)


def wrapped(block: np.ndarray, y: int, x: int, height: int, width: int) -> np.ndarray:
    """A ``height`` x ``width`` window of the plane tiled with ``block``, from (y, x)."""
    rows = (y + np.arange(height)) % block.shape[0]
    cols = (x + np.arange(width)) % block.shape[1]
    return np.ascontiguousarray(block.take(rows, axis=0).take(cols, axis=1))


# -- tiles ------------------------------------------------------------------------------
def encode_tile(pixels: np.ndarray, quality: int) -> bytes:
    """One self-contained JPEG tile, encoded as tifffile would (YCbCr, 4:2:0)."""
    return bytes(
        imagecodecs.jpeg_encode(
            pixels,
            level=quality,
            colorspace="RGB",
            outcolorspace="YCBCR",
            subsampling=(2, 2),
        )
    )


@dataclass
class _LevelTiles:
    """A level's tile grid as keys into a small table of encoded distinct tiles."""

    shape: tuple[int, int]
    tile: int
    row_keys: list[int]
    col_keys: list[int]
    encoded: dict[tuple[int, int], bytes]

    @classmethod
    def build(
        cls, block: np.ndarray, shape: tuple[int, int], tile: int, quality: int
    ) -> _LevelTiles:
        period_y, period_x = block.shape[:2]
        rows = [(i * tile) % period_y for i in range(math.ceil(shape[0] / tile))]
        cols = [(j * tile) % period_x for j in range(math.ceil(shape[1] / tile))]
        encoded = {
            (ky, kx): encode_tile(wrapped(block, ky, kx, tile, tile), quality)
            for ky in sorted(set(rows))
            for kx in sorted(set(cols))
        }
        return cls(shape, tile, rows, cols, encoded)

    @property
    def count(self) -> int:
        return len(self.row_keys) * len(self.col_keys)

    @property
    def data_bytes(self) -> int:
        row_counts: dict[int, int] = {}
        for key in self.row_keys:
            row_counts[key] = row_counts.get(key, 0) + 1
        col_counts: dict[int, int] = {}
        for key in self.col_keys:
            col_counts[key] = col_counts.get(key, 0) + 1
        return sum(
            len(data) * row_counts[ky] * col_counts[kx] for (ky, kx), data in self.encoded.items()
        )

    def __iter__(self) -> Iterator[bytes]:
        for ky in self.row_keys:
            for kx in self.col_keys:
                yield self.encoded[(ky, kx)]


def _level_tiles(
    block: np.ndarray,
    shapes: list[tuple[int, int]],
    halvings: list[int],
    tile: int,
    quality: int,
) -> list[_LevelTiles]:
    """Downsample the block once per level and encode that level's distinct tiles."""
    total = halvings[-1]
    if block.shape[0] % (2**total) or block.shape[1] % (2**total):
        raise ValueError(
            f"period {block.shape[0]} is not divisible by 2**{total}: the downsampled levels "
            "would not be exactly periodic (use a larger period or fewer levels)"
        )
    levels, current, done = [], block, 0
    for shape, needed in zip(shapes, halvings, strict=True):
        while done < needed:
            current, done = halve(current), done + 1
        levels.append(_LevelTiles.build(current, shape, tile, quality))
    return levels


# -- writers ----------------------------------------------------------------------------
def _common(tile: int) -> dict[str, Any]:
    return {"dtype": "uint8", "tile": (tile, tile), "compression": "jpeg", "photometric": "rgb"}


def _write_ome(path: Path, levels: list[_LevelTiles], mpp: float, tile: int) -> bool:
    """OME-TIFF, pyramid in SubIFDs (the layout of bioformats2raw/raw2ometiff and QuPath)."""
    h, w = levels[0].shape
    metadata = {
        "axes": "YXS",
        "PhysicalSizeX": mpp,
        "PhysicalSizeY": mpp,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeYUnit": "µm",
        "Name": "periodic H&E",
    }
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as writer:
        writer.write(
            iter(levels[0]),
            shape=(h, w, 3),
            subifds=len(levels) - 1,
            metadata=metadata,
            **_common(tile),
        )
        for level in levels[1:]:
            writer.write(iter(level), shape=(*level.shape, 3), subfiletype=1, **_common(tile))
    return True


def _write_svs(
    path: Path,
    levels: list[_LevelTiles],
    mpp: float,
    tile: int,
    quality: int,
    thumbnail: np.ndarray,
    label: np.ndarray,
) -> bool:
    """Aperio layout: tiled baseline, stripped thumbnail, reduced levels, label, macro.

    Classic TIFF like Aperio's own files unless the data exceeds 4 GiB (then BigTIFF, as
    newer Aperio scanners write).
    """
    h, w = levels[0].shape
    data_bytes = sum(level.data_bytes for level in levels)
    bigtiff = data_bytes > 2**32 - 2**28
    header = f"{_APERIO}\n{w}x{h} [0,0 {w}x{h}] ({tile}x{tile})"
    fields = f"JPEG/RGB Q={quality}|AppMag = 20|MPP = {mpp:.4f}"
    with tifffile.TiffWriter(path, bigtiff=bigtiff) as writer:
        writer.write(
            iter(levels[0]),
            shape=(h, w, 3),
            description=f"{header} {fields}",
            metadata=None,
            **_common(tile),
        )
        th, tw = thumbnail.shape[:2]
        writer.write(
            thumbnail,
            compression="jpeg",
            photometric="rgb",
            description=f"{_APERIO}\n{w}x{h} -> {tw}x{th} - |AppMag = 20|MPP = {mpp:.4f}",
            metadata=None,
        )
        for level in levels[1:]:
            lh, lw = level.shape
            writer.write(
                iter(level),
                shape=(lh, lw, 3),
                description=f"{header} -> {lw}x{lh} JPEG/RGB Q={quality}",
                metadata=None,
                **_common(tile),
            )
        lh, lw = label.shape[:2]
        writer.write(
            label,
            compression="lzw",
            photometric="rgb",
            subfiletype=1,
            description=f"{_APERIO}\nlabel {lw}x{lh}",
            metadata=None,
        )
        writer.write(
            thumbnail,
            compression="jpeg",
            photometric="rgb",
            subfiletype=9,
            description=f"{_APERIO}\nmacro {tw}x{th}",
            metadata=None,
        )
    return bigtiff


def _small_images(block: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A thumbnail (nearest-neighbour, at most 768 px) and a label-sized crop of real pixels.

    Aperio files carry both; they cost the reader a page each at open, so they belong in
    a file used to time opening.
    """
    step = max(1, math.ceil(max(width, height) / 768))
    rows = (np.arange(max(1, height // step)) * step) % block.shape[0]
    cols = (np.arange(max(1, width // step)) * step) % block.shape[1]
    thumbnail = np.ascontiguousarray(block.take(rows, axis=0).take(cols, axis=1))
    label = np.ascontiguousarray(block[: min(256, block.shape[0]), : min(512, block.shape[1])])
    return thumbnail, label


def write_periodic_pyramid(
    path: str | Path,
    source_image: np.ndarray,
    size: tuple[int, int] = (100_000, 100_000),
    mpp: float = 0.5,
    tile: int = 512,
    quality: int = 80,
    flavour: Flavour = "ome",
    *,
    level_factor: int = 2,
    period: int | None = None,
    smallest: int = SMALLEST_LEVEL,
) -> WrittenPyramid:
    """Write a ``size`` = (width, height) pyramidal JPEG slide built from ``source_image``.

    ``source_image`` is real H&E, (height, width, 3) uint8; the tissue-richest square of
    half the ``period`` (default: the largest power of two up to 8192 that fits) is
    mirrored into the repeated block. ``flavour`` "ome" writes an OME-TIFF with a SubIFD
    pyramid (2x steps by default); "svs" an Aperio-like file (Aperio uses 4x steps, pass
    ``level_factor=4``). Returns what was written, including the time it took.
    """
    start = time.perf_counter()
    path = Path(path)
    width, height = int(size[0]), int(size[1])
    if tile % 16:
        raise ValueError(f"JPEG tiles with 4:2:0 subsampling must be a multiple of 16, got {tile}")
    period = period or choose_period(source_image.shape)
    block, origin = periodic_block(source_image, period)
    shapes, halvings = pyramid_shapes(width, height, level_factor, smallest)
    levels = _level_tiles(block, shapes, halvings, tile, quality)
    path.parent.mkdir(parents=True, exist_ok=True)
    if flavour == "ome":
        bigtiff = _write_ome(path, levels, mpp, tile)
    elif flavour == "svs":
        thumbnail, label = _small_images(block, width, height)
        bigtiff = _write_svs(path, levels, mpp, tile, quality, thumbnail, label)
    else:
        raise ValueError(f"flavour must be 'ome' or 'svs', got {flavour!r}")
    return WrittenPyramid(
        path=path,
        flavour=flavour,
        width=width,
        height=height,
        mpp=mpp,
        tile=tile,
        quality=quality,
        level_factor=level_factor,
        period=period,
        crop_origin=origin,
        level_shapes=shapes,
        halvings=halvings,
        distinct_tiles=[len(level.encoded) for level in levels],
        tile_counts=[level.count for level in levels],
        file_bytes=path.stat().st_size,
        bigtiff=bigtiff,
        seconds=time.perf_counter() - start,
    )


def expected_region(
    block: np.ndarray, x: int, y: int, width: int, height: int, halvings: int
) -> np.ndarray:
    """Exact (pre-JPEG) pixels of a level region: level 0 window, halved ``halvings`` times.

    The test oracle: what any level of a written slide must show, up to codec error.
    """
    scale = 2**halvings
    pixels = wrapped(block, y * scale, x * scale, height * scale, width * scale)
    for _ in range(halvings):
        pixels = halve(pixels)
    return pixels
