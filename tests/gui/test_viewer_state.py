"""The shared viewer state: docks see each other's work without looking each other up;
removing a slide layer stops its inference and closes its slide; closing the viewer
leaves no OmicsLens thread behind; long jobs show progress bars and can be cancelled."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from omicslens._napari.inference_widget import InferenceWidget
from omicslens._napari.layers import slide_of
from omicslens._napari.regions_widget import RegionsWidget
from omicslens._napari.state import viewer_state
from tests.conftest import CMU1
from tests.helpers.bundles import make_bundle


def _omicslens_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("omicslens")]


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Reads after the first 200 wait for this event: the test decides when work ends."""
    from omicslens.models.session import InferenceSession

    real = InferenceSession.read_patch
    opened = threading.Event()
    count = [0]

    def gated(self: InferenceSession, index: int) -> np.ndarray:
        count[0] += 1
        if count[0] > 200:
            opened.wait(30)
        return real(self, index)

    monkeypatch.setattr(InferenceSession, "read_patch", gated)
    yield opened
    opened.set()


def _predicting(viewer, qtbot, tmp_path: Path) -> InferenceWidget:
    widget = InferenceWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.add_model_folder(make_bundle(tmp_path / "bundle", patch_size=64, spacing=0.25))
    widget.load_model()
    qtbot.waitUntil(lambda: widget.live is not None, timeout=30000)
    return widget


def test_removing_the_slide_layer_stops_its_inference(
    make_napari_viewer, qtbot, tmp_path: Path, cache: Path, gate: threading.Event
) -> None:
    viewer = make_napari_viewer(show=True)
    layer = viewer.open(str(CMU1), plugin="omicslens")[0]
    slide = slide_of(layer)
    widget = _predicting(viewer, qtbot, tmp_path)
    state = viewer_state(viewer)
    assert state.live is widget.live  # published for the other docks
    job = widget.predict_whole_slide()
    live = widget.live
    qtbot.waitUntil(lambda: live.stats().done > 0, timeout=30000)
    assert not live.scheduler.idle  # still working
    viewer.layers.remove(layer)
    at_removal = live.session.store.done_count
    assert state.live is None and widget.live is None
    assert "removed" in widget.status.text()
    gate.set()  # the blocked reads may return now
    qtbot.waitUntil(lambda: job.finished.is_set(), timeout=20000)
    qtbot.waitUntil(lambda: not _omicslens_threads(), timeout=20000)
    # at most the batch that was running finished; the rest of the slide was dropped
    assert live.session.store.done_count <= at_removal + live.scheduler.batch_size
    assert live.session.store.done_count < int(live.session.tissue_tiles.sum())
    qtbot.waitUntil(lambda: slide.closed, timeout=10000)  # its file handles are released


def test_closing_the_viewer_joins_every_omicslens_thread(
    make_napari_viewer, qtbot, tmp_path: Path, cache: Path, gate: threading.Event
) -> None:
    before = _omicslens_threads()
    assert not before
    viewer = make_napari_viewer(show=True)
    viewer.open(str(CMU1), plugin="omicslens")
    widget = _predicting(viewer, qtbot, tmp_path)
    regions = RegionsWidget(viewer)
    viewer.window.add_dock_widget(regions)
    widget.predict_whole_slide()
    qtbot.waitUntil(lambda: widget.live.stats().done > 0, timeout=30000)
    assert _omicslens_threads()  # readers and the model thread are running
    threading.Timer(1.0, gate.set).start()  # reads blocked in the gate end a second later
    viewer.close()
    assert not _omicslens_threads(), [t.name for t in _omicslens_threads()]


def test_jobs_show_progress_and_cancel(
    make_napari_viewer, qtbot, tmp_path: Path, cache: Path, gate: threading.Event
) -> None:
    viewer = make_napari_viewer(show=True)
    viewer.open(str(CMU1), plugin="omicslens")
    widget = _predicting(viewer, qtbot, tmp_path)
    widget.follow_check.setChecked(False)
    job = widget.predict_whole_slide()
    assert job is not None and job.bar is not None
    qtbot.waitUntil(lambda: job.bar.n > 0, timeout=30000)  # the activity bar moves
    assert job.bar.total == int(widget.live.session.tissue_tiles.sum())
    widget.cancel()
    gate.set()
    qtbot.waitUntil(lambda: job.finished.is_set(), timeout=20000)
    qtbot.waitUntil(lambda: widget.live.scheduler.idle, timeout=20000)
    left = int((~widget.live.session.store.done_mask() & widget.live.session.tissue_tiles).sum())
    assert left > 0  # cancelled before the end
    widget.close_live()


def test_regions_follow_the_shown_output(
    make_napari_viewer, qtbot, tmp_path: Path, cache: Path
) -> None:
    slide = tmp_path / CMU1.name  # regions autosave beside the slide: not in the repository
    shutil.copy(CMU1, slide)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(slide), plugin="omicslens")
    widget = InferenceWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.add_model_folder(make_bundle(tmp_path / "b", patch_size=32, spacing=4.0))
    widget.follow_check.setChecked(False)
    regions = RegionsWidget(viewer)  # before any model: regions can still be drawn
    viewer.window.add_dock_widget(regions)
    shapes = regions.new_layer()
    assert shapes is not None
    shapes.add_rectangles(np.array([[300.0, 400.0], [1500.0, 1600.0]]))
    widget.load_model()
    qtbot.waitUntil(lambda: widget.live is not None, timeout=30000)
    regions.predict_missing()
    qtbot.waitUntil(lambda: regions.predict_job.finished.is_set(), timeout=60000)
    qtbot.waitUntil(
        lambda: bool(regions.summaries) and regions.summaries[0].unpredicted == 0, timeout=30000
    )
    widget.output_list.setCurrentRow(1)  # CD74
    qtbot.waitUntil(lambda: "CD74" in regions.status.text() and not regions.busy, timeout=30000)
    column = [regions.table.horizontalHeaderItem(c).text() for c in range(12)].index("mean")
    expected = float(regions.report.regions[0].values[:, 1].mean())
    assert float(regions.table.item(0, column).text()) == pytest.approx(expected, abs=1e-3)
    regions._debounce.stop()
    widget.close_live()
