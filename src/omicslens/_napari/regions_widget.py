"""Dock widget: ask questions of drawn regions, on the full-resolution tile grid.

Regions are drawn in a napari Shapes layer whose data coordinates are the slide's level-0
pixels (the widget creates it with the slide's scale), or imported from QuPath GeoJSON.
For each region the table gives area, tiles, tissue fraction, predicted and unpredicted
tiles, the mean of the shown output and the top outputs; a comparison of two regions
(or a region against the rest of the tissue) ranks outputs by Benjamini-Hochberg
q-value of a Mann-Whitney U test over tiles. Statistics come from the prediction store
(``core.region_stats``), never from screen pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QShortcut,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from omicslens.core.region_stats import (
    Comparison,
    RegionSummary,
    compare,
    rest_of_tissue,
    summarise,
    tiles_in_region,
    top_outputs,
)
from omicslens.core.regions import Region, read_regions, write_regions

if TYPE_CHECKING:
    import napari

REST = "rest of the tissue"
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


def _from_docks(viewer: Any, attribute: str) -> Any:
    """The first docked widget's non-None ``attribute`` (None once the window is gone)."""
    try:
        docks = list(viewer.window.dock_widgets.values())
    except (RuntimeError, AttributeError):  # the Qt window was closed
        return None
    for widget in docks:
        value = getattr(widget, attribute, None)
        if value is not None:
            return value
    return None


def _live(viewer: Any) -> Any:
    """The running prediction of the Predict dock, if any."""
    return _from_docks(viewer, "live")


def _smear(viewer: Any) -> Any:
    """The Blood smear dock's analysis, if any (for cell counts per region)."""
    return _from_docks(viewer, "analysis")


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


def _number_item(value: float, text: str | None = None) -> QTableWidgetItem:
    item = QTableWidgetItem()
    item.setData(0, float(value) if np.isfinite(value) else float("nan"))
    if text is not None:
        item.setText(text)
    return item


