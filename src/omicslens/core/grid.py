"""The tile grid a model sees: square patches of ``patch_px`` pixels at ``spacing_um``.

A model trained on 224 px patches at 0.5 um/px must see 112 um of tissue per patch
whatever the scanner's pixel size, so the grid is defined in micrometres and mapped onto
level-0 pixels with the slide's own mpp. Tile sizes in level-0 pixels are therefore
fractional (224 * 0.5 / 0.499 = 224.45 px); tile ``(row, col)`` covers
``[col * tile_w, (col + 1) * tile_w)`` in x. The last row and column may run past the
slide edge; those parts are read as glass (white).

Tiles are addressed by a flat index ``row * cols + col`` so that sets of tiles are plain
integer arrays (cheap to sort, intersect and ship between threads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from omicslens.core.slide import Slide


@dataclass(frozen=True)
class TileGrid:
    """A regular grid of model patches over a slide's level-0 plane."""

    width: int  # slide level-0 width in pixels
    height: int  # slide level-0 height in pixels
    mpp_x: float  # slide level-0 um/px
    mpp_y: float
    patch_px: int  # model input size in model pixels
    spacing_um: float  # model um/px
    #: Grid cell side in um when a model sees context around the tile it predicts (its
    #: input window, ``patch_px * spacing_um``, is centred on the tile). None: the window.
    tile_size_um: float | None = None

    def __post_init__(self) -> None:
        for name in ("width", "height", "patch_px"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TileGrid {name} must be positive, got {getattr(self, name)}")
        for name in ("mpp_x", "mpp_y", "spacing_um", "tile_size_um"):
            value = getattr(self, name)
            if value is None:
                continue
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"TileGrid {name} must be a positive number, got {value}")

    @classmethod
    def for_slide(
        cls, slide: Slide, patch_px: int, spacing_um: float, tile_size_um: float | None = None
    ) -> TileGrid:
        """The grid of a :class:`~omicslens.core.Slide` for a model's patch size and spacing."""
        width, height = slide.dimensions
        return cls(
            width=int(width),
            height=int(height),
            mpp_x=float(slide.mpp_x),
            mpp_y=float(slide.mpp_y),
            patch_px=int(patch_px),
            spacing_um=float(spacing_um),
            tile_size_um=None if tile_size_um is None else float(tile_size_um),
        )

    # -- sizes -------------------------------------------------------------------------
    @property
    def tile_um(self) -> float:
        """Side of one tile in micrometres."""
        return self.tile_size_um if self.tile_size_um is not None else self.window_um

    @property
    def window_um(self) -> float:
        """Side of the model's input window in micrometres (centred on the tile)."""
        return self.patch_px * self.spacing_um

    @property
    def tile_w(self) -> float:
        """Tile width in level-0 pixels (fractional)."""
        return self.tile_um / self.mpp_x

    @property
    def tile_h(self) -> float:
        return self.tile_um / self.mpp_y

    @property
    def cols(self) -> int:
        return math.ceil(self.width / self.tile_w - 1e-9)

    @property
    def rows(self) -> int:
        return math.ceil(self.height / self.tile_h - 1e-9)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.cols

    @property
    def size(self) -> int:
        return self.rows * self.cols

    def signature(self) -> str:
        """A short text that changes whenever the grid geometry changes (cache keys)."""
        return (
            f"{self.width}x{self.height}@{self.mpp_x:.6g}x{self.mpp_y:.6g}"
            f"/p{self.patch_px}@{self.spacing_um:.6g}/t{self.tile_um:.6g}"
        )

    # -- indices -------------------------------------------------------------------------
    def index(self, row: np.ndarray | int, col: np.ndarray | int) -> np.ndarray:
        return np.asarray(row, dtype=np.int64) * self.cols + np.asarray(col, dtype=np.int64)

    def row_col(self, index: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        flat = np.asarray(index, dtype=np.int64)
        return flat // self.cols, flat % self.cols

    def bounds(self, index: int) -> tuple[float, float, float, float]:
        """(x, y, width, height) of one tile in level-0 pixels (fractional)."""
        row, col = divmod(int(index), self.cols)
        return col * self.tile_w, row * self.tile_h, self.tile_w, self.tile_h

    def window(self, index: int) -> tuple[float, float, float, float]:
        """(x, y, width, height) of the model's input window for a tile, level-0 pixels."""
        x, y, w, h = self.bounds(index)
        ww, wh = self.window_um / self.mpp_x, self.window_um / self.mpp_y
        return x + (w - ww) / 2, y + (h - wh) / 2, ww, wh

    def bounds_int(self, index: int) -> tuple[int, int, int, int]:
        """Integer level-0 box (minx, miny, width, height) for exports (QuPath, CSV)."""
        x0, y0, width, height = self.bounds_int_many(np.array([index]))[0].tolist()
        return x0, y0, width, height

    def bounds_int_many(self, indices: np.ndarray) -> np.ndarray:
        """(N, 4) int64 integer boxes (minx, miny, width, height) of many tiles at once:
        edges rounded half to even, width and height the differences of rounded edges, so
        neighbouring tiles share edges. Exports of 100k-tile slides would spend seconds
        in a per-tile Python loop."""
        rows, cols = self.row_col(np.asarray(indices, dtype=np.int64).reshape(-1))
        x, y = cols * self.tile_w, rows * self.tile_h
        x0, y0 = np.rint(x), np.rint(y)
        widths = np.rint(x + self.tile_w) - x0
        heights = np.rint(y + self.tile_h) - y0
        return np.stack([x0, y0, widths, heights], axis=1).astype(np.int64)

    def centres(self, indices: np.ndarray) -> np.ndarray:
        """(N, 2) tile centres as (x, y) level-0 pixels."""
        rows, cols = self.row_col(indices)
        return np.stack([(cols + 0.5) * self.tile_w, (rows + 0.5) * self.tile_h], axis=1)

    def tiles_in_rect(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Flat indices of every tile that overlaps the level-0 rectangle, row-major."""
        c0 = max(0, math.floor(min(x0, x1) / self.tile_w))
        c1 = min(self.cols, math.ceil(max(x0, x1) / self.tile_w))
        r0 = max(0, math.floor(min(y0, y1) / self.tile_h))
        r1 = min(self.rows, math.ceil(max(y0, y1) / self.tile_h))
        if c0 >= c1 or r0 >= r1:
            return np.empty(0, dtype=np.int64)
        rows, cols = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
        return self.index(rows.ravel(), cols.ravel())

    def centre_first(self, indices: np.ndarray, x: float, y: float) -> np.ndarray:
        """``indices`` sorted by distance of their centres from the level-0 point (x, y).

        Ties are broken by index so the order is deterministic.
        """
        if len(indices) == 0:
            return np.asarray(indices, dtype=np.int64)
        centres = self.centres(indices)
        # distances in micrometres, so anisotropic pixels do not skew the order
        dx = (centres[:, 0] - x) * self.mpp_x
        dy = (centres[:, 1] - y) * self.mpp_y
        order = np.lexsort((indices, dx * dx + dy * dy))
        return np.asarray(indices, dtype=np.int64)[order]
