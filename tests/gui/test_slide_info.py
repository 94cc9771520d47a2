from __future__ import annotations

from omicslens._napari.slide_info import SlideInfoWidget
from tests.conftest import CMU1


def test_slide_info_shows_resolution_and_associated_label(make_napari_viewer, qtbot) -> None:
    viewer = make_napari_viewer(show=False)
    widget = SlideInfoWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.layer_combo.count() == 0
    viewer.open(str(CMU1), plugin="omicslens")
    assert widget.layer_combo.currentText() == "CMU-1-Small-Region.svs"
    text = widget.details.toPlainText()
    assert "0.4990" in text and "Aperio MPP field" in text and "20x" in text
    assert [
        widget.associated_combo.itemText(i) for i in range(widget.associated_combo.count())
    ] == ["label", "macro", "thumbnail"]
    widget.associated_combo.setCurrentText("label")
    worker = widget.load_associated(open_layer=True)
    with qtbot.waitSignal(worker.finished, timeout=30000):
        pass
    qtbot.waitUntil(lambda: len(viewer.layers) == 2, timeout=5000)
    assert viewer.layers[-1].name == "CMU-1-Small-Region.svs [label]"
    assert viewer.layers[-1].data.shape == (463, 387, 3)
    assert widget.preview.pixmap() is not None and not widget.preview.pixmap().isNull()
    viewer.layers.clear()
    assert widget.layer_combo.count() == 0


def test_a_mistyped_resolution_is_corrected_in_slide_info(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
) -> None:
    """Issue 16: a typo of 5 um/px was accepted, remembered, and could not be changed."""
    import numpy as np
    import tifffile

    from omicslens._napari import reader as reader_module
    from omicslens.core.settings import remembered_mpp

    image = tmp_path / "no-resolution.tif"
    rng = np.random.default_rng(0)
    tifffile.imwrite(image, rng.integers(0, 255, (600, 800, 3), dtype=np.uint8), tile=(256, 256))
    monkeypatch.setattr(reader_module, "ask_resolution", lambda path, problem: 5.0)  # a typo
    viewer = make_napari_viewer(show=False)
    widget = SlideInfoWidget(viewer)
    viewer.open(str(image), plugin="omicslens")
    assert remembered_mpp(image) == 5.0 and widget.mpp_edit.text() == "5"
    widget.mpp_edit.setText("0.5")
    worker = widget.apply_resolution()
    with qtbot.waitSignal(worker.finished, timeout=30000):
        pass
    qtbot.waitUntil(lambda: "reopened" in widget.mpp_status.text(), timeout=10000)
    (layer,) = list(viewer.layers)
    np.testing.assert_allclose(layer.scale, (0.5, 0.5))
    assert layer.name == "no-resolution.tif"
    assert remembered_mpp(image) == 0.5  # the next opening uses the corrected value
    assert "remembered for this file" in widget.mpp_status.text()
    assert widget.mpp_edit.text() == "0.5"


def test_an_implausible_resolution_is_refused(make_napari_viewer) -> None:
    viewer = make_napari_viewer(show=False)
    widget = SlideInfoWidget(viewer)
    viewer.open(str(CMU1), plugin="omicslens")
    widget.mpp_edit.setText("")
    assert widget.apply_resolution() is None
    assert "between" in widget.mpp_status.text()
    assert viewer.layers[0].scale[0] == 0.499
