"""The Regions dock's own controls: layer and GeoJSON buttons, undo/redo, the table.

Split out of :mod:`omicslens._napari.regions_widget` so that the dock keeps to what the
controls do: this module builds them with their texts and tooltips and lays them out at
the top of the dock. It holds Qt widgets only; the dock connects their signals.
"""

from __future__ import annotations

from qtpy.QtWidgets import QAbstractItemView, QHBoxLayout, QPushButton, QTableWidget, QVBoxLayout

from omicslens._napari.region_table import COLUMNS

UNDO_TIP = "Undo the last region edit (drawn, moved, deleted, renamed or imported)"
REDO_TIP = "Redo the region edit just undone"


class RegionsControls:
    """Buttons and the per-region table of the Regions dock, before the comparison."""

    def __init__(self) -> None:
        self.new_button = QPushButton("New regions layer")
        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.undo_button.setToolTip(UNDO_TIP + " (Ctrl+Z)")
        self.redo_button.setToolTip(REDO_TIP + " (Ctrl+Shift+Z)")
        self.import_button = QPushButton("Import GeoJSON…")
        self.export_button = QPushButton("Export GeoJSON…")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(
            QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed
        )
        self.table.setToolTip("Double-click a region's name to rename it; Ctrl+C copies rows")
        self.predict_button = QPushButton("Predict the unpredicted tiles in the regions")
        self.crop_button = QPushButton("Export selected region as OME-TIFF…")
        self.new_button.setToolTip("Add a shapes layer to draw regions on the slide")
        self.import_button.setToolTip("Import regions from a GeoJSON file (QuPath annotations)")
        self.export_button.setToolTip("Export the regions as QuPath-readable GeoJSON")
        self.predict_button.setToolTip("Predict the tiles inside the regions that have none yet")
        self.crop_button.setToolTip("Save the slide pixels of the selected region as OME-TIFF")

    def add_to(self, layout: QVBoxLayout) -> None:
        """Layer/GeoJSON row, undo/redo row, the table (stretch 2), predict and crop."""
        row = QHBoxLayout()
        for button in (self.new_button, self.import_button, self.export_button):
            row.addWidget(button)
        edit_row = QHBoxLayout()
        edit_row.addWidget(self.undo_button)
        edit_row.addWidget(self.redo_button)
        edit_row.addStretch(1)
        layout.addLayout(row)
        layout.addLayout(edit_row)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.predict_button)
        layout.addWidget(self.crop_button)
