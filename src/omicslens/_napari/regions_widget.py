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

from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import (
    QAbstractItemView,
    QApplication,
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

from omicslens._napari.jobs import JobHandle, show_activity, start_job
from omicslens._napari.layers import slide_of
from omicslens._napari.region_compare import REST, RegionComparison
from omicslens._napari.region_edits import RegionEdits, ShapeRecord, add_shapes, snapshot
from omicslens._napari.region_plot import RegionPlot
from omicslens._napari.region_table import (
    COLUMNS,
    INDEX_ROLE,
    NAME_COLUMN,
    basic_rows,
    cell_counts,
    fill_table,
    predicted_rows,
)
from omicslens._napari.state import viewer_state
from omicslens.app.progress import Progress
from omicslens.app.regions import (
    RegionReport,
    regions_for_export,
    summarise_regions,
    tissue_tiles_in,
)
from omicslens.core.region_stats import Comparison, RegionSummary
from omicslens.core.regions import Region, read_regions, write_regions

__all__ = ["REST", "RegionsWidget", "cell_counts"]

if TYPE_CHECKING:
    import napari

UNDO_TIP = "Undo the last region edit (drawn, moved, deleted, renamed or imported)"
REDO_TIP = "Redo the region edit just undone"


def _region_tiles_job(live: Any, regions: list[Region]) -> Generator[Progress, None, Any]:
    """Find the regions' tissue tiles, queue the missing ones, follow them to the end."""
    from omicslens.app.tiles import track_tiles

    yield Progress("finding tiles", 0, len(regions))
    found = [tissue_tiles_in(live.session, region) for region in regions]
    wanted = np.unique(np.concatenate(found)) if found else np.empty(0, np.int64)
    missing = live.request_tiles(wanted)
    return (yield from track_tiles(live.session, live.scheduler, missing))


class RegionsWidget(QWidget):
    """Region statistics and comparisons for the model shown in the Predict dock."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.state = viewer_state(napari_viewer)
        self.shapes: Any = None
        self._autosave: Path | None = None
        self.summaries: list[RegionSummary] = []
        self.report: RegionReport | None = None
        self.busy = False  # statistics being computed in a worker thread
        self._again = False  # regions changed while busy: compute once more
        self.predict_job: JobHandle | None = None
        self.edits: RegionEdits | None = None
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
        self.status = QLabel(
            "Draw or import regions: their area and cells are measured at once; load a "
            "model in the Predict tab for the predicted expression inside them."
        )
        self.status.setWordWrap(True)
        #: region against region (or the rest of the tissue), output by output
        self.compare = RegionComparison(self.status.setText)
        self.compare_table = self.compare.table
        #: the shown output per region
        self.region_plot = RegionPlot()
        for table in (self.table, self.compare_table):
            QShortcut(QKeySequence.Copy, table, activated=lambda t=table: self.copy(t))
        row = QHBoxLayout()
        for button in (self.new_button, self.import_button, self.export_button):
            row.addWidget(button)
        edit_row = QHBoxLayout()
        edit_row.addWidget(self.undo_button)
        edit_row.addWidget(self.redo_button)
        edit_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addLayout(edit_row)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.predict_button)
        layout.addWidget(self.crop_button)
        layout.addWidget(self.compare, 2)
        layout.addWidget(self.region_plot, 2)
        layout.addWidget(self.status)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(300)
        self._debounce.timeout.connect(self.refresh)
        self.new_button.clicked.connect(self.new_layer)
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        QShortcut(QKeySequence.Undo, self, activated=self.undo)
        QShortcut(QKeySequence.Redo, self, activated=self.redo)
        self.table.itemChanged.connect(self._renamed)
        self._update_undo_buttons()
        self.import_button.clicked.connect(self._import_dialog)
        self.export_button.clicked.connect(self._export_dialog)
        self.predict_button.clicked.connect(self.predict_missing)
        self.crop_button.clicked.connect(self._crop_dialog)
        self.compare.compare_button.clicked.connect(self.run_comparison)
        self.region_plot.plot_combo.currentTextChanged.connect(lambda _text: self.plot())
        # the table and plot follow the Predict dock's model and shown output
        self.state.events.live.connect(lambda _live: self._debounce.start())
        self.state.events.output.connect(lambda _output: self._debounce.start())
        self.state.events.smear.connect(lambda _smear: self._debounce.start())  # cell counts

    # -- regions <-> shapes -----------------------------------------------------------------
    def _slide_layer(self) -> Any:
        """The slide the regions belong to: the predicted one, else the first slide layer."""
        live = self.state.live
        if live is not None:
            return live.slide_layer
        return next((layer for layer in self.viewer.layers if slide_of(layer) is not None), None)

    def new_layer(self) -> Any:
        layer = self._slide_layer()
        if layer is None:
            self.status.setText("Open a slide first.")
            return None
        slide = slide_of(layer)
        self.shapes = self.viewer.add_shapes(
            name="regions",
            scale=tuple(layer.scale[-2:]),
            units=("um", "um"),
            edge_color="cyan",
            face_color=[0, 1, 1, 0.1],
        )
        # napari draws shape edges in data units (level-0 pixels); ~0.7 % of the slide
        # width keeps them visible when the whole slide is on screen
        width = slide.dimensions[0] if slide is not None else 1000
        self.shapes.current_edge_width = max(2.0, width / 150)
        # names on the canvas, beside each region
        self.shapes.text = {"string": "{name}", "color": "cyan", "size": 11, "anchor": "upper_left"}
        self.shapes.features = {"name": [], "id": []}
        self.shapes.events.data.connect(lambda event=None: self._debounce.start())
        self._autosave = self._autosave_path(slide)
        restored: list[Region] = []
        if self._autosave is not None and self._autosave.exists():
            restored = read_regions(self._autosave)
            self._add_regions(restored)
        # the restored regions are where undo stops
        self.edits = RegionEdits(self.shapes, self._autosave)
        self._update_undo_buttons()
        if restored:
            self.status.setText(f"Restored {len(restored)} regions from {self._autosave}.")
        return self.shapes

    @staticmethod
    def _autosave_path(slide: Any) -> Path | None:
        from omicslens.core.regions import autosave_path
        from omicslens.core.settings import config_dir

        slide_path = getattr(slide, "path", None)
        return autosave_path(slide_path, config_dir()) if slide_path else None

    # -- edits ------------------------------------------------------------------------------
    def undo(self) -> bool:
        """Undo the last region edit (the layer, the table and the autosave follow)."""
        done = self.edits is not None and self.edits.undo()
        self._after_history(done, "Undone")
        return bool(done)

    def redo(self) -> bool:
        done = self.edits is not None and self.edits.redo()
        self._after_history(done, "Redone")
        return bool(done)

    def _after_history(self, done: bool, what: str) -> None:
        self._update_undo_buttons()
        if done:
            self._debounce.stop()
            self.refresh()
            self.status.setText(f"{what}: {len(self.regions())} regions.")

    def _update_undo_buttons(self) -> None:
        history = self.edits.history if self.edits is not None else None
        self.undo_button.setEnabled(bool(history and history.can_undo))
        self.redo_button.setEnabled(bool(history and history.can_redo))

    def _renamed(self, item: QTableWidgetItem) -> None:
        """A name edited in the table goes to the shape (and the canvas, and the file)."""
        if item.column() != NAME_COLUMN or self.shapes is None:
            return
        index = item.data(INDEX_ROLE)
        if index is not None:
            self.rename_region(int(index), item.text())

    def rename_region(self, index: int, name: str) -> bool:
        """Give the ``index``-th shape of the layer a new name (canvas, table, file)."""
        names = [r.name for r in self.regions()]
        new = name.strip()
        if not 0 <= index < len(names) or not new or new == names[index]:
            return False
        names[index] = new
        features = self.shapes.features.copy()
        features["name"] = names
        self.shapes.features = features
        self.shapes.refresh_text()
        self._debounce.start()
        return True

    def regions(self) -> list[Region]:
        """Regions in level-0 pixels from the shapes layer (data coordinates are pixels)."""
        if self.shapes is None:
            return []
        from omicslens._napari.region_edits import regions_of

        return regions_of(snapshot(self.shapes))

    def import_regions(self, path: str | Path) -> int:
        """Add a GeoJSON file's regions; those already in the layer (same name and
        outline) are not added twice. Returns how many were added."""
        regions = read_regions(path)
        layer = self.shapes or self.new_layer()
        if layer is None:
            return 0
        added = self._add_regions(regions)
        skipped = len(regions) - added
        self.refresh()
        self.status.setText(
            f"Imported {added} regions from {Path(path).name}"
            + (f"; {skipped} already present were not added again." if skipped else ".")
        )
        return added

    def _add_regions(self, regions: list[Region]) -> int:
        present = {(r.name, r.vertices) for r in snapshot(self.shapes)}
        records = []
        for region in regions:
            vertices = tuple(map(tuple, np.round(region.vertices[:, ::-1], 3).tolist()))
            if (region.name, vertices) in present:
                continue
            present.add((region.name, vertices))
            records.append(ShapeRecord(region.name, region.shape_type, vertices, region.id))
        if records:
            add_shapes(self.shapes, tuple(records))
        return len(records)

    def export_regions(self, path: str | Path, overwrite: bool = False) -> Path:
        """QuPath GeoJSON with the same measurements ``omicslens predict --regions`` writes."""
        regions = self.regions()
        if self.report is not None and len(self.report.regions) == len(regions):
            for region, stats in zip(regions, self.report.regions, strict=True):
                stats.region = region  # the layer's current geometry and names
            regions = regions_for_export(self.report)
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
        """Recompute the statistics in a worker thread (geometry over the grid, store reads)."""
        from napari.qt.threading import thread_worker

        live = self.state.live
        if self.edits is not None and self.edits.settle():
            self._update_undo_buttons()
        regions = self.regions()
        self.state.regions = regions
        if live is None or not regions:
            # no model (or no region): what is known without one, never a stale row
            self.report, self.summaries = None, []
            fill_table(self.table, basic_rows(regions, self._mpp(), self.state.smear))
            self.compare.fill_choices([r.name for r in regions])
            self.compare_table.setRowCount(0)
            self.plot()
            if regions:
                self.status.setText(
                    f"{len(regions)} regions. Load a model in the Predict tab for the "
                    "predicted expression inside them."
                )
            return
        if self.busy:
            self._again = True
            return
        self.busy = True
        worker = thread_worker(summarise_regions, start_thread=False)(live.session, regions)
        worker.returned.connect(lambda report: self._show_report(live, report))
        worker.errored.connect(self._refresh_failed)
        self._worker = show_activity(worker, "region statistics")
        worker.start()

    def _refresh_failed(self, error: BaseException) -> None:
        self.busy = False
        self.status.setText(f"Could not compute the region statistics: {error}")

    def _show_report(self, live: Any, report: RegionReport) -> None:
        self.busy = False
        if self._again:
            self._again = False
            self.refresh()
            return
        if live is not self.state.live:
            return  # the model changed meanwhile
        self.report = report
        self.summaries = [r.summary for r in report.regions]
        fill_table(self.table, predicted_rows(report, live, self.state.smear))
        self.compare.fill_choices([s.name for s in self.summaries])
        self.plot()
        missing = report.unpredicted()
        self.status.setText(
            f"{len(report.regions)} regions; {missing} tissue tiles in them not predicted yet"
            + (" (press Predict to fill them)." if missing else ".")
            + f" Mean column: {live.output.label}."
        )

    def _mpp(self) -> tuple[float, float] | None:
        layer = self._slide_layer()
        slide = slide_of(layer) if layer is not None else None
        return (slide.mpp_x, slide.mpp_y) if slide is not None else None

    def plot_values(self) -> dict[str, np.ndarray]:
        """Per region, the shown output over its predicted tissue tiles (what is plotted)."""
        live = self.state.live
        if live is None or self.report is None:
            return {}
        return {r.region.name: live.output.apply(r.values) for r in self.report.regions}

    def plot(self) -> None:
        """Box plot, histogram or bar chart of the shown output per region."""
        live = self.state.live
        self.region_plot.draw(self.plot_values(), live.output.label if live is not None else None)

    def predict_missing(self) -> JobHandle | None:
        """Queue the regions' unpredicted tissue tiles behind the view, as a job (the
        geometry over the grid runs in the job's thread too)."""
        live = self.state.live
        if live is None:
            self.status.setText("Load a model in the Predict dock first.")
            return None
        self.predict_job = start_job(
            self.state,
            _region_tiles_job(live, self.regions()),
            "region tiles",
            on_done=lambda run: self.refresh(),
            on_error=lambda error: self.status.setText(f"Region tiles stopped: {error}"),
            owner=live,
        )
        return self.predict_job

    def run_comparison(self) -> Any:
        """Compare the chosen regions in a worker thread (see region_compare.py)."""
        return self.compare.run(self.state.live, self.regions())

    @property
    def comparison(self) -> Comparison | None:
        return self.compare.comparison

    def export_crop(self, name: str, path: str | Path) -> Any:
        """Start writing region ``name`` (H&E + overlays) as OME-TIFF in a worker thread."""
        from napari.qt.threading import thread_worker

        from omicslens.core.exports.crop import write_region_ome_tiff

        live = self.state.live
        region = {r.name: r for r in self.regions()}[name]
        session = live.session
        outputs = list(range(len(session.bundle.output_names)))
        worker = thread_worker(write_region_ome_tiff, start_thread=False)(
            session.slide, region, session.store, outputs, path
        )
        worker.returned.connect(lambda written: self.status.setText(f"Wrote {written}."))
        worker.errored.connect(lambda error: self.status.setText(f"Not written: {error}"))
        show_activity(worker, f"writing {Path(path).name}")
        worker.start()
        return worker

    def _crop_dialog(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        if not rows or self.state.live is None:
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
