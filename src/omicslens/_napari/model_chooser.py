"""The Predict dock's form: which slide layer, which model bundle, on which device.

Split out of :mod:`omicslens._napari.inference_widget` so that the dock keeps to loading
and running a model: this module builds the "Slide / Model / Device / Min. tissue per
tile" rows, lists the bundled models and any folder the user adds, and finds the chosen
slide layer. It reads the viewer's layers but starts nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QWidget,
)

from omicslens._napari.layers import fill_slide_layer_combo
from omicslens._napari.tooltips import set_tooltips
from omicslens.core.samples import bundled_tile_models

DEVICES = ("auto", "cpu", "cuda", "mps")


class ModelChooser:
    """The slide, model, device and minimum-tissue controls, laid out as one form."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.layer_combo = QComboBox()
        self.model_combo = QComboBox()
        self.browse_button = QPushButton("Folder…")
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.tissue_spin = QDoubleSpinBox()
        self.tissue_spin.setRange(0.0, 1.0)
        self.tissue_spin.setSingleStep(0.05)
        self.tissue_spin.setValue(0.25)
        self.tissue_spin.setToolTip(
            "Predict a tile only when at least this fraction of it is tissue (0 = every tile)"
        )
        set_tooltips(
            (self.layer_combo, "The slide (image layer) to predict on"),
            (self.model_combo, "A bundled model, or the folder chosen with Folder…"),
            (self.browse_button, "Choose a model bundle folder (config.json + weights)"),
            (self.device_combo, "Where the model runs: auto picks a GPU when there is one"),
        )
        for name, folder in bundled_tile_models().items():
            self.model_combo.addItem(name, str(folder))

    def form(self) -> QFormLayout:
        """The four rows: Slide, Model (with Folder…), Device, Min. tissue per tile."""
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.browse_button)
        form = QFormLayout()
        form.addRow("Slide", self.layer_combo)
        form.addRow("Model", model_row)
        form.addRow("Device", self.device_combo)
        form.addRow("Min. tissue per tile", self.tissue_spin)
        return form

    def refresh_layers(self) -> None:
        """List the viewer's slide layers again (one was added or removed)."""
        fill_slide_layer_combo(self.layer_combo, self.viewer)

    def browse(self, parent: QWidget) -> None:
        """Ask for a model bundle folder and choose it."""
        folder = QFileDialog.getExistingDirectory(parent, "Model bundle folder (with config.json)")
        if folder:
            self.add_model_folder(folder)

    def add_model_folder(self, folder: str | Path) -> None:
        """Choose the bundle in ``folder``, adding it to the list when it is new."""
        folder = str(folder)
        index = self.model_combo.findData(folder)
        if index < 0:
            self.model_combo.addItem(Path(folder).name, folder)
            index = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(index)

    def slide_layer(self) -> Any:
        """The layer chosen in the Slide row, or None."""
        name = self.layer_combo.currentText()
        for layer in self.viewer.layers:  # LayerList has no .get()
            if layer.name == name:
                return layer
        return None
