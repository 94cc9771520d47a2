"""Every control says what it does: tooltips given in one place per widget."""

from __future__ import annotations

from qtpy.QtWidgets import QWidget


def set_tooltips(*pairs: tuple[QWidget, str]) -> None:
    """Give each widget its tooltip (``tests/gui/test_tooltips.py`` checks none lacks one)."""
    for widget, text in pairs:
        widget.setToolTip(text)
