"""Measured beside predicted: load spatial transcriptomics for the open slide and compare.

The measured spots are drawn as a points layer (spot-sized, in the slide's micrometre
frame) coloured by the measured value of whatever the overlay shows (a gene, or a gene-set
score computed from the measured genes the same way as from the predicted ones), and the
panel reports Pearson r of predicted against measured at those spots, for the shown
output and as the mean over all genes. Predictions at spots come from windows centred on
each spot (as ``omicslens evaluate-expression`` does), computed off the main thread with
a predictor of its own (the live one belongs to the scheduler's worker thread).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from omicslens._napari.jobs import start_job
from omicslens.app.progress import Progress
from omicslens.core.errors import OmicsLensError
from omicslens.core.genesets import OutputCombination
from omicslens.core.measured import MeasuredExpression, load_measured, pearson_per_column

if TYPE_CHECKING:
    from omicslens._napari.inference_widget import InferenceWidget


def _comparison_job(
    slide: Any, bundle: Any, device: Any, path: str, section: str | None, scale: float
) -> Generator[Progress, None, Any]:
    """Worker: load the measured data, then the app's comparison job (progress per batch).

    A problem with the user's input comes back as the error itself (shown in the panel).
    """
    from omicslens.app.measured import compare_with_measured
    from omicslens.models.predictor import Predictor

    try:
        yield Progress("loading", 0, 1, message=str(path))
        measured = load_measured(path, section=section or None)
        if scale != 1.0:
            measured.x = measured.x * scale
            measured.y = measured.y * scale
        predictor = Predictor(bundle, device=device)  # the live one belongs to the scheduler
        return (yield from compare_with_measured(slide, measured, predictor))
    except OmicsLensError as error:
        return error


class MeasuredPanel(QGroupBox):
    """ "Measured expression" box of the Predict dock."""

    def __init__(self, owner: InferenceWidget) -> None:
        super().__init__("Measured expression (compare with predictions)")
        self.owner = owner
        self.measured: MeasuredExpression | None = None
        self.predicted: np.ndarray | None = None  # (spots, outputs)
        self.measured_outputs: np.ndarray | None = None  # (spots, outputs), NaN unmeasured
        self.layer: Any = None
        self._worker: Any = None
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("HER2ST folder/counts, Visium folder or .h5ad")
        self.file_button = QPushButton("File…")
        self.folder_button = QPushButton("Folder…")
        self.section_edit = QLineEdit()
        self.section_edit.setPlaceholderText("HER2ST section, e.g. C6")
        self.scale_spin = QDoubleSpinBox()
        self.scale_spin.setRange(1e-4, 1e4)
        self.scale_spin.setDecimals(4)
        self.scale_spin.setValue(1.0)
        self.scale_spin.setToolTip(
            "Multiply the measured pixel positions by this to reach this slide's level-0 "
            "pixels (0.5 when the slide is a half-resolution copy of the measured image)"
        )
        self.load_button = QPushButton("Load and compare")
        self.path_edit.setToolTip("A Visium folder, an AnnData .h5ad or a HER2ST folder")
        self.file_button.setToolTip("Choose a measured-expression file (.h5ad, counts .tsv)")
        self.folder_button.setToolTip("Choose a Visium (Space Ranger) or HER2ST folder")
        self.section_edit.setToolTip("The section to load from a HER2ST folder, e.g. C6")
        self.load_button.setToolTip(
            "Load the measured spots and score the predictions against them (Pearson r)"
        )
        self.result = QLabel("No measured data loaded.")
        self.result.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(self.file_button)
        row.addWidget(self.folder_button)
        form = QFormLayout()
        form.addRow("Data", row)
        form.addRow("Section", self.section_edit)
        form.addRow("Position scale", self.scale_spin)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.load_button)
        layout.addWidget(self.result)
        self.file_button.clicked.connect(self._browse_file)
        self.folder_button.clicked.connect(self._browse_folder)
        self.load_button.clicked.connect(self.load)

    def _browse_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Measured expression", "", "Expression (*.h5ad *.tsv.gz *.tsv)"
        )
        if path:
            self.path_edit.setText(path)

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "HER2ST or Visium folder")
        if path:
            self.path_edit.setText(path)

    # -- loading ----------------------------------------------------------------------------
    def load(self) -> None:
        live = self.owner.live
        path = self.path_edit.text().strip()
        if live is None or not path:
            self.result.setText("Load a model and choose the measured data first.")
            return
        session = live.session
        self.result.setText("Predicting at the measured spots…")
        self.load_button.setEnabled(False)
        self._worker = start_job(
            self.owner.state,
            _comparison_job(
                session.slide,
                session.bundle,
                session.predictor.device,
                path,
                self.section_edit.text().strip(),
                self.scale_spin.value(),
            ),
            "measured spots",
            on_done=lambda result: self._loaded(live, result),
            on_error=self._failed,
            owner=live,
        )

    def _failed(self, error: BaseException) -> None:
        self.load_button.setEnabled(True)
        self.result.setText(f"Could not compare: {error}")

    def _loaded(self, live: Any, result: Any) -> None:
        self.load_button.setEnabled(True)
        if isinstance(result, BaseException):
            self._failed(result)
            return
        if live is not self.owner.live:
            return
        measured, predicted = result.measured, result.predicted
        names = list(live.session.bundle.output_names)
        self.measured, self.predicted = measured, predicted
        index = measured.gene_index(names)
        values = measured.normalised()
        outputs = np.full((measured.n_spots, len(names)), np.nan, dtype=np.float32)
        present = index >= 0
        outputs[:, present] = values[:, index[present]]
        self.measured_outputs = outputs
        self._draw_points(live)
        self.output_changed(live.output)

    def _draw_points(self, live: Any) -> None:
        assert self.measured is not None
        slide_layer = live.slide_layer
        mpp = float(np.mean(slide_layer.scale[-2:]))
        diameter_um = self.measured.spot_diameter_um or 100.0
        data = np.c_[self.measured.y, self.measured.x]
        name = f"measured: {self.measured.source}"
        if self.layer is not None and self.layer in self.owner.viewer.layers:
            self.owner.viewer.layers.remove(self.layer)
        self.layer = self.owner.viewer.add_points(
            data,
            name=name,
            scale=tuple(slide_layer.scale[-2:]),
            units=("um", "um"),
            size=diameter_um / mpp,
            features={"value": np.zeros(len(data))},
            face_color="value",
            face_colormap=live.overlay.layer.colormap.name,
            border_width=0.05,
        )

    # -- following the shown output ---------------------------------------------------------
    def output_changed(self, choice: OutputCombination) -> None:
        if self.measured_outputs is None or self.predicted is None:
            return
        used = [i for i, w in enumerate(choice.weights) if w != 0]
        if np.isnan(self.measured_outputs[:, used]).any():
            self.result.setText(
                f"{choice.label}: not measured here (no measured counterpart for "
                f"{', '.join(str(self._name(i)) for i in used)})." + self._mean_text()
            )
            return
        measured = choice.apply(np.nan_to_num(self.measured_outputs))
        predicted = choice.apply(self.predicted)
        r = float(pearson_per_column(predicted[:, None], measured[:, None])[0])
        if self.layer is not None:
            self.layer.features = {"value": measured}
            self.layer.face_color = "value"
            self.layer.face_contrast_limits = tuple(np.percentile(measured, [1, 99]).tolist())
            self.layer.refresh()
        self.last_pearson = r
        self.result.setText(
            f"{choice.label}: r = {r:.2f} between predicted and measured at "
            f"{len(measured)} spots." + self._mean_text()
        )

    def _name(self, index: int) -> str:
        live = self.owner.live
        return live.session.bundle.output_names[index] if live else str(index)

    def _mean_text(self) -> str:
        assert self.measured_outputs is not None and self.predicted is not None
        measured_cols = ~np.isnan(self.measured_outputs).any(axis=0)
        if not measured_cols.any():
            return ""
        r = pearson_per_column(
            self.predicted[:, measured_cols], self.measured_outputs[:, measured_cols]
        )
        self.mean_pearson = float(np.nanmean(r))
        return f" Mean r over {int(measured_cols.sum())} measured outputs: {self.mean_pearson:.3f}."

    def session_changed(self) -> None:
        """A new model: earlier predictions at spots no longer apply."""
        self.predicted = None
        self.measured_outputs = None
        if self.measured is not None:
            self.result.setText("Model changed: press Load and compare again.")
