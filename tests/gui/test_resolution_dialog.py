"""The resolution prompt shows the problem as written (issue 16: "<microns per pixel>" was
swallowed as an HTML tag)."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QLabel

from omicslens._napari.resolution_dialog import ResolutionDialog


def test_the_problem_text_survives_rich_text(qtbot) -> None:
    problem = "no resolution stated; pass --mpp X, or mpp=<microns per pixel> in Python"
    dialog = ResolutionDialog(Path("/data/a<b>.svs"), problem)
    qtbot.addWidget(dialog)
    label = dialog.findChild(QLabel)
    assert "mpp=&lt;microns per pixel&gt;" in label.text()
    assert "a&lt;b&gt;.svs" in label.text()
    dialog.field.setText("0.25")
    assert dialog.value() == 0.25
    dialog.field.setText("abc")
    assert dialog.value() is None


def test_a_red_cell_estimate_is_offered_as_a_button(qtbot) -> None:
    """Issue 16, item 7: a smear without a pixel size gets its red-cell estimate offered;
    the field stays empty until the user takes it."""
    estimate = (0.0721, "median red cell 104.0 px = 7.5 um")
    dialog = ResolutionDialog(Path("/data/smear.tif"), "no resolution stated", estimate=estimate)
    qtbot.addWidget(dialog)
    label = dialog.findChild(QLabel)
    assert "median red cell 104.0 px = 7.5 um" in label.text()
    assert "blood smear" in label.text() and "tissue section it means nothing" in label.text()
    assert dialog.estimate_button is not None
    assert dialog.estimate_button.text() == (
        "Blood smear only: use the red-cell estimate (0.0721 um/px)"
    )
    assert dialog.estimate_button.toolTip()
    assert dialog.field.text() == "" and dialog.value() is None
    dialog.estimate_button.click()
    assert dialog.value() == 0.0721


def test_histology_hints_without_an_estimate(qtbot) -> None:
    dialog = ResolutionDialog(Path("/data/slide.svs"), "no resolution stated")
    qtbot.addWidget(dialog)
    assert "40x" in dialog.findChild(QLabel).text()
    assert dialog.estimate_button is None
