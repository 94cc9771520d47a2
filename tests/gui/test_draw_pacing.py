"""Draws of arriving tiles are paced by what a frame costs; a new view's first batch is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from omicslens._napari.draw_pacing import CEILING_MS, FLOOR_MS, DrawPacer
from omicslens.core.scheduler import BatchResult
from tests.conftest import CMU1
from tests.gui.test_inference import _start
from tests.helpers.bundles import make_bundle


def test_the_interval_keeps_drawing_to_its_share_of_the_main_thread() -> None:
    pacer = DrawPacer(share=0.2)
    assert pacer.interval_ms == FLOOR_MS  # nothing measured yet: the old fixed rate
    pacer.record(10.0)  # a GPU-backed canvas: 10 ms frames, 5 per 100 ms allowed
    assert pacer.interval_ms == FLOOR_MS
    pacer = DrawPacer(share=0.2)
    pacer.record(60.0)  # software GL: 60 ms frames drawn at most every 300 ms
    assert pacer.interval_ms == pytest.approx(300.0)
    pacer.record(5000.0)  # a frame stuck behind something else: never slower than 1 s
    assert pacer.interval_ms == CEILING_MS
    assert pacer.frames == 2


def test_one_slow_frame_moves_the_estimate_only_partly() -> None:
    pacer = DrawPacer(smoothing=0.5)
    pacer.record(100.0)
    pacer.record(200.0)
    assert pacer.frame_ms == pytest.approx(150.0)


@pytest.mark.parametrize(
    "kwargs", [{"share": 0.0}, {"share": 1.5}, {"smoothing": 0.0}, {"floor_ms": 2, "ceiling_ms": 1}]
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DrawPacer(**kwargs)


def test_it_measures_the_frames_of_a_real_canvas(make_napari_viewer, qtbot) -> None:
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.random.default_rng(0).random((256, 256)))
    pacer = DrawPacer()
    stop = pacer.watch(viewer)
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    canvas.update()
    # a fresh viewer's first frame under llvmpipe, with another test process beside it
    qtbot.waitUntil(lambda: pacer.frames >= 1, timeout=20000)
    assert pacer.frame_ms is not None and pacer.frame_ms > 0
    stop()
    counted = pacer.frames
    canvas.update()
    qtbot.wait(300)
    assert pacer.frames == counted  # stopped: frames are no longer measured


def _batch(live, tiles: np.ndarray) -> BatchResult:
    outputs = len(live.session.bundle.output_names)
    return BatchResult(0, tiles, np.ones((len(tiles), outputs), dtype=np.float32))


def test_a_new_views_first_batch_is_drawn_at_once_later_ones_are_paced(
    make_napari_viewer, qtbot, tmp_path: Path, cache: Path
) -> None:
    viewer = make_napari_viewer(show=True)
    viewer.open(str(CMU1), plugin="omicslens")
    bundle = make_bundle(tmp_path / "bundle", patch_size=32, spacing=2.0)
    widget = _start(viewer, qtbot, bundle)
    live = widget.live
    qtbot.waitUntil(lambda: live.scheduler.idle, timeout=30000)
    live.set_follow_view(False)  # only this test moves the view and delivers batches
    qtbot.wait(200)
    live.drain()
    live.pacer.floor_ms = 800.0  # as if each frame cost 160 ms (software GL)
    tissue = np.flatnonzero(live.session.tissue_tiles.ravel())
    tiles = tissue[:3]

    live.update_view()  # a camera move
    live._from_worker(_batch(live, tiles[:1]))
    qtbot.waitUntil(lambda: not live._pending, timeout=2000)  # drawn without waiting
    drawn_first = live._last_drain

    live._from_worker(_batch(live, tiles[1:2]))
    qtbot.wait(300)
    assert live._pending  # the second batch of the same view waits for the interval
    qtbot.waitUntil(lambda: not live._pending, timeout=3000)
    assert live._last_drain - drawn_first >= 0.75
    assert np.isfinite(live.overlay.raster.ravel()[tiles[:2]]).all()

    live.update_view()  # the next move's first batch again goes straight to the screen
    live._from_worker(_batch(live, tiles[2:3]))
    qtbot.waitUntil(lambda: not live._pending, timeout=500)
    widget.close_live()
    live.wait_closed()


def test_the_batch_that_completes_the_view_is_drawn_at_once(
    make_napari_viewer, qtbot, tmp_path: Path, cache: Path
) -> None:
    viewer = make_napari_viewer(show=True)
    viewer.open(str(CMU1), plugin="omicslens")
    bundle = make_bundle(tmp_path / "bundle", patch_size=32, spacing=2.0)
    widget = _start(viewer, qtbot, bundle)
    live = widget.live
    qtbot.waitUntil(lambda: live.scheduler.idle, timeout=30000)
    live.set_follow_view(False)
    qtbot.wait(200)
    live.drain()
    live.pacer.floor_ms = 800.0
    store = live.session.store
    view = np.flatnonzero(~store.done_mask().ravel())[:3]  # tiles nothing predicted yet
    assert len(view) == 3

    live.update_view()
    live.view_tiles = view  # as if these three were what the camera now shows
    for tile in view[:2]:  # the first batch at once, the second paced (view not complete)
        store.put(view[:1] if tile == view[0] else view[1:2], np.ones((1, len(store.output_names))))
        live._from_worker(_batch(live, np.array([tile])))
    qtbot.wait(200)
    assert live._pending  # the second batch waits for the interval
    store.put(view[2:], np.ones((1, len(store.output_names))))
    live._from_worker(_batch(live, view[2:]))  # the view's last tiles
    qtbot.waitUntil(lambda: not live._pending, timeout=300)  # drawn without waiting 800 ms
    assert np.isfinite(live.overlay.raster.ravel()[view]).all()
    widget.close_live()
    live.wait_closed()
