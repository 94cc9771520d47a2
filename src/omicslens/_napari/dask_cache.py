"""Bound napari's dask cache when OmicsLens opens a slide.

Why: napari keeps computed chunks of every dask-backed layer in one global cache of
25 % of the RAM by default (6 GiB on a 24 GiB machine). With a whole-slide pyramid every
pan decodes new chunks, so the viewer's memory grew by about 3.3 GB in two minutes of
panning (docs/benchmarks.md, "Results: GUI latency, event loop, memory"). Our own
decoded-tile cache (``omicslens.core.chunk_cache``) is bounded; this bounds napari's for
the slides we open: at most ``OMICSLENS_NAPARI_DASK_CACHE_MIB`` (default 1024 MiB). It
only ever shrinks the cache (a user who set it smaller keeps their setting) and does it
once per process.
"""

from __future__ import annotations

import logging

from omicslens.core.settings import bytes_from_environment

log = logging.getLogger(__name__)

DEFAULT_LIMIT_MIB = 1024.0
_done = False


def limit_bytes() -> int:
    return bytes_from_environment("OMICSLENS_NAPARI_DASK_CACHE_MIB", DEFAULT_LIMIT_MIB)


def bound_napari_dask_cache() -> int | None:
    """Shrink napari's dask cache to :func:`limit_bytes` if it is larger; returns the
    size now in force, or None when napari's cache cannot be reached."""
    global _done
    try:
        from napari.utils import resize_dask_cache
        from napari.utils._dask_utils import _DASK_CACHE
    except ImportError:  # pragma: no cover - napari internals moved
        return None
    current = int(_DASK_CACHE.cache.available_bytes)
    if _done:
        return current
    _done = True
    wanted = limit_bytes()
    if current > wanted:
        resize_dask_cache(wanted)
        log.info(
            "napari dask cache bounded to %.0f MiB (was %.0f MiB)", wanted / 2**20, current / 2**20
        )
        return wanted
    return current
