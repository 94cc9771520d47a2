"""A bounded, process-wide cache of decoded source tiles (chunks), shared by the readers.

Why: a model patch rarely lines up with the file's tiles. A 224 px patch on a 240 px or
256 px JPEG tile grid touches 1-4 tiles, and before this cache every patch decoded each
of them whole, so neighbouring patches decoded the same tiles again (about 2.8 ms of CPU
per patch on CMU-1 against a 1.4-2 ms model forward pass; docs/benchmarks.md). With the
cache, each tile is decoded once while it is still wanted: the scheduler's plans go row
by row (whole slide) or outwards from the screen centre (the view), so neighbours come
close together in time and a few rows of tiles are enough.

Properties the tile pipeline relies on:

* **Same pixels.** A cached tile is the decoded chunk itself; a region assembled from
  cached tiles is bit-identical to reading the region through zarr (which decodes the
  same whole chunks and slices them).
* **Bounded memory.** Least recently used tiles are dropped beyond ``budget_bytes``
  (default 256 MiB, ``OMICSLENS_DECODE_CACHE_MIB``; 0 turns the cache off).
* **Each tile decoded once even under concurrency.** Two reader threads asking for the
  same tile at once share one decode ("single flight"); a failed decode is raised to
  every waiter and never cached.
* **Never stale.** Keys carry a token unique to each opened level (never ``id()``, which
  Python reuses), so a closed and reopened or replaced file cannot hit old pixels.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from omicslens.core.settings import bytes_from_environment

#: default budget of the shared cache, in MiB (environment: OMICSLENS_DECODE_CACHE_MIB)
DEFAULT_BUDGET_MIB = 256.0

_tokens = itertools.count(1)


def new_token() -> int:
    """A key prefix no other level has had in this process."""
    return next(_tokens)


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int  # decodes
    waits: int  # asked while another thread was decoding the same tile
    entries: int
    bytes: int
    budget_bytes: int


class DecodedChunkCache:
    """LRU of read-only decoded tiles with a byte budget; see the module docstring."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = max(0, int(budget_bytes))
        self._entries: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._pending: dict[Hashable, Future[np.ndarray]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self._hits = self._misses = self._waits = 0

    def get(self, key: Hashable, decode: Callable[[], np.ndarray]) -> np.ndarray:
        """The tile for ``key``, decoded by ``decode()`` only when no one has it."""
        if self.budget_bytes == 0:
            return decode()
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                self._hits += 1
                return cached
            pending = self._pending.get(key)
            if pending is None:
                mine: Future[np.ndarray] = Future()
                self._pending[key] = mine
                self._misses += 1
            else:
                self._waits += 1
        if pending is not None:
            return pending.result()
        try:
            tile = np.ascontiguousarray(decode())
            tile.setflags(write=False)  # shared: no reader may change it
        except BaseException as error:
            with self._lock:
                del self._pending[key]
            mine.set_exception(error)
            raise
        with self._lock:
            del self._pending[key]
            self._store(key, tile)
        mine.set_result(tile)
        return tile

    def _store(self, key: Hashable, tile: np.ndarray) -> None:
        if tile.nbytes > self.budget_bytes:
            return
        self._entries[key] = tile
        self._bytes += tile.nbytes
        while self._bytes > self.budget_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                self._hits,
                self._misses,
                self._waits,
                len(self._entries),
                self._bytes,
                self.budget_bytes,
            )


def _budget_from_environment() -> int:
    return bytes_from_environment("OMICSLENS_DECODE_CACHE_MIB", DEFAULT_BUDGET_MIB)


_shared: DecodedChunkCache | None = None
_shared_lock = threading.Lock()


def shared_cache() -> DecodedChunkCache:
    """The process-wide cache every slide level reads through."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = DecodedChunkCache(_budget_from_environment())
        return _shared


def set_shared_budget(budget_bytes: int) -> DecodedChunkCache:
    """Replace the shared cache by an empty one of ``budget_bytes`` (0: off); benchmarks
    use it to compare reading with and without the cache in one process."""
    global _shared
    with _shared_lock:
        _shared = DecodedChunkCache(budget_bytes)
        return _shared
