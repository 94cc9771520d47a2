"""A plot of the shown output per region: box plot, histogram, or mean ± SD bars.

One section of the Regions tab; it draws what it is given (the values over each region's
predicted tissue tiles, computed off the main thread with the table) and nothing else.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

PLOT_KINDS = ("box", "histogram", "bar (mean ± SD)")


class RegionPlot(QWidget):
    """The plot kind picker above a matplotlib canvas."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        super().__init__()
        self.plot_combo = QComboBox()
        self.plot_combo.addItems(PLOT_KINDS)
        self.plot_combo.setToolTip("How the chosen output is plotted per region")
        self.figure = Figure(figsize=(4, 2.4), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(180)
        row = QHBoxLayout()
        row.addWidget(QLabel("Plot of the shown output"))
        row.addWidget(self.plot_combo, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.canvas, 1)

    def draw(self, values: dict[str, np.ndarray], title: str | None) -> None:
        """Plot ``values`` (region name -> values; empty ones are left out) as chosen;
        with no title (no model) or no values the plot is cleared."""
        self.figure.clear()
        data = {name: v for name, v in values.items() if len(v)}
        if title is None or not data:
            self.canvas.draw_idle()
            return
        axes = self.figure.add_subplot(111)
        kind = self.plot_combo.currentText()
        names = list(data)
        if kind == "box":
            axes.boxplot([data[n] for n in names], tick_labels=names)
        elif kind == "histogram":
            for name in names:
                axes.hist(data[name], bins=30, alpha=0.5, label=name)
            axes.legend(fontsize=7)
        else:
            means = [float(np.mean(data[n])) for n in names]
            sds = [float(np.std(data[n], ddof=1)) if len(data[n]) > 1 else 0.0 for n in names]
            axes.bar(names, means, yerr=sds, capsize=3)
        axes.set_title(title, fontsize=8)
        axes.tick_params(labelsize=7)
        self.canvas.draw_idle()
