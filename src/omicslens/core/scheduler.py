"""Which tiles to predict next, and the threads that do it.

The pathologist's view decides the work: the tiles under the camera, minus those already
known and those without tissue, nearest the centre of the screen first. A newer view
replaces the plan; tiles that scrolled out of view are dropped before they are read or
predicted (an in-flight batch still finishes, and its valid results are kept).

Threads (no Qt here, so the CLI and tests use the same engine):

- a small pool of reader threads cuts patches (I/O and JPEG decoding release the GIL),
  at most ``read_ahead`` patches ahead of the model, which bounds memory;
- one worker thread owns the model: it gathers finished reads in plan order, runs a
  batch, stores it, and hands ``(indices, values)`` to ``on_result``.

``predict_batch`` is any callable from (N, H, W, 3) uint8 to (N, outputs) float32; the
models layer supplies a torch one, tests a numpy one. The napari glue turns
``on_result`` into small main-thread updates; nothing here blocks the caller.

Modelled on napari's layer slicer: requests carry an id, newer requests supersede older
ones, and a test can hold the data source to decide exactly when work finishes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from omicslens.core.grid import TileGrid
from omicslens.core.store import PredictionStore

log = logging.getLogger(__name__)

PredictBatch = Callable[[np.ndarray], np.ndarray]
ReadPatch = Callable[[int], np.ndarray]


@dataclass(frozen=True)
class BatchResult:
    """One finished batch: flat tile indices and their predictions (N, outputs)."""

    request_id: int
    indices: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class SchedulerStats:
    done: int  # tiles predicted by this scheduler
    queued: int  # tiles planned or being read
    tiles_per_second: float  # over the last few seconds of work
    failed: int


class TileScheduler:
    """Predict planned tiles in the background; see the module docstring."""

    def __init__(
        self,
        grid: TileGrid,
        read_patch: ReadPatch,
        predict_batch: PredictBatch,
        store: PredictionStore,
        *,
        tissue: np.ndarray | None = None,
        batch_size: int = 16,
        read_ahead: int | None = None,
        readers: int = 2,
        on_result: Callable[[BatchResult], None] | None = None,
        on_error: Callable[[int, BaseException], None] | None = None,
        flush_seconds: float = 5.0,
        first_batch: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.grid = grid
        self.store = store
        self.batch_size = batch_size
        #: tiles in the first batch after a new view: a few, so the first new tile is on
        #: screen after a couple of reads rather than a whole batch of them (the
        #: predictor still pads the batch to its full size: same values either way)
        self.first_batch = max(1, min(first_batch or batch_size, batch_size))
        self._view_is_new = False
        self.read_ahead = read_ahead or 2 * batch_size
        self._read_patch = read_patch
        self._predict = predict_batch
        self._tissue = None if tissue is None else np.asarray(tissue, dtype=bool).ravel()
        self._on_result = on_result
        self._on_error = on_error
        self._flush_seconds = flush_seconds
        self._last_flush = time.monotonic()
        self._pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="omicslens-read")
        self._cond = threading.Condition()
        self._plan: deque[int] = deque()
        self._background: list[int] = []
        self._inflight: OrderedDict[int, Future[np.ndarray]] = OrderedDict()
        self._failed: dict[int, str] = {}  # tile -> why it could not be predicted
        self._request_id = 0
        self._stopped = False
        self._busy = False
        self._done = 0
        self._recent: deque[tuple[float, int]] = deque(maxlen=64)
        self._worker = threading.Thread(target=self._run, name="omicslens-model", daemon=True)
        self._worker.start()

    # -- planning (any thread) -----------------------------------------------------------
    def wanted(self, indices: np.ndarray) -> np.ndarray:
        """``indices`` without tiles already predicted, failed, or without tissue."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return indices
        keep = ~self.store.is_done(indices)
        if self._tissue is not None:
            keep &= self._tissue[indices]
        if self._failed:
            keep &= ~np.isin(indices, np.fromiter(self._failed.keys(), dtype=np.int64))
        return indices[keep]

    def request_view(self, x0: float, y0: float, x1: float, y1: float) -> int:
        """Plan the tiles in a level-0 rectangle, centre first; supersedes earlier views.

        A whole-slide job (``request_all``) keeps running behind the view: its remaining
        tiles follow the visible ones.
        """
        visible = self.grid.tiles_in_rect(x0, y0, x1, y1)
        ordered = self.grid.centre_first(self.wanted(visible), (x0 + x1) / 2, (y0 + y1) / 2)
        with self._cond:
            self._view_is_new = True
        return self._replace_plan(ordered.tolist())

    def request_tiles(self, indices: np.ndarray) -> int:
        """Plan exactly these tiles (in the given order), superseding earlier plans."""
        return self._replace_plan(self.wanted(indices).tolist())

    def request_all(self) -> int:
        """Plan every tissue tile of the slide, row by row (for "whole slide")."""
        return self.request_background(np.arange(self.grid.size, dtype=np.int64))

    def request_background(self, indices: np.ndarray) -> int:
        """Add tiles behind the view (whole slide, a region): the view keeps priority."""
        with self._cond:
            merged = dict.fromkeys(self._background)
            merged.update(dict.fromkeys(self.wanted(np.asarray(indices)).tolist()))
            self._background = list(merged)
        return self._replace_plan(list(self._plan_front()))

    def _plan_front(self) -> list[int]:
        """The current plan without background tiles (what the view asked for)."""
        with self._cond:
            background = set(self._background)
            return [i for i in self._plan if i not in background]

    def cancel(self) -> int:
        """Drop every planned tile, the whole-slide job included."""
        with self._cond:
            self._background = []
        return self._replace_plan([])

    def _replace_plan(self, first: list[int]) -> int:
        with self._cond:
            self._request_id += 1
            plan = list(dict.fromkeys(first))
            if self._background:
                self._background = self.wanted(np.asarray(self._background)).tolist()
                seen = set(plan)
                plan += [i for i in self._background if i not in seen]
            wanted = set(plan)
            for index in list(self._inflight):
                if index not in wanted:
                    self._inflight.pop(index).cancel()  # no-op if the read already started
            self._plan = deque(i for i in plan if i not in self._inflight)
            self._cond.notify_all()
            return self._request_id

    # -- status --------------------------------------------------------------------------
    @property
    def request_id(self) -> int:
        return self._request_id

    def stats(self) -> SchedulerStats:
        with self._cond:
            queued = len(self._plan) + len(self._inflight)
            recent = list(self._recent)
            done = self._done
            failed = len(self._failed)
        rate = 0.0
        if len(recent) >= 2 and recent[-1][0] > recent[0][0]:
            rate = sum(n for _, n in recent[1:]) / (recent[-1][0] - recent[0][0])
        return SchedulerStats(done=done, queued=queued, tiles_per_second=rate, failed=failed)

    def failures(self) -> dict[int, str]:
        """Tiles this scheduler could not predict, with the reason (a copy).

        They are never stored, so a later scheduler over the same store retries exactly
        these.
        """
        with self._cond:
            return dict(self._failed)

    @property
    def idle(self) -> bool:
        with self._cond:
            return not self._plan and not self._inflight and not self._busy

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no work is left (tests and the CLI); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._plan or self._inflight or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 0.5)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel everything, finish the running batch, flush the store, end the threads."""
        with self._cond:
            self._stopped = True
            self._plan.clear()
            self._background = []
            for future in self._inflight.values():
                future.cancel()
            self._cond.notify_all()
        self._worker.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.store.flush()

    # -- worker --------------------------------------------------------------------------
    def _top_up(self) -> None:
        """Start reads for planned tiles until ``read_ahead`` are in flight (lock held)."""
        while self._plan and len(self._inflight) < self.read_ahead:
            index = self._plan.popleft()
            if index in self._inflight or self.store.is_done(np.array([index]))[0]:
                continue
            self._inflight[index] = self._pool.submit(self._read_patch, index)

    def _next_batch(self) -> list[tuple[int, Future[np.ndarray]]] | None:
        with self._cond:
            while not self._stopped and not self._plan and not self._inflight:
                self._cond.wait()
            if self._stopped:
                return None
            self._top_up()
            self._busy = True
            size = self.first_batch if self._view_is_new else self.batch_size
            self._view_is_new = False
            return list(self._inflight.items())[:size]

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._process(batch)
            except BaseException as error:  # never let the worker die silently
                log.exception("prediction batch failed")
                if self._on_error is not None:
                    self._on_error(-1, error)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _process(self, batch: list[tuple[int, Future[np.ndarray]]]) -> None:
        indices: list[int] = []
        patches: list[np.ndarray] = []
        for index, future in batch:
            try:
                patch = future.result()
            except BaseException as error:
                with self._cond:
                    if self._inflight.get(index) is future:
                        del self._inflight[index]
                if future.cancelled():
                    continue  # superseded view
                with self._cond:
                    self._failed[index] = _reason(error)
                if self._on_error is not None:
                    self._on_error(index, error)
                continue
            with self._cond:
                still_wanted = self._inflight.get(index) is future
            if still_wanted:
                indices.append(index)
                patches.append(patch)
        if not indices:
            return
        request_id = self._request_id
        flat = np.asarray(indices, dtype=np.int64)
        try:
            values = np.asarray(self._predict(np.stack(patches)), dtype=np.float32)
            if values.ndim != 2 or values.shape[0] != len(indices):
                raise ValueError(
                    f"the model returned shape {values.shape} for {len(indices)} patches"
                )
            finite = np.isfinite(values).all(axis=1)
            if not finite.all():  # NaN is a failure, never a prediction
                with self._cond:
                    for index in flat[~finite].tolist():
                        self._inflight.pop(index, None)
                        self._failed[index] = "ValueError: the model returned NaN or infinity"
                flat, values = flat[finite], values[finite]
                indices = flat.tolist()
            if not indices:
                with self._cond:
                    self._top_up()
                return
            self.store.put(flat, values)
        except Exception as error:
            # a failed batch is reported per tile and never stored; retrying it forever
            # would hang the caller, so its tiles leave the plan
            reason = _reason(error)
            with self._cond:
                for index in indices:
                    self._inflight.pop(index, None)
                    self._failed[index] = reason
                self._top_up()
            if self._on_error is not None:
                for index in indices:
                    self._on_error(index, error)
            return
        with self._cond:
            for index in indices:
                self._inflight.pop(index, None)
            self._done += len(indices)
            self._recent.append((time.monotonic(), len(indices)))
            self._top_up()
            out_of_work = not self._plan and not self._inflight
        if self._on_result is not None:
            self._on_result(BatchResult(request_id, flat, values))
        now = time.monotonic()
        if out_of_work or now - self._last_flush > self._flush_seconds:
            self.store.flush()  # persist on the worker thread, never on the GUI thread
            self._last_flush = now


def _reason(error: BaseException) -> str:
    """One line a user can act on: the error's type and message."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
