"""How the shown prediction map looks: colour map, opacity, colour limits, snapshot.

One section of the Predict tab. It acts on whichever prediction overlay the tab shows
(``overlay()`` returns it, or None before a model is loaded), and it is what a saved
session records of the display: the colour map, the opacity and the limits the user
fixed (None while the limits follow the predicted tiles).
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from omicslens._napari.tooltips import set_tooltips

if TYPE_CHECKING:
    from omicslens._napari.overlay import PredictionOverlay

COLORMAPS = ("inferno", "viridis", "magma", "turbo", "plasma", "gray")
DEFAULT_OPACITY = 0.6


class DisplayControls(QWidget):
    """Colour map, opacity, automatic or fixed colour limits, and the PNG snapshot."""

    def __init__(
        self,
        viewer: Any,
        overlay: Callable[[], PredictionOverlay | None],
        say: Callable[[str], None],
    ) -> None:
        super().__init__()
        self.viewer = viewer
        self.overlay = overlay
        self.say = say
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(COLORMAPS)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(round(DEFAULT_OPACITY * 100))
        self.auto_contrast = QCheckBox("auto (1st-99th percentile)")
        self.auto_contrast.setChecked(True)
        self.low_spin = QDoubleSpinBox()
        self.high_spin = QDoubleSpinBox()
        for spin in (self.low_spin, self.high_spin):
            spin.setRange(-1e6, 1e6)
            spin.setDecimals(4)
            spin.setEnabled(False)
        self.snapshot_button = QPushButton("Snapshot PNG (scale bar, colour bar)…")
        set_tooltips(
            (self.colormap_combo, "Colour map of the shown output"),
            (self.opacity_slider, "Opacity of the prediction overlay over the slide"),
            (self.auto_contrast, "Colour limits from the 1st-99th percentile of predicted tiles"),
            (self.low_spin, "Lower colour limit (untick auto to edit)"),
            (self.high_spin, "Upper colour limit (untick auto to edit)"),
            (
                self.snapshot_button,
                "Save the view as a PNG with a scale bar and a colour bar of the shown output",
            ),
        )
        limits = QHBoxLayout()  # limits under the auto box: the tab stays narrow
        limits.addWidget(self.low_spin)
        limits.addWidget(QLabel("to"))
        limits.addWidget(self.high_spin)
        form = QFormLayout()
        form.addRow("Colormap", self.colormap_combo)
        form.addRow("Opacity", self.opacity_slider)
        form.addRow("Contrast", self.auto_contrast)
        form.addRow("", limits)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(self.snapshot_button)
        self.colormap_combo.currentTextChanged.connect(self._colormap_changed)
        self.opacity_slider.valueChanged.connect(self._opacity_changed)
        self.auto_contrast.toggled.connect(self._contrast_mode_changed)
        self.low_spin.valueChanged.connect(self._contrast_changed)
        self.high_spin.valueChanged.connect(self._contrast_changed)
        self.snapshot_button.clicked.connect(self._snapshot_dialog)

    @property
    def colormap(self) -> str:
        return self.colormap_combo.currentText()

    @property
    def opacity(self) -> float:
        return self.opacity_slider.value() / 100

    @property
    def fixed_limits(self) -> tuple[float, float] | None:
        """The limits the user fixed, or None while they follow the predicted tiles."""
        if self.auto_contrast.isChecked():
            return None
        return (self.low_spin.value(), self.high_spin.value())

    def apply(
        self,
        colormap: str | None,
        opacity: float | None,
        limits: tuple[float, float] | None,
    ) -> None:
        """Show the map with ``colormap``, ``opacity`` and ``limits`` (None = automatic)."""
        if colormap:
            self.colormap_combo.setCurrentText(colormap)
        if opacity is not None:
            self.opacity_slider.setValue(round(opacity * 100))
        if limits is None:
            self.auto_contrast.setChecked(True)
            return
        self.auto_contrast.setChecked(False)
        self.low_spin.setValue(limits[0])
        self.high_spin.setValue(limits[1])
        self._contrast_changed()

    def _colormap_changed(self, name: str) -> None:
        overlay = self.overlay()
        if overlay is not None:
            overlay.layer.colormap = name

    def _opacity_changed(self, value: int) -> None:
        overlay = self.overlay()
        if overlay is not None:
            overlay.layer.opacity = value / 100

    def _contrast_mode_changed(self, auto: bool) -> None:
        self.low_spin.setEnabled(not auto)
        self.high_spin.setEnabled(not auto)
        overlay = self.overlay()
        if overlay is None:
            return
        if auto:
            overlay.use_auto_contrast()
        else:  # start from the limits shown now
            low, high = overlay.layer.contrast_limits
            self.low_spin.setValue(low)
            self.high_spin.setValue(high)

    def _contrast_changed(self, value: float = 0.0) -> None:
        overlay = self.overlay()
        if overlay is not None and not self.auto_contrast.isChecked():
            low, high = self.low_spin.value(), self.high_spin.value()
            if high > low:
                overlay.set_fixed_contrast(low, high)

    def snapshot(self, path: str | Path, overwrite: bool = False) -> Path:
        """The canvas as PNG with the scale bar and the overlay's colour bar (atomic)."""
        from PIL import Image

        from omicslens._napari.preferences import show_scale_bar
        from omicslens.core.atomic import write_bytes_atomic

        target = Path(path)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; choose another name")
        show_scale_bar(self.viewer)
        overlay = self.overlay()
        if overlay is not None:
            overlay.layer.colorbar.visible = True
        pixels = self.viewer.screenshot(canvas_only=True, flash=False)
        buffer = BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        return write_bytes_atomic(target, buffer.getvalue())

    def _snapshot_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Snapshot", "snapshot.png", "PNG (*.png)")
        if path:
            self.snapshot(path, overwrite=True)  # the dialog asked before replacing
            self.say(f"Saved {path}.")
