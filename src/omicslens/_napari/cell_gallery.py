"""The cell gallery of the Blood smear dock: icons grouped by class, as on CellaVision.

Each class is a section: a header label, then its own grid of icons (headers are never
items of a grid); cells flagged for review come last; a reviewer's correction is marked
✎ under the icon. The gallery keeps the entries it shows, so looking up a clicked or
selected cell needs no recomputation.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QSize, Qt, Signal
from qtpy.QtGui import QIcon, QImage, QPixmap
from qtpy.QtWidgets import (
    QApplication,
    QFrame,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from omicslens.hemato.cell_reference import REVIEW_CLASS

if TYPE_CHECKING:
    from omicslens.app.crops import CropTypingReport
    from omicslens.hemato.smear import SmearAnalysis

ICON_PX = 72
#: one icon cell of a grid: the icon and a caption line under it
GRID_PX = (ICON_PX + 14, ICON_PX + 24)
#: the review is done in the gallery: it keeps two rows of icons and their headers on a
#: laptop screen, and the tab page scrolls to the differential below instead
MIN_HEIGHT_PX = 2 * GRID_PX[1] + 2 * 24 + 12


@dataclass(frozen=True)
class GalleryEntry:
    """One cell as the gallery shows it; ``cell_id`` is what corrections are keyed by."""

    cell_id: int
    label: str
    caption: str
    tooltip: str
    corrected: bool


def smear_entries(analysis: SmearAnalysis) -> list[GalleryEntry]:
    labels = analysis.labels()
    flags = analysis.types.flags
    out = []
    for index, cell in enumerate(analysis.cells):
        corrected = cell.id in analysis.corrections
        note = " (corrected by reviewer)" if corrected else ""
        why = "; far from every training class" if flags[index] else ""
        tooltip = f"cell {cell.id}: {labels[index]}{note}{why}"
        out.append(GalleryEntry(cell.id, labels[index], f"#{cell.id}", tooltip, corrected))
    return out


def crop_entries(report: CropTypingReport) -> list[GalleryEntry]:
    """Entries of a crop folder; a crop's id is its position in the report."""
    reasons = report.reasons()
    out = []
    for index, (cell, label) in enumerate(zip(report.cells, report.labels, strict=True)):
        corrected = index in report.corrections
        note = " (corrected by reviewer)" if corrected else ""
        why = f"; review: {reasons[index]}" if reasons[index] else ""
        tooltip = f"{cell.crop.path}: {label}{note}{why}"
        out.append(GalleryEntry(index, label, _short(cell.crop.path.name), tooltip, corrected))
    return out


