"""Compare two regions (or a region and the rest of the tissue), output by output.

One section of the Regions tab. The test over every output and the grid geometry behind
it run in a worker (``app.regions.compare_regions``); the table fills when it returns,
ranked by Benjamini-Hochberg q. Tiles are spatially correlated, so p and q are read as a
ranking, and the status says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from omicslens._napari.jobs import show_activity
from omicslens._napari.region_table import number_item
from omicslens.app.regions import compare_regions
from omicslens.core.region_stats import Comparison
from omicslens.core.regions import Region

REST = "rest of the tissue"


class RegionComparison(QWidget):
    """Two region pickers, Compare, and the table of differences, p and q."""

    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__()
        self.say = say
        self.comparison: Comparison | None = None
        self._worker: Any = None
        self.a_combo = QComboBox()
        self.b_combo = QComboBox()
        self.compare_button = QPushButton("Compare")
        self.a_combo.setToolTip("First region of the comparison")
        self.b_combo.setToolTip("Second region of the comparison")
        self.compare_button.setToolTip(
            "Compare every output between the two regions (difference, p, BH-adjusted q)"
        )
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["output", "difference", "p", "q (BH)"])
        self.table.setSortingEnabled(True)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        row = QHBoxLayout()
        row.addWidget(self.a_combo, 1)
        row.addWidget(QLabel("vs"))
        row.addWidget(self.b_combo, 1)
        row.addWidget(self.compare_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)

    def fill_choices(self, names: list[str]) -> None:
        """Offer ``names`` (the second picker also "rest of the tissue"), keeping choices
        that still exist; never a region against itself by default."""
        for combo, extra in ((self.a_combo, []), (self.b_combo, [REST])):
            current = combo.currentText()
            combo.clear()
            combo.addItems([*names, *extra])
            if current in names or current == REST:
                combo.setCurrentText(current)
        if self.b_combo.currentText() == self.a_combo.currentText():
            self.b_combo.setCurrentText(REST)

    def run(self, live: Any, regions: list[Region]) -> Any:
        """Compare the chosen regions of ``live``'s prediction in a worker thread."""
        from napari.qt.threading import thread_worker

        by_name = {region.name: region for region in regions}
        a_name, b_name = self.a_combo.currentText(), self.b_combo.currentText()
        if live is None or a_name not in by_name:
            return None
        other = None if b_name == REST else by_name.get(b_name)
        self.comparison = None
        self.compare_button.setEnabled(False)
        worker = thread_worker(compare_regions, start_thread=False)(
            live.session, by_name[a_name], other
        )
        worker.returned.connect(lambda result: self._show(a_name, b_name, result))
        worker.errored.connect(self._failed)
        self._worker = show_activity(worker, f"comparing {a_name} and {b_name}")
        worker.start()
        return worker

    def _failed(self, error: BaseException) -> None:
        self.compare_button.setEnabled(True)
        self.say(f"Could not compare: {error}")

    def _show(self, a_name: str, b_name: str, result: Comparison) -> None:
        self.compare_button.setEnabled(True)
        self.comparison = result
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(result.outputs))
        for row, name in enumerate(result.outputs):
            values = (result.difference[row], result.p[row], result.q[row])
            self.table.setItem(row, 0, QTableWidgetItem(name))
            for column, value in enumerate(values, start=1):
                self.table.setItem(row, column, number_item(value, f"{value:.3g}"))
        self.table.setSortingEnabled(True)
        self.table.sortItems(3)
        self.say(
            f"{a_name} ({result.n_a} predicted tiles) vs {b_name} "
            f"({result.n_b}); tiles are spatially correlated, so read p and q "
            "as a ranking."
        )
