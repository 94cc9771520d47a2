"""Ask the user for a slide's resolution: an empty field, no pre-filled guess."""

from __future__ import annotations

import html
from pathlib import Path

from qtpy.QtGui import QDoubleValidator
from qtpy.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from omicslens.core.resolution import PLAUSIBLE_MPP


class ResolutionDialog(QDialog):
    """Modal dialog; OK stays disabled until the text is a plausible um/px value."""

    def __init__(self, path: Path, problem: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("OmicsLens: slide resolution needed")
        explanation = QLabel(
            # the label is rich text: file names and messages are escaped, or a message's
            # "mpp=<microns per pixel>" would vanish as an unknown tag
            f"<b>{html.escape(path.name)}</b> does not state its pixel size.<br>"
            f"<small>{html.escape(problem)}</small><br><br>"
            "Enter microns per pixel at full resolution (for reference: 40x scans are "
            "usually about 0.25, 20x about 0.5). It is remembered for this file."
        )
        explanation.setWordWrap(True)
        self.field = QLineEdit()
        self.field.setPlaceholderText("microns per pixel, e.g. from the scanner report")
        low, high = PLAUSIBLE_MPP
        validator = QDoubleValidator(low, high, 6, self)
        validator.setNotation(QDoubleValidator.StandardNotation)
        self.field.setValidator(validator)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.field.textChanged.connect(self._update_ok)
        layout = QVBoxLayout(self)
        layout.addWidget(explanation)
        layout.addWidget(self.field)
        layout.addWidget(self.buttons)
        self._update_ok()

    def _update_ok(self) -> None:
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(self.value() is not None)

    def value(self) -> float | None:
        try:
            mpp = float(self.field.text().replace(",", "."))
        except ValueError:
            return None
        low, high = PLAUSIBLE_MPP
        return mpp if low <= mpp <= high else None


def ask_resolution_dialog(path: Path, problem: str) -> float | None:
    if QApplication.instance() is None:
        return None
    dialog = ResolutionDialog(path, problem, QApplication.activeWindow())
    if dialog.exec_() == QDialog.Accepted:
        return dialog.value()
    return None
