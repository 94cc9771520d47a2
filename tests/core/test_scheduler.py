"""The scheduler predicts exactly the visible tissue tiles, centre first, and drops
superseded work. A lockable patch source lets each test decide when reads finish."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from omicslens.core.grid import TileGrid
from omicslens.core.scheduler import BatchResult, TileScheduler
from omicslens.core.store import PredictionStore, open_store

GRID = TileGrid(width=2000, height=2000, mpp_x=1.0, mpp_y=1.0, patch_px=100, spacing_um=1.0)


class LockableSource:
    """Patches whose value is their tile index; reads wait while the gate is closed."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.read: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, index: int) -> np.ndarray:
        self.gate.wait(10)
        with self.lock:
            self.read.append(index)
        return np.full((4, 4, 3), index % 256, dtype=np.uint8)


def predict(patches: np.ndarray) -> np.ndarray:
    return patches[:, 0, 0, :1].astype(np.float32)


def _scheduler(source, store=None, **kwargs) -> tuple[TileScheduler, list[BatchResult]]:
    results: list[BatchResult] = []
    store = store or PredictionStore(GRID, ["value"])
    scheduler = TileScheduler(
        GRID, source, predict, store, on_result=results.append, batch_size=4, **kwargs
    )
    return scheduler, results


def test_view_predicts_exactly_the_visible_tissue_tiles_centre_first() -> None:
    tissue = np.ones(GRID.shape, dtype=bool)
    tissue[:, :3] = False  # no tissue in the first three columns
    source = LockableSource()
    scheduler, results = _scheduler(source, tissue=tissue, readers=1)
    try:
        scheduler.request_view(150, 150, 650, 450)  # cols 1..6, rows 1..4
        assert scheduler.wait_idle(10)
    finally:
        scheduler.stop()
    done = np.concatenate([r.indices for r in results])
    rows, cols = GRID.row_col(done)
    expected = {(r, c) for r in range(1, 5) for c in range(3, 7)}
    assert set(zip(rows.tolist(), cols.tolist(), strict=True)) == expected
    assert len(done) == len(expected)  # nothing twice
    first = done[0]
    # the view's centre (400, 300) is the corner of four tiles: one of them comes first
    assert tuple(int(v) for v in GRID.row_col(first)) in [(2, 3), (2, 4), (3, 3), (3, 4)]
    values = np.concatenate([r.values for r in results])[:, 0]
    np.testing.assert_array_equal(values, done % 256)


def test_superseded_view_is_cancelled_before_it_is_read() -> None:
    source = LockableSource()
    source.gate.clear()  # reads hang until we allow them
    scheduler, results = _scheduler(source, readers=1, read_ahead=2)
    try:
        scheduler.request_view(0, 0, 1000, 1000)  # 100 tiles; at most 2 reads start
        scheduler.request_view(1500, 1500, 2000, 2000)  # the user moved on: 25 other tiles
        source.gate.set()
        assert scheduler.wait_idle(10)
    finally:
        scheduler.stop()
    done = np.concatenate([r.indices for r in results])
    new_view = set(GRID.tiles_in_rect(1500, 1500, 2000, 2000).tolist())
    assert set(done.tolist()) == new_view
    assert len(set(source.read) - new_view) <= 2  # only reads already running were wasted


def test_known_tiles_are_not_predicted_again(tmp_path: Path) -> None:
    store = open_store(tmp_path, "slide", "model", GRID, ["value"])
    source = LockableSource()
    scheduler, _ = _scheduler(source, store=store)
    scheduler.request_view(0, 0, 500, 500)
    assert scheduler.wait_idle(10)
    scheduler.stop()
    first_reads = len(source.read)
    assert first_reads == 25
    reopened = open_store(tmp_path, "slide", "model", GRID, ["value"])
    source2 = LockableSource()
    scheduler2, results2 = _scheduler(source2, store=reopened)
    scheduler2.request_view(0, 0, 600, 500)  # one new column of 5 tiles
    assert scheduler2.wait_idle(10)
    scheduler2.stop()
    assert len(source2.read) == 5
    assert sum(len(r.indices) for r in results2) == 5


def test_whole_slide_job_continues_behind_the_view_and_can_be_cancelled() -> None:
    source = LockableSource()
    scheduler, results = _scheduler(source)
    try:
        # hold the readers until both requests are in: otherwise, on a loaded machine,
        # they may finish many background tiles before the view is even asked for
        source.gate.clear()
        scheduler.request_all()
        scheduler.request_view(1800, 1800, 2000, 2000)  # visible tiles jump the queue
        source.gate.set()
        assert scheduler.wait_idle(20)
    finally:
        scheduler.stop()
    done = np.concatenate([r.indices for r in results])
    assert sorted(done.tolist()) == list(range(GRID.size))
    visible = set(GRID.tiles_in_rect(1800, 1800, 2000, 2000).tolist())
    # only the background reads already in flight (read_ahead of them) may come first:
    # the visible tiles are the next ones read, ahead of the ~400 background tiles left
    in_flight = scheduler.read_ahead
    assert visible <= set(source.read[: in_flight + len(visible)]), source.read[:16]
    assert max(source.read.index(tile) for tile in visible) < in_flight + len(visible)


def test_cancel_stops_planned_work() -> None:
    source = LockableSource()
    source.gate.clear()
    scheduler, results = _scheduler(source, readers=1, read_ahead=2)
    try:
        scheduler.request_all()
        scheduler.cancel()
        source.gate.set()
        assert scheduler.wait_idle(10)
    finally:
        scheduler.stop()
    assert sum(len(r.indices) for r in results) <= 2


def test_read_errors_are_reported_and_not_retried() -> None:
    errors: list[tuple[int, BaseException]] = []

    def flaky(index: int) -> np.ndarray:
        if index == 3:
            raise OSError("tile 3 is corrupt")
        return np.zeros((4, 4, 3), dtype=np.uint8)

    scheduler, results = _scheduler(flaky, on_error=lambda i, e: errors.append((i, e)))
    try:
        scheduler.request_view(0, 0, 500, 100)
        assert scheduler.wait_idle(10)
        scheduler.request_view(0, 0, 500, 100)  # asking again does not retry the broken tile
        assert scheduler.wait_idle(10)
    finally:
        scheduler.stop()
    assert [i for i, _ in errors] == [3]
    assert scheduler.stats().failed == 1
    assert sum(len(r.indices) for r in results) == 4


def test_invalid_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        TileScheduler(GRID, LockableSource(), predict, PredictionStore(GRID, ["v"]), batch_size=0)


def test_a_new_view_starts_with_a_small_batch_then_full_ones() -> None:
    source = LockableSource()
    scheduler, results = _scheduler(source, readers=2, first_batch=1)
    try:
        scheduler.request_view(0, 0, 1000, 400)  # 40 tiles
        assert scheduler.wait_idle(10)
        scheduler.request_view(1000, 1000, 2000, 1400)  # a camera move: 40 new tiles
        assert scheduler.wait_idle(10)
    finally:
        scheduler.stop()
    sizes = [len(r.indices) for r in results]
    assert sizes == [1] + [4] * 9 + [3] + [1] + [4] * 9 + [3]
    assert scheduler.first_batch == 1


def test_whole_slide_jobs_keep_full_batches() -> None:
    scheduler, results = _scheduler(LockableSource(), first_batch=1)
    try:
        scheduler.request_all()
        assert scheduler.wait_idle(10)
    finally:
        scheduler.stop()
    assert {len(r.indices) for r in results} == {4}
