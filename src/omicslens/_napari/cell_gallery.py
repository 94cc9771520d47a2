"""The cell gallery of the Blood smear dock: icons grouped by class, as on CellaVision.

Each class starts its own row under a header as wide as the view; cells flagged for
review come last; a reviewer's correction is marked ✎ under the icon. The gallery keeps
the entries it shows, so looking up a clicked or selected cell needs no recomputation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QIcon, QImage, QPixmap
from qtpy.QtWidgets import QListView, QListWidget, QListWidgetItem

from omicslens.hemato.cell_reference import REVIEW_CLASS

if TYPE_CHECKING:
    from omicslens.app.crops import CropTypingReport
    from omicslens.hemato.smear import SmearAnalysis

ICON_PX = 72


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


class CellGallery(QListWidget):
    """Icons by class; ``Qt.UserRole`` of an icon is its position in the entries."""

    def __init__(self) -> None:
        super().__init__()
        self.setViewMode(QListView.IconMode)
        self.setIconSize(QSize(ICON_PX, ICON_PX))
        self.setResizeMode(QListView.Adjust)
        self.setSelectionMode(QListWidget.ExtendedSelection)
        self.entries: list[GalleryEntry] = []

    def show_entries(self, entries: list[GalleryEntry], crops: list[np.ndarray]) -> None:
        self.clear()
        self.entries = entries
        labels = [entry.label for entry in entries]
        # Review last: the cells a hematologist must look at have their own row
        order = sorted(range(len(entries)), key=lambda i: (labels[i] == REVIEW_CLASS, labels[i], i))
        current = None
        for index in order:
            entry = entries[index]
            if entry.label != current:
                current = entry.label
                header = QListWidgetItem(f"{current} ({labels.count(current)})")
                header.setFlags(Qt.NoItemFlags)
                # as wide as the view, so each class starts its own row of icons
                width = max(ICON_PX * 2, self.viewport().width() - 24)
                header.setSizeHint(QSize(width, 22))
                self.addItem(header)
            caption = f"✎ {entry.caption}" if entry.corrected else entry.caption
            item = QListWidgetItem(_icon(crops[index]), caption)
            item.setData(Qt.UserRole, index)
            item.setToolTip(entry.tooltip)
            self.addItem(item)

    def groups(self) -> dict[str, list[int]]:
        """Class -> cell ids in the order shown (for tests and scripting)."""
        groups: dict[str, list[int]] = {}
        current = ""
        for row in range(self.count()):
            item = self.item(row)
            index = item.data(Qt.UserRole)
            if index is None:
                current = item.text().rsplit(" (", 1)[0]
                groups[current] = []
            else:
                groups[current].append(self.entries[int(index)].cell_id)
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
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format_RGB888).copy()
    return QIcon(QPixmap.fromImage(image))
