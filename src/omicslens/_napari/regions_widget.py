"""Dock widget: ask questions of drawn regions, on the full-resolution tile grid.

Regions are drawn in a napari Shapes layer whose data coordinates are the slide's level-0
pixels (the widget creates it with the slide's scale), or imported from QuPath GeoJSON.
For each region the table gives area, tiles, tissue fraction, predicted and unpredicted
tiles, the mean of the shown output and the top outputs; a comparison of two regions
(or a region against the rest of the tissue) ranks outputs by Benjamini-Hochberg
q-value of a Mann-Whitney U test over tiles. Statistics come from the prediction store
(``core.region_stats``), never from screen pixels.

The buttons and table are built in :mod:`omicslens._napari.regions_controls`, the layer
in :mod:`omicslens._napari.region_layer`, the worker-thread jobs in
:mod:`omicslens._napari.region_jobs` and Ctrl+C of a table in
:mod:`omicslens._napari.table_clipboard`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import (
    QFileDialog,
    QLabel,
    QShortcut,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from omicslens._napari.jobs import JobHandle, show_activity, start_job
from omicslens._napari.layers import slide_of
from omicslens._napari.region_compare import REST, RegionComparison
from omicslens._napari.region_edits import RegionEdits, snapshot
from omicslens._napari.region_jobs import region_tiles_job, start_crop_export
from omicslens._napari.region_layer import (
    add_regions,
    add_regions_layer,
    autosave_path_of,
    rename_shape,
)
from omicslens._napari.region_plot import RegionPlot
from omicslens._napari.region_table import (
    INDEX_ROLE,
    NAME_COLUMN,
    basic_rows,
    cell_counts,
    fill_table,
    predicted_rows,
)
from omicslens._napari.regions_controls import REDO_TIP, UNDO_TIP, RegionsControls
from omicslens._napari.state import viewer_state
from omicslens._napari.table_clipboard import copy_rows
from omicslens.app.regions import RegionReport, regions_for_export, summarise_regions
from omicslens.core.region_stats import Comparison, RegionSummary
from omicslens.core.regions import Region, read_regions, write_regions

__all__ = ["REDO_TIP", "REST", "UNDO_TIP", "RegionsWidget", "cell_counts"]

if TYPE_CHECKING:
    import napari


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
        #: layer and GeoJSON buttons, undo/redo, the per-region table (regions_controls.py)
        self.controls = RegionsControls()
        self.new_button = self.controls.new_button
        self.undo_button = self.controls.undo_button
        self.redo_button = self.controls.redo_button
        self.import_button = self.controls.import_button
        self.export_button = self.controls.export_button
        self.table = self.controls.table
        self.predict_button = self.controls.predict_button
        self.crop_button = self.controls.crop_button
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
        layout = QVBoxLayout(self)
        self.controls.add_to(layout)
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
        self.shapes = add_regions_layer(self.viewer, layer, slide)
        self.shapes.events.data.connect(lambda event=None: self._debounce.start())
        self._autosave = self._autosave_path(slide)
        restored: list[Region] = []
        if self._autosave is not None and self._autosave.exists():
            restored = read_regions(self._autosave)
            add_regions(self.shapes, restored)
        # the restored regions are where undo stops
        self.edits = RegionEdits(self.shapes, self._autosave)
        self._update_undo_buttons()
        if restored:
            self.status.setText(f"Restored {len(restored)} regions from {self._autosave}.")
        return self.shapes

    @staticmethod
    def _autosave_path(slide: Any) -> Path | None:
        return autosave_path_of(slide)

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
        if not rename_shape(self.shapes, [r.name for r in self.regions()], index, name):
            return False
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
        added = add_regions(self.shapes, regions)
        skipped = len(regions) - added
        self.refresh()
        self.status.setText(
            f"Imported {added} regions from {Path(path).name}"
            + (f"; {skipped} already present were not added again." if skipped else ".")
        )
        return added

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
            region_tiles_job(live, self.regions()),
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
        live = self.state.live
        region = {r.name: r for r in self.regions()}[name]
        return start_crop_export(live.session, region, path, self.status.setText)

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
        return copy_rows(table)
