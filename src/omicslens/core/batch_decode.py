"""Gather the tiles reader threads want decoded into batches for one batched decoder.

Why: a GPU JPEG decoder pays a fixed cost per call (a launch, a synchronisation, a copy
back) that is larger than decoding one small tile, so it is fed lists of streams. The
readers, though, ask for one tile at a time, each from its own thread (through the
decoded-tile cache). :class:`BatchingDecoder` sits between the two: a reader's
:meth:`~BatchingDecoder.decode` queues its stream and waits; one worker thread takes
whatever is queued (up to ``max_batch``, waiting at most ``max_wait_s`` for more once it
has one) and decodes it as one call. With N readers, batches of about N tiles form on
their own, and a lone request waits no more than ``max_wait_s``.

The backend is any ``list[bytes] -> list[array]``; this module knows nothing of GPUs
(``core`` imports no torch). A failed batch is not written as data: every reader of that
batch gets the exception and decides (the TIFF tile reader falls back to the CPU).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

BatchBackend = Callable[[list[bytes]], Sequence[np.ndarray]]

#: the most streams one backend call takes
DEFAULT_MAX_BATCH = 32
#: how long the worker waits for more requests after the first, in seconds
DEFAULT_MAX_WAIT_S = 0.002


@dataclass(frozen=True)
class BatchStats:
    batches: int
    tiles: int
    failed_batches: int

    @property
    def mean_batch(self) -> float:
        return self.tiles / self.batches if self.batches else 0.0


class DecoderClosed(RuntimeError):
    """The batching decoder was closed before it could decode this stream."""


class BatchingDecoder:
    """``decode(stream)`` from any thread; batched calls of ``backend`` on one worker."""

    def __init__(
        self,
        backend: BatchBackend,
        *,
        name: str = "batched decoder",
        max_batch: int = DEFAULT_MAX_BATCH,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.backend = backend
        self.name = name
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[tuple[bytes, Future[np.ndarray]] | None] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._batches = self._tiles = self._failed = 0
        self._worker = threading.Thread(target=self._run, name=f"omicslens-{name}", daemon=True)
        self._worker.start()

    def decode(self, stream: bytes) -> np.ndarray:
        """The decoded tile of ``stream``; blocks until its batch is done."""
        future: Future[np.ndarray] = Future()
        with self._lock:
            if self._closed:
                raise DecoderClosed(f"{self.name} is closed")
            self._queue.put((stream, future))
        return future.result()

    def stats(self) -> BatchStats:
        with self._lock:
            return BatchStats(self._batches, self._tiles, self._failed)

    def close(self, timeout: float = 5.0) -> None:
        """Decode what is queued, then stop the worker; later calls raise DecoderClosed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._worker.join(timeout)

    def _gather(self) -> tuple[list[tuple[bytes, Future[np.ndarray]]], bool]:
        """The next batch (blocking for its first item) and whether the queue was closed."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch:
            left = deadline - time.perf_counter()
            try:
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        closed = False
        while not closed:
            batch, closed = self._gather()
            if batch:
                self._decode(batch)
        while True:  # anything queued after the close marker
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item[1].set_exception(DecoderClosed(f"{self.name} is closed"))

    def _decode(self, batch: list[tuple[bytes, Future[np.ndarray]]]) -> None:
        try:
            tiles = list(self.backend([stream for stream, _ in batch]))
            if len(tiles) != len(batch):
                raise RuntimeError(
                    f"{self.name} returned {len(tiles)} tiles for {len(batch)} streams"
                )
        except BaseException as error:  # handed to each reader, never written as data
            with self._lock:
                self._batches += 1
                self._tiles += len(batch)
                self._failed += 1
            for _, future in batch:
                future.set_exception(error)
            return
        with self._lock:
            self._batches += 1
            self._tiles += len(batch)
        for (_, future), tile in zip(batch, tiles, strict=True):
            future.set_result(tile)
