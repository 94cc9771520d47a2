"""Predictions per tile: a bounded in-memory LRU in front of a zarr store on disk.

Keyed by slide content fingerprint, model bundle hash and grid geometry, so reopening a
slide shows earlier predictions at once, while a changed model (or a different mpp that
moves the grid) can never show stale values: it simply gets another store.

Layout on disk (zarr v3, one folder per key)::

    <cache>/predictions/<fingerprint>/<bundle_hash>-<grid_hash>.zarr
        values  float32 (rows, cols, outputs), chunks (64, 64, <=32)
        done    uint8   (rows, cols),          chunks (64, 64)
        attrs   grid signature, output names, model name

zarr's local store writes each chunk through a temporary file and a rename, so a killed
process leaves whole chunks; ``done`` is written after ``values`` for the same chunk, so
a tile is never marked done without its values. Call ``flush()`` to persist (the
scheduler does after each batch group and on stop).

Thread-safety: one worker thread writes, the GUI thread reads; a lock guards both.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from omicslens.core.grid import TileGrid

CHUNK = 64


class PredictionStore:
    """Per-tile predictions for one (slide, model, grid); ``None`` folder = memory only.

    The ``done`` bitmap is small (one byte per tile: 200 kB for a 100k px slide at
    112 um tiles) and is kept whole in memory, so "which visible tiles are still
    unknown" never touches the disk. Values live in 64 x 64-tile chunks behind an LRU.
    """

    def __init__(
        self,
        grid: TileGrid,
        output_names: Sequence[str],
        folder: Path | None = None,
        memory_bytes: int = 256 << 20,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        self.grid = grid
        self.output_names = list(output_names)
        self.folder = folder
        self._lock = threading.RLock()
        chunk_bytes = CHUNK * CHUNK * 4 * max(1, len(self.output_names))
        self._max_chunks = max(4, memory_bytes // chunk_bytes)
        self._chunks: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._dirty: set[tuple[int, int]] = set()
        self._done = np.zeros(grid.shape, dtype=bool)
        self._values_array: Any = None
        self._done_array: Any = None
        if folder is not None:
            self._open_disk(folder, attrs or {})

    # -- disk ----------------------------------------------------------------------------
    def _open_disk(self, folder: Path, attrs: dict[str, Any]) -> None:
        expected = {"grid": self.grid.signature(), "outputs": self.output_names}
        if (folder / "zarr.json").exists():
            try:
                group = zarr.open_group(str(folder), mode="r+")
                found: dict[str, Any] = {
                    "grid": group.attrs.get("grid"),
                    "outputs": group.attrs.get("outputs"),
                }
                values: Any = group["values"]
                done: Any = group["done"]
                done_bitmap = np.asarray(done[...]).astype(bool)
                complete = done_bitmap.shape == self.grid.shape
            except Exception:  # any damage: the cache is only a cache
                complete, found = False, expected
            if found != expected:
                raise ValueError(
                    f"{folder}: prediction store was written for another grid or model "
                    f"(expected {expected['grid']}, found {found['grid']})"
                )
            if complete:
                self._values_array, self._done_array, self._done = values, done, done_bitmap
                return
            # Half-created or damaged (a run killed while creating it): our own cache of
            # recomputable values, so it is rebuilt rather than trusted or reported.
            shutil.rmtree(folder, ignore_errors=True)
        self._create_disk(folder, {**attrs, **expected})

    def _create_disk(self, folder: Path, attrs: dict[str, Any]) -> None:
        """Create the store beside ``folder`` and rename it into place once whole, so a
        process killed half-way never leaves a store without its arrays."""
        rows, cols = self.grid.shape
        n = len(self.output_names)
        folder.parent.mkdir(parents=True, exist_ok=True)
        for leftover in folder.parent.glob(f".{folder.name}.*"):
            shutil.rmtree(leftover, ignore_errors=True)  # killed creations
        temporary = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}"
        group = zarr.open_group(str(temporary), mode="w")
        group.attrs.update(attrs)
        group.create_array(
            "values",
            shape=(rows, cols, n),
            chunks=(CHUNK, CHUNK, min(n, 32)),
            dtype="float32",
            fill_value=np.nan,
        )
        group.create_array(
            "done", shape=(rows, cols), chunks=(CHUNK, CHUNK), dtype="uint8", fill_value=0
        )
        try:
            os.replace(temporary, folder)
        except OSError:  # another process created it first: use theirs
            shutil.rmtree(temporary, ignore_errors=True)
        group = zarr.open_group(str(folder), mode="r+")
        self._values_array = group["values"]
        self._done_array = group["done"]
        self._done = np.asarray(self._done_array[...]).astype(bool)

    # -- chunks --------------------------------------------------------------------------
    def _slices(self, key: tuple[int, int]) -> tuple[slice, slice]:
        r0, c0 = key[0] * CHUNK, key[1] * CHUNK
        return (
            slice(r0, min(r0 + CHUNK, self.grid.rows)),
            slice(c0, min(c0 + CHUNK, self.grid.cols)),
        )

    def _chunk(self, key: tuple[int, int]) -> np.ndarray:
        values = self._chunks.get(key)
        if values is not None:
            self._chunks.move_to_end(key)
            return values
        rows, cols = self._slices(key)
        if self._values_array is not None and self._done[rows, cols].any():
            values = np.asarray(self._values_array[rows, cols, :], dtype=np.float32)
        else:
            shape = (rows.stop - rows.start, cols.stop - cols.start, len(self.output_names))
            values = np.full(shape, np.nan, dtype=np.float32)
        self._chunks[key] = values
        self._evict()
        return values

    def _evict(self) -> None:
        while len(self._chunks) > self._max_chunks:
            key = next(iter(self._chunks))
            if self._values_array is None:
                if key in self._dirty:
                    break  # memory-only store: never drop results silently; grow instead
                del self._chunks[key]
                continue
            if key in self._dirty:
                self._write_chunk(key)
            del self._chunks[key]

    def _write_chunk(self, key: tuple[int, int]) -> None:
        rows, cols = self._slices(key)
        self._values_array[rows, cols, :] = self._chunks[key]
        self._done_array[rows, cols] = self._done[rows, cols].astype(np.uint8)
        self._dirty.discard(key)

    def _groups(self, indices: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
        """Positions in ``indices`` grouped by the chunk their tile falls in."""
        rows, cols = self.grid.row_col(indices)
        keys = (rows // CHUNK) * (self.grid.cols // CHUNK + 1) + cols // CHUNK
        groups: dict[tuple[int, int], np.ndarray] = {}
        for key in np.unique(keys):
            positions = np.flatnonzero(keys == key)
            first = positions[0]
            groups[(int(rows[first] // CHUNK), int(cols[first] // CHUNK))] = positions
        return groups

    # -- public --------------------------------------------------------------------------
    def put(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Store predictions (N, outputs) for flat tile ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (len(indices), len(self.output_names)):
            raise ValueError(
                f"expected predictions of shape ({len(indices)}, {len(self.output_names)}), "
                f"got {values.shape}"
            )
        rows, cols = self.grid.row_col(indices)
        with self._lock:
            for key, positions in self._groups(indices).items():
                chunk = self._chunk(key)
                chunk[rows[positions] % CHUNK, cols[positions] % CHUNK] = values[positions]
                self._done[rows[positions], cols[positions]] = True
                self._dirty.add(key)

    def is_done(self, indices: np.ndarray) -> np.ndarray:
        """Bool per flat index: has this tile a stored prediction?"""
        with self._lock:
            return self._done.ravel()[np.asarray(indices, dtype=np.int64)]

    def get(self, indices: np.ndarray) -> np.ndarray:
        """(N, outputs) float32; NaN where a tile has no prediction yet."""
        indices = np.asarray(indices, dtype=np.int64)
        out = np.full((len(indices), len(self.output_names)), np.nan, dtype=np.float32)
        rows, cols = self.grid.row_col(indices)
        with self._lock:
            for key, positions in self._groups(indices).items():
                chunk = self._chunk(key)
                out[positions] = chunk[rows[positions] % CHUNK, cols[positions] % CHUNK]
            out[~self._done[rows, cols]] = np.nan
        return out

    @property
    def done_count(self) -> int:
        with self._lock:
            return int(np.count_nonzero(self._done))

    def done_mask(self) -> np.ndarray:
        """(rows, cols) bool over the whole grid (a copy)."""
        with self._lock:
            return self._done.copy()

    def raster(self, output: int) -> np.ndarray:
        """(rows, cols) float32 of one output over the whole grid, NaN where unknown."""
        with self._lock:
            if self._values_array is not None:
                out = np.asarray(self._values_array[:, :, output], dtype=np.float32)
            else:
                out = np.full(self.grid.shape, np.nan, dtype=np.float32)
            for key, values in self._chunks.items():
                rows, cols = self._slices(key)
                out[rows, cols] = values[..., output]
            out[~self._done] = np.nan
        return out

    def combined_raster(self, weights: np.ndarray, bias: float = 0.0) -> np.ndarray:
        """(rows, cols) float32 of ``values @ weights + bias`` (gene-set scores), NaN unknown."""
        weights = np.asarray(weights, dtype=np.float32)
        nonzero = np.flatnonzero(weights)
        if len(nonzero) == 1 and weights[nonzero[0]] == 1.0 and bias == 0.0:
            return self.raster(int(nonzero[0]))
        out = np.full(self.grid.shape, np.nan, dtype=np.float32)
        for position in nonzero:
            column = self.raster(int(position))
            out = np.where(np.isnan(out), 0.0, out) + column * weights[position]
        out += bias
        out[~self.done_mask()] = np.nan
        return out

    def flush(self) -> None:
        """Write every changed chunk to disk (no-op for a memory-only store)."""
        if self._values_array is None:
            return
        with self._lock:
            for key in list(self._dirty):
                self._write_chunk(key)

    def memory_bytes(self) -> int:
        with self._lock:
            return self._done.nbytes + sum(v.nbytes for v in self._chunks.values())


def store_key(slide_fingerprint: str, bundle_hash: str, grid: TileGrid) -> str:
    grid_hash = hashlib.sha256(grid.signature().encode()).hexdigest()[:12]
    return f"{slide_fingerprint}/{bundle_hash}-{grid_hash}.zarr"


def open_store(
    cache_dir: Path,
    slide_fingerprint: str,
    bundle_hash: str,
    grid: TileGrid,
    output_names: Sequence[str],
    model_name: str = "",
    memory_bytes: int = 256 << 20,
) -> PredictionStore:
    """The on-disk store for this slide, model and grid (created on first use)."""
    folder = cache_dir / "predictions" / store_key(slide_fingerprint, bundle_hash, grid)
    attrs = {"model": model_name, "bundle_hash": bundle_hash, "slide": slide_fingerprint}
    return PredictionStore(grid, output_names, folder, memory_bytes, attrs=attrs)
