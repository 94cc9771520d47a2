"""A real napari viewer opens slides through the plugin, in micrometres, with pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from omicslens._napari import reader as reader_module
from omicslens._napari.layers import slide_of
from omicslens._napari.reader import napari_get_reader
from tests.conftest import CMU1, SAMPLES, TCGA


def _wait_for_pixels(viewer, qtbot) -> np.ndarray:
    shot: dict[str, np.ndarray] = {}

    def drawn() -> bool:
        shot["image"] = viewer.screenshot(canvas_only=True, flash=False)
        rgb = shot["image"][..., :3]
        return rgb.std() > 10  # tissue texture, not a flat background

    qtbot.waitUntil(drawn, timeout=10000)
    return shot["image"]


def test_reader_declines_files_it_cannot_read(tmp_path: Path) -> None:
    text = tmp_path / "table.csv"
    text.write_text("a,b\n1,2\n")
    assert napari_get_reader(str(text)) is None
    assert napari_get_reader(str(tmp_path)) is None  # a plain folder is not OME-Zarr
    assert callable(napari_get_reader(str(CMU1)))


def test_open_svs_in_viewer_scale_in_micrometres(make_napari_viewer, qtbot) -> None:
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(CMU1), plugin="omicslens")
    assert len(layers) == 1
    layer = layers[0]
    assert layer.rgb
    np.testing.assert_allclose(layer.scale, (0.499, 0.499))
    assert [str(u) for u in layer.units] == ["micrometer", "micrometer"]
    assert slide_of(layer) is not None
    assert layer.metadata["omicslens"]["info"]["mpp_source"] == "Aperio MPP field"
    viewer.reset_view()
    image = _wait_for_pixels(viewer, qtbot)
    # H&E on screen: pinkish (red channel above green) somewhere in the canvas
    rgb = image[..., :3].astype(float)
    assert (rgb[..., 0] - rgb[..., 1]).max() > 30


def test_missing_resolution_asks_once_and_remembers(make_napari_viewer, monkeypatch) -> None:
    asked: list[str] = []

    def answer(path: Path, problem: str) -> float:
        asked.append(problem)
        return 0.2527

    monkeypatch.setattr(reader_module, "ask_resolution", answer)
    viewer = make_napari_viewer(show=False)
    layer = viewer.open(str(TCGA), plugin="omicslens")[0]
    np.testing.assert_allclose(layer.scale, (0.2527, 0.2527))
    assert layer.multiscale and len(layer.data) == 2
    assert len(asked) == 1 and "MPP" in asked[0]
    viewer.layers.clear()
    viewer.open(str(TCGA), plugin="omicslens")
    assert len(asked) == 1  # remembered, not asked again


def _notifications(monkeypatch) -> list[str]:
    """The messages of the notifications dispatched (the objects in ``_notifications.sent``)."""
    from napari.utils.notifications import notification_manager

    shown: list[str] = []
    sent: list = []

    def dispatch(notification) -> None:
        sent.append(notification)
        shown.append(notification.message)

    monkeypatch.setattr(notification_manager, "dispatch", dispatch)
    _notifications.sent = sent  # type: ignore[attr-defined]
    return shown


def test_cancelled_resolution_leaves_viewer_usable(make_napari_viewer, monkeypatch) -> None:
    monkeypatch.setattr(reader_module, "ask_resolution", lambda path, problem: None)
    shown = _notifications(monkeypatch)
    viewer = make_napari_viewer(show=False)
    viewer.open(str(TCGA), plugin="omicslens")
    assert len(viewer.layers) == 0
    assert len(shown) == 1 and TCGA.name in shown[0] and "MPP" in shown[0], shown
    viewer.open(str(CMU1), plugin="omicslens")  # still works
    assert len(viewer.layers) == 1


def test_a_text_file_named_svs_gets_our_message(make_napari_viewer, monkeypatch, tmp_path) -> None:
    fake = tmp_path / "notes.svs"
    fake.write_text("not a slide")
    shown = _notifications(monkeypatch)
    viewer = make_napari_viewer(show=False)
    viewer.open(str(fake), plugin="omicslens")
    assert len(viewer.layers) == 0
    assert len(shown) == 1 and "notes.svs" in shown[0] and "not TIFF" in shown[0], shown
    # short: the file's name, not its folder; the whole path and the kind under Details
    assert str(tmp_path) not in shown[0] and len(shown[0]) <= 110
    (notification,) = _notifications.sent  # type: ignore[attr-defined]
    ((label, _callback),) = notification.actions
    assert label == "Details"
    assert f"File: {fake}" in notification.details and "Kind: " in notification.details
    from omicslens._napari.notify import Problem, details_dialog

    box = details_dialog(Problem(notification.message, notification.details))
    assert box.text() == shown[0] and str(fake) in box.informativeText()
    assert "Traceback" not in box.informativeText()


def test_open_without_plugin_name_uses_omicslens_once_preferred(make_napari_viewer) -> None:
    from napari.settings import get_settings

    from omicslens._napari.preferences import prefer_omicslens_reader

    viewer = make_napari_viewer(show=False)
    before = dict(get_settings().plugins.extension2reader)
    try:
        get_settings().plugins.extension2reader = {"*.ome.tiff": "napari"}  # the user's choice
        assert "*.ome.tif" in prefer_omicslens_reader()
        preferences = get_settings().plugins.extension2reader
        assert preferences["*.ome.tiff"] == "napari"  # never replaced
        assert preferences["*.svs"] == "omicslens"
        # plugin=None is napari's File > Open and drag-and-drop route: the preference
        # decides (``viewer.open(path)`` alone means napari's built-in reader)
        layers = viewer.open(str(SAMPLES / "her2st-C6-half.ome.tif"), plugin=None)
        assert slide_of(layers[0]) is not None  # a pyramid in micrometres, not pixels
        assert viewer.canvas.overlays.scale_bar.visible
    finally:
        get_settings().plugins.extension2reader = before


def test_resolution_dialog_requires_a_plausible_number(qtbot) -> None:
    from qtpy.QtWidgets import QDialogButtonBox

    from omicslens._napari.resolution_dialog import ResolutionDialog

    dialog = ResolutionDialog(TCGA, "no MPP")
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.Ok)
    assert dialog.field.text() == ""  # nothing pre-filled: no guess
    assert not ok.isEnabled()
    dialog.field.setText("0.2527")
    assert ok.isEnabled() and dialog.value() == pytest.approx(0.2527)
    dialog.field.setText("900")
    assert dialog.value() is None and not ok.isEnabled()


@pytest.mark.parametrize("key", ["cmu1", "her2st-c6", "bccd-smear", "bccd-fields"])
def test_sample_data_opens(make_napari_viewer, key: str) -> None:
    viewer = make_napari_viewer(show=False)
    layers = viewer.open_sample("omicslens", key)
    assert len(layers) == 1
    slide = slide_of(layers[0])
    assert slide is not None
    assert layers[0].scale[0] == pytest.approx(slide.mpp_y)


def test_opening_a_slide_bounds_naparis_dask_cache(monkeypatch) -> None:
    from napari.utils import resize_dask_cache
    from napari.utils._dask_utils import _DASK_CACHE

    from omicslens._napari import dask_cache
    from omicslens._napari.layers import slide_layer_data
    from omicslens.core import open_slide
    from tests.conftest import CMU1

    before = int(_DASK_CACHE.cache.available_bytes)
    monkeypatch.setattr(dask_cache, "_done", False)
    monkeypatch.setenv("OMICSLENS_NAPARI_DASK_CACHE_MIB", "64")
    resize_dask_cache(512 * 2**20)
    try:
        with open_slide(CMU1) as slide:
            slide_layer_data(slide)
        assert _DASK_CACHE.cache.available_bytes == 64 * 2**20
        monkeypatch.setattr(dask_cache, "_done", False)
        resize_dask_cache(16 * 2**20)  # a user's smaller setting is kept
        with open_slide(CMU1) as slide:
            slide_layer_data(slide)
        assert _DASK_CACHE.cache.available_bytes == 16 * 2**20
    finally:
        resize_dask_cache(before)