class CellGallery(QScrollArea):
    """Sections by class, each a header above its own grid of icons.

    Headers are labels between the grids, never items inside one, so they cannot be
    selected, squeezed between icons or wrapped into a row of cells. ``Qt.UserRole`` of
    an icon is its position in the entries. Selection works across sections: a plain
    click selects one cell, Ctrl or Shift adds to it.
    """

    itemClicked = Signal(QListWidgetItem)

    def __init__(self) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setToolTip("Every detected cell, grouped by class; click one to go to it")
        self.setMinimumHeight(MIN_HEIGHT_PX)
        self.entries: list[GalleryEntry] = []
        self.sections: list[tuple[QLabel, QListWidget]] = []
        self._body = QWidget()
        self._layout = QVBoxLayout(self._body)
        self._layout.setContentsMargins(4, 4, 4, 4)
        self._layout.setSpacing(2)
        self._layout.addStretch(1)
        self.setWidget(self._body)

    def show_entries(self, entries: list[GalleryEntry], crops: list[np.ndarray]) -> None:
        self._clear()
        self.entries = entries
        labels = [entry.label for entry in entries]
        # Review last: the cells a hematologist must look at have their own section
        order = sorted(range(len(entries)), key=lambda i: (labels[i] == REVIEW_CLASS, labels[i], i))
        grid: QListWidget | None = None
        current = None
        for index in order:
            entry = entries[index]
            if entry.label != current or grid is None:
                current = entry.label
                grid = self._add_section(current, labels.count(current))
            caption = f"✎ {entry.caption}" if entry.corrected else entry.caption
            item = QListWidgetItem(_icon(crops[index]), caption)
            item.setData(Qt.UserRole, index)
            item.setToolTip(entry.tooltip)
            grid.addItem(item)
        self._fit_heights()

    def _add_section(self, name: str, count: int) -> QListWidget:
        header = QLabel(f"<b>{html.escape(name)}</b> ({count})")
        header.setProperty("class_name", name)
        grid = QListWidget()
        grid.setViewMode(QListView.IconMode)
        grid.setIconSize(QSize(ICON_PX, ICON_PX))
        grid.setGridSize(QSize(*GRID_PX))
        grid.setMovement(QListView.Static)
        grid.setResizeMode(QListView.Adjust)
        grid.setWrapping(True)
        grid.setUniformItemSizes(True)
        grid.setSelectionMode(QListWidget.ExtendedSelection)
        grid.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        grid.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        grid.setFrameShape(QFrame.NoFrame)
        grid.itemClicked.connect(self.itemClicked.emit)
        grid.itemPressed.connect(lambda _item, g=grid: self._pressed(g))
        position = self._layout.count() - 1  # before the stretch
        self._layout.insertWidget(position, header)
        self._layout.insertWidget(position + 1, grid)
        self.sections.append((header, grid))
        return grid

    def _pressed(self, grid: QListWidget) -> None:
        modifiers = QApplication.keyboardModifiers()
        if modifiers & (Qt.ControlModifier | Qt.ShiftModifier):
            return
        for _, other in self.sections:
            if other is not grid:
                other.clearSelection()

    def _clear(self) -> None:
        for header, grid in self.sections:
            for widget in (header, grid):
                self._layout.removeWidget(widget)
                widget.hide()  # not painted again while it waits for deletion
                widget.deleteLater()
        self.sections = []

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit_heights()

    def _fit_heights(self) -> None:
        """Each grid as tall as its rows of icons: the scroll area scrolls, not the grids."""
        margins = self._layout.contentsMargins()
        viewport = self.viewport()
        shown = viewport.width() if viewport is not None else GRID_PX[0]
        width = max(GRID_PX[0], shown - margins.left() - margins.right())
        per_row = max(1, width // GRID_PX[0])
        for _, grid in self.sections:
            rows = max(1, math.ceil(grid.count() / per_row))
            grid.setFixedHeight(rows * GRID_PX[1] + 2 * grid.frameWidth() + 2)

    # -- the icons as one list (tests, scripting) ---------------------------------------------
    def _items(self) -> list[QListWidgetItem]:
        items = (grid.item(row) for _, grid in self.sections for row in range(grid.count()))
        return [item for item in items if item is not None]

    def count(self) -> int:
        """Icons shown (headers are not items)."""
        return sum(grid.count() for _, grid in self.sections)

    def item(self, row: int) -> QListWidgetItem:
        """Icon ``row`` in display order, across sections."""
        return self._items()[row]

    def selectedItems(self) -> list[QListWidgetItem]:
        return [item for _, grid in self.sections for item in grid.selectedItems()]

    def headers(self) -> list[str]:
        return [header.text() for header, _ in self.sections]

    def groups(self) -> dict[str, list[int]]:
        """Class -> cell ids in the order shown (for tests and scripting)."""
        groups: dict[str, list[int]] = {}
        for header, grid in self.sections:
            items = (grid.item(row) for row in range(grid.count()))
            groups[str(header.property("class_name"))] = [
                self.entries[int(item.data(Qt.UserRole))].cell_id
                for item in items
                if item is not None
            ]
        return groups

    def selected_ids(self) -> list[int]:
        return [
            self.entries[int(item.data(Qt.UserRole))].cell_id
            for item in self.selectedItems()
            if item.data(Qt.UserRole) is not None
        ]


def _short(name: str) -> str:
    """A crop's file name, cut to fit under its icon."""
    return name if len(name) <= 14 else name[:11] + "…"


def _icon(crop: np.ndarray) -> QIcon:
    rgb = np.ascontiguousarray(crop[..., :3])
    height, width = rgb.shape[:2]
    image = QImage(rgb.tobytes(), width, height, 3 * width, QImage.Format_RGB888).copy()
    return QIcon(QPixmap.fromImage(image))
