"""Ask the user for a slide's resolution: an empty field, no pre-filled guess.

For a blood smear the red cells give a usable estimate (a typical red cell is 7.5 um
across): when the caller passes one (:func:`omicslens.hemato.resolution_hint.
red_cell_estimate_for`), the dialog offers a button that fills the field with it, and
says how it was measured. The field still starts empty: the estimate is offered, never
assumed. Without an estimate the dialog gives the usual histology scanner hints.
"""

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
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from omicslens.core.resolution import PLAUSIBLE_MPP

HISTOLOGY_HINT = "for reference: 40x scans are usually about 0.25, 20x about 0.5"


def estimate_button_text(mpp: float) -> str:
    return f"Blood smear only: use the red-cell estimate ({mpp:.3g} um/px)"


class ResolutionDialog(QDialog):
    """Modal dialog; OK stays disabled until the text is a plausible um/px value.

    ``estimate`` is ``(um/px, one-line reason)`` from the image's red cells, or None.
    """

    def __init__(
        self,
        path: Path,
        problem: str,
        parent: QWidget | None = None,
        estimate: tuple[float, str] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("OmicsLens: slide resolution needed")
        self.estimate = estimate
        if estimate is None:
            hint = f"Enter microns per pixel at full resolution ({HISTOLOGY_HINT})."
        else:
            # the estimate cannot tell a smear from tissue (it measures round stained
            # blobs): on an H&E image it is wrong, so tissue keeps its scanner hints
            hint = (
                f"Enter microns per pixel at full resolution ({HISTOLOGY_HINT}). For a "
                "<b>blood smear</b> only, the red cells give an estimate "
                f"({html.escape(estimate[1])}); on a tissue section it means nothing."
            )
        explanation = QLabel(
            # the label is rich text: file names and messages are escaped, or a message's
            # "mpp=<microns per pixel>" would vanish as an unknown tag
            f"<b>{html.escape(path.name)}</b> does not state its pixel size.<br>"
            f"<small>{html.escape(problem)}</small><br><br>"
            f"{hint} It is remembered for this file."
        )
        explanation.setWordWrap(True)
        self.field = QLineEdit()
        self.field.setPlaceholderText("microns per pixel, e.g. from the scanner report")
        self.field.setToolTip("Microns per pixel at full resolution (level 0)")
        low, high = PLAUSIBLE_MPP
        validator = QDoubleValidator(low, high, 6, self)
        validator.setNotation(QDoubleValidator.StandardNotation)
        self.field.setValidator(validator)
        self.estimate_button: QPushButton | None = None
        if estimate is not None:
            self.estimate_button = QPushButton(estimate_button_text(estimate[0]))
            self.estimate_button.setToolTip(
                f"Fill in the pixel size measured from this image's red cells: {estimate[1]}. "
                "Only meaningful for a blood smear."
            )
            self.estimate_button.clicked.connect(self.use_estimate)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.field.textChanged.connect(self._update_ok)
        layout = QVBoxLayout(self)
        layout.addWidget(explanation)
        layout.addWidget(self.field)
        if self.estimate_button is not None:
            layout.addWidget(self.estimate_button)
        layout.addWidget(self.buttons)
        self._update_ok()

    def use_estimate(self) -> None:
        """Fill the field with the red-cell estimate (the user still confirms with OK)."""
        if self.estimate is not None:
            # at most 6 decimals, as the validator accepts
            self.field.setText(f"{round(self.estimate[0], 6):g}")

    def _update_ok(self) -> None:
        ok = self.buttons.button(QDialogButtonBox.Ok)
        if ok is not None:
            ok.setEnabled(self.value() is not None)

    def value(self) -> float | None:
        try:
            mpp = float(self.field.text().replace(",", "."))
        except ValueError:
            return None
        low, high = PLAUSIBLE_MPP
        return mpp if low <= mpp <= high else None


def ask_resolution_dialog(
    path: Path, problem: str, estimate: tuple[float, str] | None = None
) -> float | None:
    """Ask for ``path``'s um/px; ``estimate`` (um/px, reason) is offered as a button."""
    if QApplication.instance() is None:
        return None
    dialog = ResolutionDialog(path, problem, QApplication.activeWindow(), estimate=estimate)
    if dialog.exec_() == QDialog.Accepted:
        return dialog.value()
    return None
