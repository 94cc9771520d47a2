"""Tiles of one slide through the engine: open a session, predict or follow tiles.

The viewer's model load, whole-slide and region jobs, ``predict_slide`` and the benchmark
all come through here, so "which tiles, with what failures" is reported one way: a
:class:`TileRun` with a :class:`TileFailure` (index, level-0 box, reason) per tile that
could not be read or predicted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from omicslens.app.progress import Progress
from omicslens.core.scheduler import BatchResult, TileScheduler
from omicslens.core.slide import Slide
from omicslens.core.tissue import TissueSettings

if TYPE_CHECKING:  # torch loads when a predictor is made, not when jobs are imported
    from omicslens.models.predictor import Predictor
    from omicslens.models.session import InferenceSession


@dataclass(frozen=True)
class TileFailure:
    """A tile that could not be predicted, where it is (level-0 px) and why."""

    index: int
    x: int
    y: int
    width: int
    height: int
    reason: str

    def describe(self) -> str:
        return f"tile {self.index} at x={self.x}, y={self.y}: {self.reason}"


@dataclass
class TileRun:
    """What :func:`predict_tiles` did: tiles predicted now, found cached, and failed."""

    wanted: int
    predicted: int
    cached: int
    failures: list[TileFailure]
    seconds: float
    cancelled: bool = False


def load_predictor(
    model: str | Path,
    device: str | None = None,
    batch_size: int | None = None,
    trust_code: bool = False,
) -> Predictor:
    """The bundle (folder, bundled name or cached hub id) on its device, loaded once.
    ``trust_code`` runs TorchScript that calls file or process ops (refused otherwise)."""
    from omicslens.core.samples import resolve_model
    from omicslens.models.predictor import Predictor

    return Predictor(
        resolve_model(str(model)), device=device, batch_size=batch_size, trust_code=trust_code
    )


def predict_tiles(
    session: InferenceSession,
    tiles: np.ndarray,
    *,
    readers: int | None = None,
    skip_background: bool = True,
    poll_seconds: float = 0.25,
    cancel: threading.Event | None = None,
    on_result: Callable[[BatchResult], None] | None = None,
) -> Generator[Progress, None, TileRun]:
    """Predict ``tiles`` into ``session.store`` with a scheduler of its own.

    Yields progress, returns a :class:`TileRun`. Closing the generator or setting
    ``cancel`` stops the work; the scheduler's threads end either way. ``on_result``
    sees every finished batch on the model thread (benchmarks time the first one).
    ``readers`` None: as many as the session's ``reader_plan`` says.
    """
    scheduler = session.scheduler(
        on_result=on_result, readers=readers, skip_background=skip_background
    )
    try:
        scheduler.request_tiles(np.asarray(tiles, dtype=np.int64))
        run = yield from track_tiles(
            session, scheduler, tiles, poll_seconds=poll_seconds, cancel=cancel
        )
    finally:
        scheduler.stop()
    return run


def track_tiles(
    session: InferenceSession,
    scheduler: TileScheduler,
    tiles: np.ndarray,
    *,
    poll_seconds: float = 0.25,
    cancel: threading.Event | None = None,
    cancel_drops_work: bool = True,
) -> Generator[Progress, None, TileRun]:
    """Follow ``tiles`` on a running ``scheduler`` (the viewer's own, shared with the view)
    until each is stored or failed, or the scheduler has nothing left for them.

    ``cancel`` stops following; with ``cancel_drops_work`` it also drops the scheduler's
    planned work (the view asks again on the next camera move).
    """
    tiles = np.asarray(tiles, dtype=np.int64)
    store = session.store
    cached = int(store.is_done(tiles).sum()) if len(tiles) else 0
    started = time.monotonic()
    total = len(tiles)
    cancelled = False
    while True:
        idle = scheduler.wait_idle(timeout=poll_seconds)
        done = int(store.is_done(tiles).sum()) if total else 0
        failed = _failed_among(scheduler, tiles)
        stats = scheduler.stats()
        yield Progress(
            "tiles",
            done,
            total,
            failed=len(failed),
            message=f"{stats.tiles_per_second:.1f} tiles/s",
        )
        if idle or done + len(failed) >= total:
            break
        if cancel is not None and cancel.is_set():
            if cancel_drops_work:
                scheduler.cancel()
            cancelled = True
            break
    failed = _failed_among(scheduler, tiles)
    failures = sorted(
        (_failure(session, index, reason) for index, reason in failed.items()),
        key=lambda failure: failure.index,
    )
    done = int(store.is_done(tiles).sum()) if total else 0
    return TileRun(
        wanted=total,
        predicted=done - cached,
        cached=cached,
        failures=failures,
        seconds=time.monotonic() - started,
        cancelled=cancelled,
    )


def _failed_among(scheduler: TileScheduler, tiles: np.ndarray) -> dict[int, str]:
    failures = scheduler.failures()
    if not failures:
        return {}
    wanted = set(tiles.tolist())
    return {index: reason for index, reason in failures.items() if index in wanted}


def _failure(session: InferenceSession, index: int, reason: str) -> TileFailure:
    x, y, width, height = session.grid.bounds_int(int(index))
    return TileFailure(int(index), x, y, width, height, reason)


def wanted_tiles(session: InferenceSession, all_tiles: bool = False) -> np.ndarray:
    """Every tile (``all_tiles``) or the tissue tiles of the session's slide."""
    if all_tiles:
        return np.arange(session.grid.size, dtype=np.int64)
    return np.flatnonzero(session.tissue_tiles.ravel()).astype(np.int64)


def open_session(
    slide: Slide,
    model: str | Path,
    device: str | None = None,
    min_tissue: float = 0.25,
    trust_code: bool = False,
) -> tuple[InferenceSession, np.ndarray]:
    """The slide prepared for ``model`` (grid, tissue, cache, predictor on its device)
    and the cached raster of its first output: what the viewer needs to start.

    I/O and weight loading: call it off the GUI thread. Input problems raise
    :class:`~omicslens.core.errors.OmicsLensError`.
    """
    from omicslens.models.session import InferenceSession

    session = InferenceSession.open(
        slide,
        str(model),
        device=None if device in (None, "auto") else device,
        tissue_settings=TissueSettings(min_tile_fraction=min_tissue),
        trust_code=trust_code,
    )
    return session, session.store.raster(0)


def close_session(session: InferenceSession, scheduler: TileScheduler | None = None) -> None:
    """Stop ``scheduler`` (joins its threads, flushes the store), then ``session`` (a GPU
    decoder's thread, if it has one). Blocking: call it off the GUI thread."""
    if scheduler is not None:
        scheduler.stop()
    session.close()
