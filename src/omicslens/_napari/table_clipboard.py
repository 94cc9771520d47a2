"""A dock table's rows as tab-separated text on the clipboard (Ctrl+C in the Regions dock).

Split out of :mod:`omicslens._napari.regions_widget`: it reads any ``QTableWidget``, not
regions, so it is kept apart from the dock's region logic.
"""

from __future__ import annotations

from qtpy.QtWidgets import QApplication, QTableWidget


def copy_rows(table: QTableWidget) -> str:
    """Selected rows (or all) as tab-separated text, also put on the clipboard."""
    rows = sorted({i.row() for i in table.selectedIndexes()}) or range(table.rowCount())
    header = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    lines = ["\t".join(header)]
    for r in rows:
        lines.append(
            "\t".join(
                table.item(r, c).text() if table.item(r, c) else ""
                for c in range(table.columnCount())
            )
        )
    text = "\n".join(lines)
    QApplication.clipboard().setText(text)
    return text
