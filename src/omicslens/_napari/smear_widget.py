"""Dock widget for blood smears: cells on the image, a gallery by class with corrections,
the differential count, and the patient panel.

Hematologists review smears cell by cell (as on CellaVision): the gallery shows every
detected white cell grouped by class; clicking one centres the viewer on it; a reviewer
can re-class selected cells, and the correction is kept (``SmearAnalysis.corrections``),
drives the differential and the colours, and is exported (``class`` vs ``model_class``).
Each correction of a smear is autosaved at once (:mod:`omicslens.hemato.review_store`),
so it survives a crash: analysing the same image with the same model again restores it.
The corrections of a crop folder are kept in memory only, until exported.
Cells flagged for review (far from every training class) have their own colour and
gallery row and are counted apart. A folder of single-cell crops (CellaVision-style
exports, a patient's folder) opens as a gallery of its own, typed by the same model.
Analysis and crop cutting run in a worker thread; exports are atomic and refuse to
overwrite files unless asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from omicslens._napari.cell_gallery import ICON_PX, CellGallery, crop_entries, smear_entries
from omicslens._napari.jobs import JobHandle, start_job
from omicslens._napari.layers import fill_slide_layer_combo, slide_of
from omicslens._napari.smear_canvas import SmearCells
from omicslens._napari.smear_panels import (
    NO_GENETIC_MODEL,
    collection_patient_text,
    fill_differential,
    read_differential,
    smear_patient_text,
)
from omicslens._napari.smear_review import autosave, restore
from omicslens._napari.state import viewer_state
from omicslens.app.crops import CropTypingReport, type_cells_job, write_crops_outputs
from omicslens.app.smear import export_smear, smear_job
from omicslens.hemato.cell_reference import REVIEW_CLASS

if TYPE_CHECKING:
    import napari

    from omicslens._napari.legend import ClassLegend
    from omicslens.hemato.smear import SmearAnalysis

__all__ = ["NO_GENETIC_MODEL", "SmearWidget"]


class SmearWidget(QWidget):
    """Find, type and review the white cells of a smear image layer."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.state = viewer_state(napari_viewer)
        self.job: JobHandle | None = None
        self.analysis: SmearAnalysis | None = None
        #: corrections of a reopened session, applied to the next analysis of its image
        self.pending_corrections: list[Any] = []
        #: a typed folder of single-cell crops, shown instead of a smear's cells
        self.collection: CropTypingReport | None = None
        self.crops: list[np.ndarray] = []
        self.cells_view = SmearCells(napari_viewer)
        self._slide_layer: Any = None
        self._worker: Any = None
        self.layer_combo = QComboBox()
        self.genetic_edit = QLineEdit()
        self.genetic_edit.setPlaceholderText("optional: genetic aggregator bundle folder")
        self.genetic_button = QPushButton("Folder…")
        self.run_button = QPushButton("Find and type white cells")
        self.run_button.setToolTip("Detect, type and embed the white cells of the chosen image")
        self.crops_button = QPushButton("Open crops folder…")
        self.crops_button.setToolTip(
            "Type a folder of single-cell images (PNG, JPEG, TIFF, BMP; searched "
            "recursively), e.g. a CellaVision export or one patient's crops"
        )
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setToolTip("Stops after the current step (detection runs as one)")
        self.gallery = CellGallery()
        self.colour_combo = QComboBox()
        self.colour_combo.setToolTip("Colour the cells by their class or by any score")
        self.class_combo = QComboBox()
        self.correct_button = QPushButton("Set class of selected cells")
        self.differential = QTableWidget(0, 3)
        self.differential.setHorizontalHeaderLabels(["class", "cells", "%"])
        self.patient = QLabel(NO_GENETIC_MODEL)
        self.patient.setWordWrap(True)
        self.export_button = QPushButton("Export cells (CSV, GeoJSON, features)…")
        self.layer_combo.setToolTip("The smear image (layer) to analyse")
        self.genetic_edit.setToolTip(
            "Optional: a patient-level aggregator bundle (SCEMILA- or GenBloom-style)"
        )
        self.genetic_button.setToolTip("Choose the aggregator bundle folder")
        self.class_combo.setToolTip("The class to give the cells selected in the gallery")
        self.correct_button.setToolTip(
            "Re-class the selected cells: your decision is kept, marked and exported"
        )
        self.export_button.setToolTip(
            "Write cells.csv, QuPath cells.geojson, features.h5 and smear.json to a folder"
        )
        self.status = QLabel("Open a smear image, then find the white cells.")
        self.status.setWordWrap(True)

        genetic_row = QHBoxLayout()
        genetic_row.addWidget(self.genetic_edit, 1)
        genetic_row.addWidget(self.genetic_button)
        correct_row = QHBoxLayout()
        correct_row.addWidget(self.class_combo, 1)
        correct_row.addWidget(self.correct_button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Smear image"))
        layout.addWidget(self.layer_combo)
        layout.addLayout(genetic_row)
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_button, 1)
        run_row.addWidget(self.crops_button)
        run_row.addWidget(self.cancel_button)
        layout.addLayout(run_row)
        colour_row = QHBoxLayout()
        colour_row.addWidget(QLabel("Colour cells by"))
        colour_row.addWidget(self.colour_combo, 1)
        layout.addLayout(colour_row)
        layout.addWidget(QLabel("Cells by class (click to go to a cell)"))
        layout.addWidget(self.gallery, 2)
        layout.addLayout(correct_row)
        layout.addWidget(QLabel("Differential count"))
        layout.addWidget(self.differential, 1)
        layout.addWidget(QLabel("Patient"))
        layout.addWidget(self.patient)
        layout.addWidget(self.export_button)
        layout.addWidget(self.status)

        self.run_button.clicked.connect(self.run)
        self.crops_button.clicked.connect(self._browse_crops)
        self.cancel_button.clicked.connect(self.cancel)
        self.genetic_button.clicked.connect(self._browse_genetic)
        self.gallery.itemClicked.connect(self._go_to_cell)
        self.correct_button.clicked.connect(self._correct_selected)
        self.colour_combo.currentTextChanged.connect(self._recolour)
        self.export_button.clicked.connect(self._export_dialog)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    @property
    def points(self) -> Any:
        """The cells layer on the canvas (None before an analysis)."""
        return self.cells_view.layer

    @property
    def class_legend(self) -> ClassLegend | None:
        return self.cells_view.legend

    def _refresh_layers(self, event: Any = None) -> None:
        fill_slide_layer_combo(self.layer_combo, self.viewer)

    def _browse_genetic(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Genetic aggregator bundle")
        if folder:
            self.genetic_edit.setText(folder)

    # -- analysis ---------------------------------------------------------------------------
    def run(self) -> None:
        layer = next(
            (lay for lay in self.viewer.layers if lay.name == self.layer_combo.currentText()), None
        )
        slide = slide_of(layer) if layer is not None else None
        if slide is None:
            self.status.setText("Open a smear image first.")
            return
        self._slide_layer = layer
        self.run_button.setEnabled(False)
        self.status.setText("Finding and typing white cells…")
        # the file's own resolution is re-read (and reported) by the pipeline; a value the
        # user typed when the file had none is passed on as given
        given = slide.mpp if slide.resolution.source == "given by the user" else None
        self.job = start_job(
            self.state,
            smear_job(
                str(slide.path),
                mpp=given,
                genetic=self.genetic_edit.text().strip() or None,
                crop_px=ICON_PX,
            ),
            "blood smear",
            on_done=lambda report: self._show(report.analysis, report.crops),
            on_error=self._failed,
            owner=self,
        )
        self.cancel_button.setEnabled(True)
        self.job.signals.finished.connect(lambda: self.cancel_button.setEnabled(False))

    def _browse_crops(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of single-cell crops")
        if folder:
            self.open_crops(folder)

    def open_crops(self, folder: str | Path) -> None:
        """Type every crop under ``folder`` in a worker and show them as a gallery."""
        self.run_button.setEnabled(False)
        self.crops_button.setEnabled(False)
        self.status.setText(f"Typing the crops in {Path(folder).name}…")
        self.job = start_job(
            self.state,
            type_cells_job(
                [folder], genetic=self.genetic_edit.text().strip() or None, gallery_px=ICON_PX
            ),
            "cell crops",
            on_done=self._show_collection,
            on_error=self._failed,
            owner=self,
        )
        self.cancel_button.setEnabled(True)
        self.job.signals.finished.connect(lambda: self.cancel_button.setEnabled(False))

    def _show_collection(self, report: CropTypingReport) -> None:
        self.run_button.setEnabled(True)
        self.crops_button.setEnabled(True)
        self.analysis, self.collection, self.crops = None, report, report.gallery
        self._fill_class_combo(report.types.class_names)
        self.colour_combo.clear()
        self._fill_gallery()
        self._fill_differential()
        self._fill_patient()
        review = sum(1 for flag in report.flags if flag)
        failed = f", {len(report.failed)} could not be read" if report.failed else ""
        self.status.setText(
            f"{len(report.cells)} crops typed ({review} flagged for review{failed}). "
            f"Typing model: {report.types.model_name}."
        )

    def _fill_class_combo(self, class_names: tuple[str, ...]) -> None:
        self.class_combo.clear()
        self.class_combo.addItems([*class_names, "Unknown", REVIEW_CLASS])

    def cancel(self) -> None:
        """Stop the running analysis (at its next step) and keep the previous result."""
        if self.job is not None:
            self.job.cancel()
        self.run_button.setEnabled(True)
        self.status.setText("Cancelled; the previous analysis, if any, is kept.")

    def _failed(self, error: BaseException) -> None:
        self.run_button.setEnabled(True)
        self.crops_button.setEnabled(True)
        self.status.setText(f"Could not analyse the smear: {error}")

    def _show(self, analysis: SmearAnalysis, crops: list[np.ndarray]) -> None:
        self.run_button.setEnabled(True)
        self.analysis, self.collection, self.crops = analysis, None, crops
        self.state.smear = analysis
        restored = restore(analysis)
        if self.pending_corrections:
            restored = " ".join(filter(None, [restored, self._apply_session_corrections()]))
        self._fill_class_combo(analysis.types.class_names)
        self.colour_combo.blockSignals(True)
        self.colour_combo.clear()
        self.colour_combo.addItems(["class", *self.scores()])
        self.colour_combo.blockSignals(False)
        self._draw_points()
        self._fill_gallery()
        self._fill_differential()
        self._fill_patient()
        self.status.setText(
            f"{len(analysis.cells)} white cells at {analysis.mpp:.4f} um/px "
            f"({analysis.mpp_source}). Typing model: {analysis.types.model_name}."
            + (f" {restored}" if restored else "")
        )

    def _apply_session_corrections(self) -> str:
        """A session's corrections, on the cells with the same id and centre (2 px)."""
        from omicslens.hemato.review_store import StoredCorrection, match_corrections

        assert self.analysis is not None
        applied = match_corrections(
            self.analysis,
            (StoredCorrection(c.cell_id, c.x, c.y, c.label) for c in self.pending_corrections),
        )
        total = len(self.pending_corrections)
        self.pending_corrections = []
        if applied:
            autosave(self.analysis)
        return f"Session: {applied} of {total} corrections applied."

    # -- views ------------------------------------------------------------------------------
    def _draw_points(self) -> None:
        assert self.analysis is not None
        self.cells_view.draw(self.analysis, self._slide_layer)

    def scores(self) -> dict[str, np.ndarray]:
        """Per-cell scores the cells can be coloured by: class probabilities, attention."""
        assert self.analysis is not None
        types = self.analysis.types
        found = {
            f"P({name})": types.probabilities[:, i] for i, name in enumerate(types.class_names)
        }
        if self.analysis.patient is not None:
            found["attention (genetic model)"] = np.asarray(self.analysis.patient.attention)
        found["cell area (um^2)"] = np.array([c.cell_area_um2 for c in self.analysis.cells])
        return found

    def _recolour(self, name: str) -> None:
        if self.points is None or self.analysis is None or not len(self.analysis.cells):
            return
        if name == "class" or name not in self.scores():
            self._draw_points()
            return
        self.cells_view.recolour(self.scores()[name], name)

    def _fill_gallery(self) -> None:
        if self.collection is not None:
            entries = crop_entries(self.collection)
        else:
            assert self.analysis is not None
            entries = smear_entries(self.analysis)
        self.gallery.show_entries(entries, self.crops)

    def gallery_groups(self) -> dict[str, list[int]]:
        """Class -> cell ids as the gallery shows them (for tests and scripting)."""
        return self.gallery.groups()

    def _fill_differential(self) -> None:
        source = self.collection if self.collection is not None else self.analysis
        assert source is not None
        fill_differential(self.differential, source.counts())

    def differential_counts(self) -> dict[str, int]:
        return read_differential(self.differential)

    def _fill_patient(self) -> None:
        if self.collection is not None:
            self.patient.setText(collection_patient_text(self.collection))
        else:
            assert self.analysis is not None
            self.patient.setText(smear_patient_text(self.analysis))

    # -- interaction ------------------------------------------------------------------------
    def _go_to_cell(self, item: QListWidgetItem) -> None:
        index = item.data(Qt.ItemDataRole.UserRole)
        if index is None or self.analysis is None:  # crops have no place on a slide
            return
        cell = self.analysis.cells[int(index)]
        sy, sx = self._slide_layer.scale[-2:]
        camera = self.viewer.scene.camera
        camera.center = (cell.centre_y * sy, cell.centre_x * sx)
        camera.zoom = max(camera.zoom, 4.0 / max(sy, sx) / 10)

    def correct(self, cell_ids: list[int], new_class: str) -> None:
        """Re-class cells (a reviewer's decision; kept and exported).

        A smear's corrections are autosaved at once (they survive a crash and come back
        when the same image is analysed again with the same model). For a crop folder the
        ids are the crops' positions in the gallery's entries, and its corrections stay in
        memory only: export them to keep them."""
        if self.collection is not None:
            for index in cell_ids:
                self.collection.corrections[int(index)] = new_class
            self._fill_gallery()
            self._fill_differential()
            return
        assert self.analysis is not None
        for cell_id in cell_ids:
            self.analysis.corrections[int(cell_id)] = new_class
        problem = autosave(self.analysis)
        self._draw_points()
        self._fill_gallery()
        self._fill_differential()
        corrected = len(self.analysis.corrections)
        self.status.setText(problem or f"{corrected} corrected cell(s), saved as you go.")

    def _correct_selected(self) -> None:
        if self.analysis is None and self.collection is None:
            return
        ids = self.gallery.selected_ids()
        if ids:
            self.correct(ids, self.class_combo.currentText())

    def export(self, folder: str | Path, force: bool = False) -> list[Path]:
        if self.collection is not None:
            out = write_crops_outputs(self.collection, Path(folder) / "cells.csv", force=force)
            return [out, out.with_suffix(out.suffix + ".json")]
        assert self.analysis is not None
        return export_smear(self.analysis, folder, force=force)

    def _export_dialog(self) -> None:
        if self.analysis is None and self.collection is None:
            return
        folder = QFileDialog.getExistingDirectory(self, "Export cells to folder")
        if not folder:
            return
        try:
            written = self.export(folder)
        except Exception as error:  # existing files: say so, never overwrite silently
            self.status.setText(f"Not exported: {error}")
            return
        self.status.setText(f"Exported {len(written)} files to {folder}.")
