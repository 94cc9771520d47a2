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
