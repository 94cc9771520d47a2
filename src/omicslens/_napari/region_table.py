"""The rows of the Regions table: what is known of each region, with or without a model.

Why apart from the dock: a region is worth measuring before any model is loaded (its
area, the white cells of a smear inside it). Predictions add columns; they are never
needed for a row to appear. Rows keep the region's position in the Shapes layer, so an
edited name goes back to the right shape when the table is sorted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem

from omicslens.core.region_stats import top_outputs
from omicslens.core.regions import Region

COLUMNS = [
    "region",
    "area mm²",
    "tiles",
    "tissue",
    "predicted",
    "unpredicted",
    "mean",
    "median",
    "SD",
    "top",
    "gene sets",
    "cells",
]
NAME_COLUMN = 0
#: item data role holding the region's index in the Shapes layer
INDEX_ROLE = Qt.UserRole + 1
NAN = float("nan")


@dataclass
class RegionRow:
    """One row; NaN (shown empty) where nothing is known yet."""

    index: int
    name: str
    area_mm2: float
    tiles: float = NAN
    tissue: float = NAN
    predicted: float = NAN
    unpredicted: float = NAN
    mean: float = NAN
    median: float = NAN
    sd: float = NAN
    top: str = ""
    gene_sets: str = ""
    cells: str = ""


def cell_counts(analysis: Any, region: Region) -> dict[str, int]:
    """Cells per class (reviewer corrections applied) whose centre lies in ``region``."""
    if analysis is None or not analysis.cells:
        return {}
    x = np.array([c.centre_x for c in analysis.cells])
    y = np.array([c.centre_y for c in analysis.cells])
    inside = region.contains(x, y)
    labels = analysis.labels()
    counts: dict[str, int] = {}
    for index in np.flatnonzero(inside):
        counts[labels[index]] = counts.get(labels[index], 0) + 1
    return counts


def _cells_text(analysis: Any, region: Region) -> str:
    counts = cell_counts(analysis, region)
    total = sum(counts.values())
    return ", ".join(f"{k} {v} ({100 * v / total:.0f}%)" for k, v in sorted(counts.items()))


def basic_rows(
    regions: list[Region], mpp: tuple[float, float] | None, smear: Any
) -> list[RegionRow]:
    """Rows without a model: name, area (when the slide's resolution is known), cells."""
    square_um = mpp[0] * mpp[1] if mpp else NAN
    return [
        RegionRow(i, r.name, r.area_px() * square_um / 1e6, cells=_cells_text(smear, r))
        for i, r in enumerate(regions)
    ]


def predicted_rows(report: Any, live: Any, smear: Any) -> list[RegionRow]:
    """Rows with the statistics of the shown output over each region's predicted tiles."""
    from omicslens.core.genesets import available_gene_sets

    names = report.output_names
    shown = live.output
    meta = live.session.bundle.output_meta
    gene_sets = available_gene_sets(names, meta)
    not_expression = {m.get("name", "") for m in meta if m.get("kind") in ("uncertainty", "domain")}
    rows = []
    for index, stats in enumerate(report.regions):
        s = stats.summary
        values = shown.apply(stats.values) if s.predicted else np.empty(0)
        sets = ""
        if s.predicted:
            sets = ", ".join(
                f"{g.label.split(' [')[0]} {float(g.apply(s.mean[None])[0]):.2f}" for g in gene_sets
            )
        rows.append(
            RegionRow(
                index,
                s.name,
                s.area_mm2,
                s.tiles,
                s.tissue_tiles,
                s.predicted,
                s.unpredicted,
                float(values.mean()) if len(values) else NAN,
                float(np.median(values)) if len(values) else NAN,
                float(values.std(ddof=1)) if len(values) > 1 else NAN,
                ", ".join(f"{n} {v:.2f}" for n, v in top_outputs(s, names, 5, not_expression)),
                sets,
                _cells_text(smear, stats.region),
            )
        )
    return rows


def number_item(value: float, text: str | None = None) -> QTableWidgetItem:
    """A cell that sorts by value; empty when the value is not known."""
    item = QTableWidgetItem()
    if np.isfinite(value):
        item.setData(0, float(value))
        if text is not None:
            item.setText(text)
    item.setFlags(item.flags() & ~Qt.ItemIsEditable)
    return item


def _text_item(text: str) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemIsEditable)
    return item


def fill_table(table: QTableWidget, rows: list[RegionRow]) -> None:
    """Replace the table's rows (signals blocked: filling is not an edit of a name)."""
    table.blockSignals(True)
    table.setSortingEnabled(False)
    table.setRowCount(len(rows))
    for row, r in enumerate(rows):
        name = QTableWidgetItem(r.name)
        name.setData(INDEX_ROLE, r.index)
        name.setToolTip("Double-click to rename the region")
        cells = [
            name,
            number_item(r.area_mm2, f"{r.area_mm2:.3f}"),
            number_item(r.tiles, f"{r.tiles:.0f}"),
            number_item(r.tissue, f"{r.tissue:.0f}"),
            number_item(r.predicted, f"{r.predicted:.0f}"),
            number_item(r.unpredicted, f"{r.unpredicted:.0f}"),
            number_item(r.mean, f"{r.mean:.3f}"),
            number_item(r.median, f"{r.median:.3f}"),
            number_item(r.sd, f"{r.sd:.3f}"),
            _text_item(r.top),
            _text_item(r.gene_sets),
            _text_item(r.cells),
        ]
        for column, item in enumerate(cells):
            table.setItem(row, column, item)
    table.setSortingEnabled(True)
    table.blockSignals(False)
