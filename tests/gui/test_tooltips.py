"""Every control of every OmicsLens dock says what it does (issue 16, item 6)."""

from __future__ import annotations

import pytest
from qtpy.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QSlider,
    QTabBar,
    QWidget,
)

from omicslens._napari.inference_widget import InferenceWidget
from omicslens._napari.panel import OmicsLensPanel
from omicslens._napari.regions_widget import RegionsWidget
from omicslens._napari.slide_info import SlideInfoWidget
from omicslens._napari.smear_widget import SmearWidget

CONTROLS = (QAbstractButton, QComboBox, QLineEdit, QAbstractSpinBox, QSlider)


def _inside_a_view_or_editor(widget: QWidget) -> bool:
    """Table corner buttons, a combo's or spin box's own line edit, a tab bar's scroll
    arrows: parts, not controls."""
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, (QAbstractItemView, QComboBox, QAbstractSpinBox, QTabBar)):
            return True
        parent = parent.parentWidget()
    return False


@pytest.mark.parametrize(
    "dock", [InferenceWidget, RegionsWidget, SmearWidget, SlideInfoWidget, OmicsLensPanel]
)
def test_every_control_has_a_tooltip(make_napari_viewer, dock) -> None:
    viewer = make_napari_viewer(show=False)
    widget = dock(viewer)
    controls = [
        c for kind in CONTROLS for c in widget.findChildren(kind) if not _inside_a_view_or_editor(c)
    ]
    assert len(controls) >= 5
    missing = [
        f"{type(c).__name__} {getattr(c, 'text', lambda: '')()!r}"
        for c in controls
        if not c.toolTip().strip()
    ]
    assert not missing, f"{dock.__name__}: controls without a tooltip: {missing}"
