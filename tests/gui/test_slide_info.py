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
