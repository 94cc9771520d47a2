"""The OmicsLens panel at 1,366 x 768 (issue 16, item 2): every tab usable, lists with
room for rows, the slide fitted to the canvas after the panel opened, the scale bar on.
Screenshots go to ``$OMICSLENS_SHOTS`` when set (for the user guide; look at them)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtWidgets import QAbstractButton, QApplication

from omicslens._napari.cell_gallery import MIN_HEIGHT_PX
from omicslens._napari.layers import slide_of
from omicslens._napari.panel import OmicsLensPanel
from tests.conftest import SAMPLES

SCREEN = (1366, 768)


def _pump(qtbot, ms: int = 600) -> None:
    qtbot.wait(ms)
    QApplication.processEvents()


@pytest.fixture
def laptop(make_napari_viewer, qtbot) -> tuple[object, OmicsLensPanel]:
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.showNormal()
    window.resize(*SCREEN)
    viewer.open(str(SAMPLES / "her2st-C6-half.ome.tif"), plugin="omicslens")
    _, panel = viewer.window.add_plugin_dock_widget("omicslens", "OmicsLens")
    _pump(qtbot, 1000)
    return viewer, panel


def test_every_tab_fits_a_laptop_screen(laptop, qtbot, tmp_path: Path) -> None:
    viewer, panel = laptop
    assert isinstance(panel, OmicsLensPanel)
    window = viewer.window._qt_window
    assert window.height() <= SCREEN[1] and window.width() <= SCREEN[0]
    canvas = viewer.window._qt_viewer.canvas.native
    assert canvas.width() >= 450  # the slide keeps most of the screen
    assert panel.width() <= 520
    shots = Path(os.environ.get("OMICSLENS_SHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    lists = {
        "Predict": [panel.predict.output_list],
        "Regions": [panel.regions.table, panel.regions.compare_table],
        "Blood smear": [panel.smear.gallery],
    }
    for title in panel.TABS:
        panel.show_tab(title)
        _pump(qtbot)
        area = panel.tabs.currentWidget()
        page = area.widget()
        for button in page.findChildren(QAbstractButton):
            if not button.isVisibleTo(page):
                continue
            # every control can be reached: scrolled to, it lies inside the visible area
            area.ensureWidgetVisible(button, 0, 0)
            _pump(qtbot, 10)
            corner = button.mapTo(area.viewport(), button.rect().topLeft())
            assert 0 <= corner.y() <= area.viewport().height() - 5, (title, button.text())
            assert button.height() >= 18, (title, button.text())  # not squashed
        for widget in lists.get(title, []):
            assert widget.height() >= 100, (title, type(widget).__name__, widget.height())
        if title == "Blood smear":  # the review is done in the gallery: two rows of icons
            assert panel.smear.gallery.height() >= MIN_HEIGHT_PX, panel.smear.gallery.height()
        area.verticalScrollBar().setValue(0)
        _pump(qtbot, 200)
        viewer.screenshot(
            str(shots / f"panel-{title.lower().replace(' ', '-')}.png"), canvas_only=False
        )


def test_the_slide_is_fitted_after_the_panel_opens(laptop) -> None:
    viewer, _ = laptop
    layer = next(layer for layer in viewer.layers if slide_of(layer) is not None)
    assert viewer.canvas.overlays.scale_bar.visible
    canvas = np.array(viewer.window._qt_viewer.canvas.size)[::-1]  # (h, w)
    extent = np.array(layer.extent.world[1][-2:]) - np.array(layer.extent.world[0][-2:])
    shown = extent * viewer.scene.camera.zoom  # screen pixels the slide spans
    assert (shown <= canvas * 1.02).all()  # all of it on screen
    assert (shown >= canvas * 0.8).any()  # and filling the canvas in one direction
