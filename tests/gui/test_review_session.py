"""A saved session reopens identically (issue 16, item 4), in real viewers: slide,
model, shown output with its colours and limits, regions, camera; a changed slide is
refused with a message naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from omicslens._napari.layers import slide_of
from omicslens._napari.panel import OmicsLensPanel
from omicslens._napari.review_session import restore, save
from omicslens.cli.main import main
from omicslens.core.session import SessionSlideError, load_session
from tests.conftest import CMU1
from tests.helpers.bundles import make_bundle


def _panel(make_napari_viewer) -> OmicsLensPanel:
    viewer = make_napari_viewer(show=True)
    panel = OmicsLensPanel(viewer)
    viewer.window.add_dock_widget(panel)
    return panel


def _reviewed(make_napari_viewer, qtbot, tmp_path: Path) -> tuple[OmicsLensPanel, Path]:
    """A review on a copy of CMU-1: tiny model, CD74 in viridis with fixed limits, one
    renamed region, a zoomed camera."""
    slide = tmp_path / "slides" / CMU1.name
    slide.parent.mkdir()
    shutil.copy(CMU1, slide)
    panel = _panel(make_napari_viewer)
    panel.viewer.open(str(slide), plugin="omicslens")
    predict = panel.predict
    predict.add_model_folder(make_bundle(tmp_path / "bundle", patch_size=32, spacing=4.0))
    predict.load_model()
    qtbot.waitUntil(lambda: predict.live is not None, timeout=30000)
    assert predict.select_output("CD74")
    qtbot.waitUntil(lambda: predict.live.output.label == "CD74", timeout=30000)
    predict.display.colormap_combo.setCurrentText("viridis")
    predict.display.opacity_slider.setValue(40)
    predict.display.auto_contrast.setChecked(False)
    predict.display.low_spin.setValue(0.1)
    predict.display.high_spin.setValue(0.9)
    shapes = panel.regions.new_layer()
    shapes.add_rectangles(np.array([[300.0, 400.0], [1500.0, 1600.0]]))
    regions = panel.regions
    regions._debounce.stop()
    regions.refresh()  # statistics in a worker: the table fills when they return
    qtbot.waitUntil(lambda: regions.table.rowCount() == 1 and not regions.busy, timeout=30000)
    regions.table.item(0, 0).setText("tumour core")
    regions._debounce.stop()
    regions.refresh()
    qtbot.waitUntil(lambda: not regions.busy, timeout=30000)
    panel.viewer.scene.camera.center = (700.0, 900.0)
    panel.viewer.scene.camera.zoom = 1.7
    return panel, slide


def test_a_saved_session_reopens_identically(make_napari_viewer, qtbot, tmp_path, cache) -> None:
    panel, slide = _reviewed(make_napari_viewer, qtbot, tmp_path)
    path = save(panel, tmp_path / "review.omicslens.json")
    saved = json.loads(path.read_text())
    assert saved["format"] == "omicslens-session" and saved["output"]["label"] == "CD74"
    panel.predict.close_live()

    again = _panel(make_napari_viewer)
    restore(again, path)
    qtbot.waitUntil(lambda: again.predict.live is not None, timeout=30000)
    qtbot.waitUntil(lambda: again.predict.live.output.label == "CD74", timeout=30000)
    layer = next(layer for layer in again.viewer.layers if slide_of(layer) is not None)
    assert Path(slide_of(layer).path).resolve() == slide.resolve()
    assert [r.name for r in again.regions.regions()] == ["tumour core"]
    np.testing.assert_allclose(
        again.regions.regions()[0].vertices, panel.regions.regions()[0].vertices, atol=1e-3
    )
    overlay = again.predict.live.overlay.layer
    assert overlay.colormap.name == "viridis"
    assert overlay.opacity == pytest.approx(0.4)
    np.testing.assert_allclose(overlay.contrast_limits, (0.1, 0.9))
    assert not again.predict.display.auto_contrast.isChecked()
    qtbot.wait(300)  # the panel's first fit of the view has run by now: it kept the camera
    np.testing.assert_allclose(again.viewer.scene.camera.center[-2:], (700.0, 900.0))
    assert again.viewer.scene.camera.zoom == pytest.approx(1.7)
    again.predict.close_live()


def test_a_changed_slide_is_refused_by_name(make_napari_viewer, qtbot, tmp_path, cache) -> None:
    panel, slide = _reviewed(make_napari_viewer, qtbot, tmp_path)
    path = save(panel, tmp_path / "review.omicslens.json")
    panel.predict.close_live()
    with slide.open("ab") as handle:  # the file is no longer the slide the review was on
        handle.write(b"\0" * 1024)
    with pytest.raises(SessionSlideError, match=CMU1.name):
        restore(_panel(make_napari_viewer), path)
    assert load_session(path).regions[0].name == "tumour core"  # the session is intact


def test_view_session_on_the_command_line(make_napari_viewer, qtbot, tmp_path, cache) -> None:
    panel, _ = _reviewed(make_napari_viewer, qtbot, tmp_path)
    path = save(panel, tmp_path / "review.omicslens.json")
    panel.predict.close_live()
    shot = tmp_path / "shot.png"
    assert main(["view", str(path), "--screenshot", str(shot)]) == 0
    assert shot.stat().st_size > 10_000
    broken = tmp_path / "broken.omicslens.json"
    broken.write_text("{not json")
    assert main(["view", str(broken)]) == 1


@pytest.mark.slow
def test_smear_corrections_come_back_with_the_session(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
) -> None:
    from tests.conftest import SAMPLES

    smear = tmp_path / "bccd-six-fields.tif"
    shutil.copy(SAMPLES / "bccd-six-fields.tif", smear)
    panel = _panel(make_napari_viewer)
    panel.viewer.open(str(smear), plugin="omicslens")
    panel.smear.run()
    qtbot.waitUntil(lambda: panel.smear.analysis is not None, timeout=120000)
    cell = panel.smear.analysis.cells[0]
    new = "Basophil" if panel.smear.analysis.label(0) != "Basophil" else "Monocyte"
    panel.smear.correct([cell.id], new)
    path = save(panel, tmp_path / "smear.omicslens.json")
    assert load_session(path).corrections[0].label == new
    # another config folder: the corrections autosave is not there, only the session
    monkeypatch.setenv("OMICSLENS_CONFIG_DIR", str(tmp_path / "elsewhere"))
    again = _panel(make_napari_viewer)
    restore(again, path)
    again.smear.run()
    qtbot.waitUntil(lambda: again.smear.analysis is not None, timeout=120000)
    analysis = again.smear.analysis
    index = [c.id for c in analysis.cells].index(cell.id)
    assert analysis.label(index) == new and analysis.corrections == {cell.id: new}
    assert "Session: 1 of 1 corrections applied." in again.smear.status.text()
