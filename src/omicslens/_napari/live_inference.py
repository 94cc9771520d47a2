"""Predict what the pathologist is looking at, while they look.

Binds an :class:`~omicslens.models.session.InferenceSession` to a napari viewer:

- camera moves (pan, zoom) are debounced and turned into the level-0 rectangle on screen,
  which the scheduler plans centre-first, superseding the previous view;
- the scheduler's worker thread only appends small (indices, values) records to a list
  and signals the main thread, which drains that list into the overlay layer, so the
  main thread never reads a slide, never runs the model and never waits for either;
- draws are paced by what the canvas's frames cost (``draw_pacing``), except a camera
  move's first batch and the batch that completes the view, drawn as soon as they are
  back.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Generator
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal

from omicslens._napari.draw_pacing import DrawPacer
from omicslens._napari.overlay import PredictionOverlay
from omicslens._napari.throttle import Throttle
from omicslens.app.progress import Progress
from omicslens.app.tiles import close_session
from omicslens.app.view_progress import follow_view
from omicslens.core.genesets import OutputCombination, single_output
from omicslens.core.scheduler import BatchResult, SchedulerStats
from omicslens.models.session import InferenceSession

#: at most one view plan per this many ms while the camera keeps moving; the first move
#: after a pause is planned at once and the view the user settles on always is
THROTTLE_MS = 100
#: tiles in the first batch after a camera move (see TileScheduler.first_batch)
FIRST_BATCH = 2


def visible_rect(viewer: Any, slide_layer: Any) -> tuple[float, float, float, float]:
    """The canvas area as a level-0 rectangle (x0, y0, x1, y1) of ``slide_layer``."""
    height, width = viewer.canvas.size
    zoom = max(viewer.scene.camera.zoom, 1e-12)
    cy, cx = viewer.scene.camera.center[-2:]
    half_h, half_w = height / zoom / 2, width / zoom / 2
    sy, sx = slide_layer.scale[-2:]
    ty, tx = slide_layer.translate[-2:]
    return (
        (cx - half_w - tx) / sx,
        (cy - half_h - ty) / sy,
        (cx + half_w - tx) / sx,
        (cy + half_h - ty) / sy,
    )


class LiveInference(QObject):
    """Overlay + scheduler + camera hookup for one slide layer and one model."""

    stats_changed = Signal(object)  # SchedulerStats, on the main thread
    error = Signal(str)
    #: DomainVerdict of the tissue tiles predicted so far (computed in the job thread)
    domain_changed = Signal(object)
    _results_ready = Signal()  # emitted by the worker thread; drained on the main thread

    def __init__(
        self,
        viewer: Any,
        slide_layer: Any,
        session: InferenceSession,
        initial_raster: np.ndarray,
        output: OutputCombination | None = None,
        follow_view: bool = True,
        colormap: str = "inferno",
        opacity: float = 0.6,
    ) -> None:
        super().__init__()
        self.viewer = viewer
        self.slide_layer = slide_layer
        self.session = session
        names = list(session.bundle.output_names)
        self.output = output if output is not None else single_output(names, 0)
        self.overlay = PredictionOverlay(
            viewer,
            session.grid,
            initial_raster,
            name=f"{session.bundle.name} ({slide_layer.name})",
            output_names=names,
            colormap=colormap,
            opacity=opacity,
            metadata={
                "bundle_hash": session.bundle.bundle_hash,
                "slide": slide_layer.name,
                "trusted_code": bool(session.predictor.trust_code),
            },
            output=self.output,
            output_meta=session.bundle.output_meta,
            task=session.bundle.config.task,
        )
        self._pending: list[BatchResult] = []
        self._errors: list[str] = []
        self._lock = threading.Lock()
        self._stale = False  # tiles written to the layer but not drawn yet
        self.view_tiles = np.empty(0, dtype=np.int64)  # what the current view asked for
        # the worker signals each finished batch (queued onto the main thread) instead of
        # a 10 Hz poll, which added up to 100 ms before a new tile could be drawn; draws
        # stay pacer.interval_ms apart so a fast model cannot flood the loop with frames
        self._results_ready.connect(self._results_arrived)
        self._last_drain = 0.0
        self._draw_next_at_once = True  # the first batch of a new view is not paced
        self.pacer = DrawPacer()
        self._stop_pacing = self.pacer.watch(viewer)
        self._drain_timer = QTimer(self)
        self._drain_timer.setSingleShot(True)
        self._drain_timer.timeout.connect(self.drain)
        self.scheduler = session.scheduler(
            on_result=self._from_worker, on_error=self._worker_error, first_batch=FIRST_BATCH
        )
        # the first move after a pause is planned at once, then at most every THROTTLE_MS
        self._throttle = Throttle(self.update_view, THROTTLE_MS)
        self.follow_view = False
        self.set_follow_view(follow_view)

    # -- worker thread side: append only ---------------------------------------------------
    def _from_worker(self, result: BatchResult) -> None:
        with self._lock:
            self._pending.append(result)
        self._notify()

    def _worker_error(self, index: int, error: BaseException) -> None:
        where = f"tile {index}" if index >= 0 else "a batch"
        with self._lock:
            self._errors.append(f"{where}: {error}")
        self._notify()

    def _notify(self) -> None:
        with contextlib.suppress(RuntimeError):  # the layer was closed meanwhile
            self._results_ready.emit()

    # -- main thread ------------------------------------------------------------------------
    def _results_arrived(self) -> None:
        """Draw now if this is a new view's first batch, the batch that completes the
        view, or the last draw is long enough ago; else once it is.

        The view's last batch is not paced: a small view (two or three batches) would
        otherwise wait up to a second for its last tiles under software GL.
        """
        if self._draw_next_at_once or self._view_complete():
            self._draw_next_at_once = False
            self._drain_timer.stop()
            self.drain()
            return
        if self._drain_timer.isActive():
            return
        interval_ms = self.pacer.interval_ms
        since_ms = (time.monotonic() - self._last_drain) * 1000
        if since_ms >= interval_ms:
            self.drain()
        else:
            self._drain_timer.start(int(interval_ms - since_ms) + 1)

    def _view_complete(self) -> bool:
        """Every tile the current view asked for is predicted (so nothing more for it is
        coming; later batches of a whole-slide job are off screen and not redrawn)."""
        tiles = self.view_tiles
        return bool(len(tiles)) and bool(self.session.store.is_done(tiles).all())

    def set_follow_view(self, follow: bool) -> None:
        if follow == self.follow_view:
            return
        self.follow_view = follow
        camera = self.viewer.scene.camera.events
        if follow:
            camera.center.connect(self._camera_moved)
            camera.zoom.connect(self._camera_moved)
            self.update_view()
        else:
            camera.center.disconnect(self._camera_moved)
            camera.zoom.disconnect(self._camera_moved)

    def _camera_moved(self, event: Any = None) -> None:
        if self._stale:
            self._stale = False
            self.overlay.redraw()
        self._throttle()

    def _on_screen(self, indices: np.ndarray) -> bool:
        x0, y0, x1, y1 = visible_rect(self.viewer, self.slide_layer)
        visible = self.session.grid.tiles_in_rect(x0, y0, x1, y1)
        return bool(np.isin(indices, visible).any())

    def update_view(self) -> int:
        """Plan the tiles on screen now (also called on camera moves, throttled)."""
        x0, y0, x1, y1 = visible_rect(self.viewer, self.slide_layer)
        self.view_tiles = self.scheduler.wanted(self.session.grid.tiles_in_rect(x0, y0, x1, y1))
        self._draw_next_at_once = True
        return self.scheduler.request_view(x0, y0, x1, y1)

    def follow_view_progress(self, poll_seconds: float = 0.25) -> Generator[Progress, None, None]:
        """The app's :func:`~omicslens.app.view_progress.follow_view` job for this view:
        progress of the tiles on screen, the domain verdict signalled to the dock."""
        return follow_view(
            self.session,
            lambda: self.view_tiles,
            self.domain_changed.emit,
            poll_seconds=poll_seconds,
        )

    def whole_slide_tiles(self) -> np.ndarray:
        """Tissue tiles of the slide, queued behind the view; returns them (for a job)."""
        tiles = np.flatnonzero(self.session.tissue_tiles.ravel()).astype(np.int64)
        self.scheduler.request_background(tiles)
        return tiles

    def request_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """Queue ``tiles`` (a region's) behind the view; returns those still to predict."""
        tiles = np.asarray(tiles, dtype=np.int64)
        self.scheduler.request_background(tiles)
        return self.scheduler.wanted(tiles)

    def cancel(self) -> None:
        self.scheduler.cancel()

    def drain(self) -> int:
        """Apply finished batches to the overlay (main thread). Returns tiles applied."""
        self._last_drain = time.monotonic()
        with self._lock:
            pending, self._pending = self._pending, []
            errors, self._errors = self._errors, []
        applied = 0
        if pending:
            indices = np.concatenate([r.indices for r in pending])
            values = np.concatenate([self.output.apply(r.values) for r in pending])
            # Redraw only when a new tile is on screen: under software GL a redraw costs
            # ~100 ms of the GUI thread. Off-screen tiles are drawn on the next camera move.
            on_screen = self._on_screen(indices)
            self.overlay.update_tiles(indices, values, refresh=on_screen)
            self._stale |= not on_screen
            applied = len(indices)
        for message in errors[:3]:
            self.error.emit(message)
        if pending or errors:
            self.stats_changed.emit(self.scheduler.stats())
        return applied

    def set_output(self, output: OutputCombination, raster: np.ndarray) -> None:
        """Switch what is shown (a gene, a gene-set score, the uncertainty); ``raster`` was
        computed from the store off the main thread."""
        self.drain()
        self.output = output
        self.overlay.set_output(raster, output)

    def stats(self) -> SchedulerStats:
        return self.scheduler.stats()

    def close(self) -> threading.Thread:
        """Stop timers and threads; the overlay layer stays (predictions are kept).

        Returns the thread that joins the scheduler and flushes the store (I/O, so not on
        the main thread); join it to know every thread of this prediction has ended.
        """
        stopper = getattr(self, "_stopper", None)
        if stopper is not None:
            return stopper  # type: ignore[no-any-return]
        with contextlib.suppress(RuntimeError, AttributeError):  # viewer being torn down
            self.set_follow_view(False)
        self._throttle.stop()
        self._drain_timer.stop()
        self._stop_pacing()
        stop = threading.Thread(
            target=close_session,
            args=(self.session, self.scheduler),
            name="omicslens-stop",
            daemon=True,
        )
        stop.start()
        self._stopper = stop
        return stop

    def wait_closed(self, timeout: float = 10.0) -> None:
        stopper = getattr(self, "_stopper", None)
        if stopper is not None:
            stopper.join(timeout)


def wait_until(condition: Any, timeout: float, step: float = 0.02) -> bool:
    """Spin the Qt event loop until ``condition()`` (scripts and benchmarks)."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QApplication.processEvents()
        if condition():
            return True
        time.sleep(step)
    return bool(condition())