class RegionsWidget(QWidget):
    """Region statistics and comparisons for the model shown in the Predict dock."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.shapes: Any = None
        self._autosave: Path | None = None
        self.summaries: list[RegionSummary] = []
        self.comparison: Comparison | None = None
        self.new_button = QPushButton("New regions layer")
        self.import_button = QPushButton("Import GeoJSON…")
        self.export_button = QPushButton("Export GeoJSON…")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.predict_button = QPushButton("Predict the unpredicted tiles in the regions")
        self.crop_button = QPushButton("Export selected region as OME-TIFF…")
        self.a_combo = QComboBox()
        self.b_combo = QComboBox()
        self.compare_button = QPushButton("Compare")
        self.compare_table = QTableWidget(0, 4)
        self.compare_table.setHorizontalHeaderLabels(["output", "difference", "p", "q (BH)"])
        self.compare_table.setSortingEnabled(True)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.plot_combo = QComboBox()
        self.plot_combo.addItems(["box", "histogram", "bar (mean ± SD)"])
        self.figure = Figure(figsize=(4, 2.4), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(180)
        self.status = QLabel("Load a model in the Predict dock, then draw regions.")
        self.status.setWordWrap(True)
        for table in (self.table, self.compare_table):
            QShortcut(QKeySequence.Copy, table, activated=lambda t=table: self.copy(t))
        row = QHBoxLayout()
        for button in (self.new_button, self.import_button, self.export_button):
            row.addWidget(button)
        compare_row = QHBoxLayout()
        compare_row.addWidget(self.a_combo, 1)
        compare_row.addWidget(QLabel("vs"))
        compare_row.addWidget(self.b_combo, 1)
        compare_row.addWidget(self.compare_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.predict_button)
        layout.addWidget(self.crop_button)
        layout.addLayout(compare_row)
        layout.addWidget(self.compare_table, 2)
        plot_row = QHBoxLayout()
        plot_row.addWidget(QLabel("Plot of the shown output"))
        plot_row.addWidget(self.plot_combo, 1)
        layout.addLayout(plot_row)
        layout.addWidget(self.canvas, 2)
        layout.addWidget(self.status)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(300)
        self._debounce.timeout.connect(self.refresh)
        self.new_button.clicked.connect(self.new_layer)
        self.import_button.clicked.connect(self._import_dialog)
        self.export_button.clicked.connect(self._export_dialog)
        self.predict_button.clicked.connect(self.predict_missing)
        self.crop_button.clicked.connect(self._crop_dialog)
        self.compare_button.clicked.connect(self.run_comparison)
        self.plot_combo.currentTextChanged.connect(lambda _text: self.plot())

    # -- regions <-> shapes -----------------------------------------------------------------
    def new_layer(self) -> Any:
        live = _live(self.viewer)
        if live is None:
            self.status.setText("Load a model in the Predict dock first.")
            return None
        self.shapes = self.viewer.add_shapes(
            name="regions",
            scale=tuple(live.slide_layer.scale[-2:]),
            units=("um", "um"),
            edge_color="cyan",
            face_color=[0, 1, 1, 0.1],
        )
        # napari draws shape edges in data units (level-0 pixels); ~0.7 % of the slide
        # width keeps them visible when the whole slide is on screen
        self.shapes.current_edge_width = max(2.0, live.session.grid.width / 150)
        self.shapes.events.data.connect(lambda event=None: self._debounce.start())
        self._autosave = self._autosave_path(live)
        if self._autosave is not None and self._autosave.exists():
            restored = read_regions(self._autosave)
            self._add_regions(restored)
            self.status.setText(f"Restored {len(restored)} regions from {self._autosave}.")
        return self.shapes

    @staticmethod
    def _autosave_path(live: Any) -> Path | None:
        from omicslens.core.regions import autosave_path
        from omicslens.core.settings import config_dir

        slide_path = getattr(live.session.slide, "path", None)
        return autosave_path(slide_path, config_dir()) if slide_path else None

    def _save(self) -> None:
        """Autosave (atomic) whenever regions change; never lose a user's annotations."""
        if self._autosave is None or self.shapes is None:
            return
        regions = self.regions()
        if regions or self._autosave.exists():  # an empty layer never creates a file
            write_regions(regions, self._autosave, overwrite=True)

    def regions(self) -> list[Region]:
        """Regions in level-0 pixels from the shapes layer (data coordinates are pixels)."""
        if self.shapes is None:
            return []
        names = list(self.shapes.features["name"]) if "name" in self.shapes.features else []
        out = []
        for i, (data, kind) in enumerate(
            zip(self.shapes.data, self.shapes.shape_type, strict=True)
        ):
            vertices = np.asarray(data)[:, ::-1]  # (y, x) -> (x, y)
            name = names[i] if i < len(names) and names[i] else f"region {i + 1}"
            out.append(Region(str(name), vertices, shape_type=kind))
        return out

    def import_regions(self, path: str | Path) -> int:
        regions = read_regions(path)
        layer = self.shapes or self.new_layer()
        if layer is None:
            return 0
        self._add_regions(regions)
        self.refresh()
        return len(regions)

    def _add_regions(self, regions: list[Region]) -> None:
        layer = self.shapes
        for region in regions:
            kind = (
                region.shape_type
                if region.shape_type in ("polygon", "rectangle", "ellipse")
                else "polygon"
            )
            layer.add(np.asarray(region.vertices)[:, ::-1], shape_type=kind)
        names = [r.name for r in self.regions()[: len(layer.data) - len(regions)]]
        layer.features = {"name": [*names, *[r.name for r in regions]]}

    def export_regions(self, path: str | Path, overwrite: bool = False) -> Path:
        regions = self.regions()
        for region, summary in zip(regions, self.summaries, strict=False):
            region.measurements = {
                "Area mm^2": summary.area_mm2,
                "Predicted tiles": summary.predicted,
            }
        return write_regions(regions, path, overwrite=overwrite)

    def _import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "QuPath GeoJSON", "", "GeoJSON (*.geojson *.json *.geojson.gz)"
        )
        if path:
            self.import_regions(path)

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export regions", "regions.geojson", "GeoJSON (*.geojson)"
        )
        if path:
            try:
                self.export_regions(path, overwrite=True)  # the dialog asked already
            except OSError as error:
                self.status.setText(f"Not exported: {error}")

    # -- statistics -------------------------------------------------------------------------
    def refresh(self) -> None:
        live = _live(self.viewer)
        regions = self.regions()
        self._save()
        if live is None or not regions:
            return
        session = live.session
        self.summaries = [summarise(r, session.store, session.tissue_tiles) for r in regions]
        names = list(session.bundle.output_names)
        shown = live.output
        from omicslens.core.genesets import available_gene_sets

        gene_sets = available_gene_sets(names, session.bundle.config.outputs)
        smear = _smear(self.viewer)
        values = self._region_values(live, regions)
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(regions))
        for row, s in enumerate(self.summaries):
            shown_values = shown.apply(values[row]) if s.predicted else np.empty(0)
            mean = float(shown_values.mean()) if s.predicted else float("nan")
            median = float(np.median(shown_values)) if s.predicted else float("nan")
            sd = float(shown_values.std(ddof=1)) if s.predicted > 1 else float("nan")
            top = ", ".join(f"{n} {v:.2f}" for n, v in top_outputs(s, names, 5))
            sets = ""
            if s.predicted:
                sets = ", ".join(
                    f"{g.label.split(' [')[0]} {float(g.apply(s.mean[None])[0]):.2f}"
                    for g in gene_sets
                )
            counts = cell_counts(smear, regions[row])
            total = sum(counts.values())
            cell_text = ", ".join(
                f"{k} {v} ({100 * v / total:.0f}%)" for k, v in sorted(counts.items())
            )
            cells = [
                QTableWidgetItem(s.name),
                _number_item(s.area_mm2, f"{s.area_mm2:.3f}"),
                _number_item(s.tiles),
                _number_item(s.tissue_tiles),
                _number_item(s.predicted),
                _number_item(s.unpredicted),
                _number_item(mean, f"{mean:.3f}"),
                _number_item(median, f"{median:.3f}"),
                _number_item(sd, f"{sd:.3f}"),
                QTableWidgetItem(top),
                QTableWidgetItem(sets),
                QTableWidgetItem(cell_text),
            ]
            for column, item in enumerate(cells):
                self.table.setItem(row, column, item)
        self.table.setSortingEnabled(True)
        choices = [s.name for s in self.summaries]
        for combo, extra in ((self.a_combo, []), (self.b_combo, [REST])):
            current = combo.currentText()
            combo.clear()
            combo.addItems([*choices, *extra])
            if current:
                combo.setCurrentText(current)
        self.plot()
        missing = sum(s.unpredicted for s in self.summaries)
        self.status.setText(
            f"{len(regions)} regions; {missing} tissue tiles in them not predicted yet"
            + (" (press Predict to fill them)." if missing else ".")
            + f" Mean column: {shown.label}."
        )

    @staticmethod
    def _region_values(live: Any, regions: list[Region]) -> list[np.ndarray]:
        """Per region, all outputs (tiles, outputs) of its predicted tissue tiles."""
        session = live.session
        tissue = session.tissue_tiles.ravel()
        out = []
        for region in regions:
            inside = tiles_in_region(session.grid, region)
            inside = inside[tissue[inside]]
            out.append(session.store.get(inside[session.store.is_done(inside)]))
        return out

    def plot_values(self) -> dict[str, np.ndarray]:
        """Per region, the shown output over its predicted tissue tiles (what is plotted)."""
        live = _live(self.viewer)
        if live is None:
            return {}
        regions = self.regions()
        values = self._region_values(live, regions)
        return {r.name: live.output.apply(v) for r, v in zip(regions, values, strict=True)}

    def plot(self) -> None:
        """Box plot, histogram or bar chart of the shown output per region."""
        live = _live(self.viewer)
        self.figure.clear()
        data = {k: v for k, v in self.plot_values().items() if len(v)}
        if live is None or not data:
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
        axes.set_title(live.output.label, fontsize=8)
        axes.tick_params(labelsize=7)
        self.canvas.draw_idle()

    def predict_missing(self) -> int:
        live = _live(self.viewer)
        if live is None:
            return 0
        tiles = [tiles_in_region(live.session.grid, r) for r in self.regions()]
        wanted = np.unique(np.concatenate(tiles)) if tiles else np.empty(0, np.int64)
        live.scheduler.request_tiles(wanted)
        return len(live.scheduler.wanted(wanted))

    def run_comparison(self) -> Comparison | None:
        live = _live(self.viewer)
        regions = {r.name: r for r in self.regions()}
        a_name, b_name = self.a_combo.currentText(), self.b_combo.currentText()
        if live is None or a_name not in regions:
            return None
        session = live.session
        tissue = session.tissue_tiles.ravel()

        def on_tissue(region: Region) -> np.ndarray:
            inside = tiles_in_region(session.grid, region)
            return inside[tissue[inside]]

        a = on_tissue(regions[a_name])
        b = (
            rest_of_tissue(session.grid, session.tissue_tiles, a)
            if b_name == REST
            else on_tissue(regions[b_name])
        )
        result = compare(session.store, a, b)
        self.comparison = result
        self.compare_table.setSortingEnabled(False)
        self.compare_table.setRowCount(len(result.outputs))
        for row, name in enumerate(result.outputs):
            values = (result.difference[row], result.p[row], result.q[row])
            self.compare_table.setItem(row, 0, QTableWidgetItem(name))
            for column, value in enumerate(values, start=1):
                self.compare_table.setItem(row, column, _number_item(value, f"{value:.3g}"))
        self.compare_table.setSortingEnabled(True)
        self.compare_table.sortItems(3)
        self.status.setText(
            f"{a_name} ({result.n_a} predicted tiles) vs {b_name} "
            f"({result.n_b}); tiles are spatially correlated, so read p and q "
            "as a ranking."
        )
        return result

    def export_crop(self, name: str, path: str | Path) -> Any:
        """Start writing region ``name`` (H&E + overlays) as OME-TIFF in a worker thread."""
        from napari.qt.threading import thread_worker

        from omicslens.core.exports.crop import write_region_ome_tiff

        live = _live(self.viewer)
        region = {r.name: r for r in self.regions()}[name]
        session = live.session
        outputs = list(range(len(session.bundle.output_names)))
        worker = thread_worker(write_region_ome_tiff, start_thread=False)(
            session.slide, region, session.store, outputs, path
        )
        worker.returned.connect(lambda written: self.status.setText(f"Wrote {written}."))
        worker.errored.connect(lambda error: self.status.setText(f"Not written: {error}"))
        worker.start()
        return worker

    def _crop_dialog(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        if not rows or _live(self.viewer) is None:
            self.status.setText("Select a region in the table first.")
            return
        name = self.table.item(rows[0], 0).text()
        path, _ = QFileDialog.getSaveFileName(
            self, "Region as OME-TIFF", f"{name}.ome.tif", "OME-TIFF (*.ome.tif)"
        )
        if path:
            Path(path).unlink(missing_ok=True)  # the dialog asked before replacing
            self.export_crop(name, path)

    def closeEvent(self, event: Any) -> None:
        self._debounce.stop()
        super().closeEvent(event)

    @staticmethod
    def copy(table: QTableWidget) -> str:
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
