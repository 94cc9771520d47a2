"""Dock widget: run a model on the tiles in view and show the result as a heatmap.

Everything slow (loading weights, tissue detection, opening the prediction cache, reading
a whole output raster) runs in napari ``thread_worker``s; the widget only wires results
into layers. See :mod:`omicslens._napari.live_inference` for the threading of inference.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.qt.threading import thread_worker
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from omicslens._napari.display_controls import DisplayControls
from omicslens._napari.domain_banner import DomainBanner
from omicslens._napari.jobs import JobHandle, show_activity, start_job
from omicslens._napari.layers import fill_slide_layer_combo, slide_of
from omicslens._napari.live_inference import LiveInference
from omicslens._napari.measured_panel import MeasuredPanel
from omicslens._napari.similarity_panel import SimilarityPanel
from omicslens._napari.state import viewer_state
from omicslens._napari.tooltips import set_tooltips
from omicslens._napari.trust_prompt import ask_to_trust
from omicslens.core.genesets import OutputCombination, available_gene_sets, single_output
from omicslens.core.samples import bundled_tile_models
from omicslens.core.session import ShownOutput

if TYPE_CHECKING:
    import napari

    from omicslens.models.session import InferenceSession

#: Genes whose validation Pearson is below this are flagged in the picker.
DEFAULT_FLAG_BELOW = 0.2
DEVICES = ("auto", "cpu", "cuda", "mps")


def _open_session(
    slide: Any, bundle_path: str, device: str, min_tissue: float = 0.25, trust_code: bool = False
) -> tuple[Any, Any]:
    """Worker: :func:`omicslens.app.tiles.open_session`; a problem with the user's input
    (a broken bundle, an unavailable device) comes back as ``(None, error)`` so the widget
    shows it; anything else is a bug and is raised."""
    from omicslens.app.tiles import open_session
    from omicslens.core.errors import OmicsLensError

    try:
        return open_session(slide, bundle_path, device, min_tissue, trust_code=trust_code)
    except OmicsLensError as error:
        return None, error


class InferenceWidget(QWidget):
    """Pick a slide layer and a model bundle, then predict the tiles in view."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.state = viewer_state(napari_viewer)
        self.live: LiveInference | None = None
        #: asked before running TorchScript that touches files (tests answer for the user)
        self.confirm_trust: Callable[[QWidget, BaseException], bool] = ask_to_trust
        #: Output (gene or set label) to select once a model is loaded (``view --output``).
        self.initial_output: str | None = None
        #: colour map, opacity and fixed limits to apply once loaded (a reopened session)
        self.initial_display: ShownOutput | None = None
        self._worker: Any = None
        self.whole_slide_job: JobHandle | None = None
        self.view_job: JobHandle | None = None

        self.layer_combo = QComboBox()
        self.model_combo = QComboBox()
        self.browse_button = QPushButton("Folder…")
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.tissue_spin = QDoubleSpinBox()
        self.tissue_spin.setRange(0.0, 1.0)
        self.tissue_spin.setSingleStep(0.05)
        self.tissue_spin.setValue(0.25)
        self.tissue_spin.setToolTip(
            "Predict a tile only when at least this fraction of it is tissue (0 = every tile)"
        )
        self.start_button = QPushButton("Load model")
        self.follow_check = QCheckBox("Follow the view (predict what is on screen)")
        self.follow_check.setChecked(True)
        self.whole_button = QPushButton("Predict whole slide")
        self.cancel_button = QPushButton("Cancel")
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Search outputs (genes, classes)…")
        self.output_list = QListWidget()
        self.flag_spin = QDoubleSpinBox()
        self.flag_spin.setRange(-1.0, 1.0)
        self.flag_spin.setSingleStep(0.05)
        self.flag_spin.setValue(DEFAULT_FLAG_BELOW)
        self.flag_spin.setToolTip("Genes whose validation Pearson r is below this are flagged")
        self._choices: list[OutputCombination] = []
        self._grades: dict[str, str] = {}
        self.measured = MeasuredPanel(self)
        self.similarity = SimilarityPanel(self)
        set_tooltips(
            (self.layer_combo, "The slide (image layer) to predict on"),
            (self.model_combo, "A bundled model, or the folder chosen with Folder…"),
            (self.browse_button, "Choose a model bundle folder (config.json + weights)"),
            (self.device_combo, "Where the model runs: auto picks a GPU when there is one"),
            (self.start_button, "Load the model and start predicting the tiles on screen"),
            (
                self.follow_check,
                "Predict the tiles you pan and zoom to, in the background, nearest first",
            ),
            (self.whole_button, "Predict every tissue tile of the slide in the background"),
            (self.cancel_button, "Stop predicting; tiles already predicted are kept"),
            (self.filter_edit, "Type part of a gene or output name to filter the list"),
        )
        self.status = QLabel("No model loaded")
        self.status.setWordWrap(True)
        #: colour map, opacity, colour limits and snapshot of the shown map
        self.display = DisplayControls(self.viewer, self._overlay, self.status.setText)
        self.domain_banner = DomainBanner()

        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.browse_button)
        run_row = QHBoxLayout()
        run_row.addWidget(self.whole_button)
        run_row.addWidget(self.cancel_button)
        form = QFormLayout()
        form.addRow("Slide", self.layer_combo)
        form.addRow("Model", model_row)
        form.addRow("Device", self.device_combo)
        form.addRow("Min. tissue per tile", self.tissue_spin)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.start_button)
        layout.addWidget(self.follow_check)
        layout.addLayout(run_row)
        layout.addWidget(self.domain_banner)
        layout.addWidget(QLabel("Output"))
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.output_list, 1)
        flag_row = QHBoxLayout()
        flag_row.addWidget(QLabel("Flag genes with validation r below"))
        flag_row.addWidget(self.flag_spin)
        layout.addLayout(flag_row)
        layout.addWidget(self.display)
        layout.addWidget(self.measured)
        layout.addWidget(self.similarity)
        layout.addWidget(self.status)

        for name, folder in bundled_tile_models().items():
            self.model_combo.addItem(name, str(folder))
        self.browse_button.clicked.connect(self._browse)
        self.start_button.clicked.connect(self.load_model)
        self.follow_check.toggled.connect(self._follow_toggled)
        self.whole_button.clicked.connect(self.predict_whole_slide)
        self.cancel_button.clicked.connect(self.cancel)
        self.filter_edit.textChanged.connect(self._filter_outputs)
        self.output_list.currentRowChanged.connect(self._output_chosen)
        self.flag_spin.valueChanged.connect(self._reflag)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self.state.events.live.connect(self._live_changed)
        self._set_running(False)
        self._refresh_layers()

    def _domain_changed(self, verdict: Any) -> None:
        first_warning = self.domain_banner.verdict is None and verdict.verdict == "out-of-domain"
        self.domain_banner.show_verdict(verdict)
        if first_warning:
            from omicslens._napari.notify import Problem, notify

            # short: napari's toast cuts long lines; Details and the Predict tab say more
            notify(
                Problem(
                    "OmicsLens: out of the model's domain. Do not trust this map.",
                    f"{verdict.warning}\n\nMedian domain distance {verdict.median_distance:.2f}, "
                    f"90th percentile {verdict.p90_distance:.2f} (1 = the 95th percentile of "
                    "the model's training tiles). Show the domain_distance output to see "
                    "where.",
                ),
                severity="warning",
            )

    def _live_changed(self, live: Any) -> None:
        """The shared prediction changed; None when its slide layer was removed."""
        if live is None and self.live is not None:
            self.live = None
            self._set_running(False)
            self.status.setText("The slide layer was removed: its prediction was stopped.")

    # -- choices -------------------------------------------------------------------------
    def _refresh_layers(self, event: Any = None) -> None:
        fill_slide_layer_combo(self.layer_combo, self.viewer)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model bundle folder (with config.json)")
        if folder:
            self.add_model_folder(folder)

    def add_model_folder(self, folder: str | Path) -> None:
        folder = str(folder)
        index = self.model_combo.findData(folder)
        if index < 0:
            self.model_combo.addItem(Path(folder).name, folder)
            index = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(index)

    # -- loading -------------------------------------------------------------------------
    def load_model(self, trust_code: bool = False) -> None:
        """Prepare the chosen model for the chosen slide layer, off the main thread.
        ``trust_code`` only after the user said yes to :attr:`confirm_trust`."""
        layer = self._slide_layer()
        bundle_path = self.model_combo.currentData()
        if layer is None or not bundle_path:
            self.status.setText("Open a slide and choose a model bundle first.")
            return
        self.close_live()
        self.start_button.setEnabled(False)
        self.status.setText(f"Loading {Path(bundle_path).name}…")
        worker = thread_worker(_open_session, start_thread=False)(
            slide_of(layer),
            bundle_path,
            self.device_combo.currentText(),
            self.tissue_spin.value(),
            trust_code,
        )
        worker.returned.connect(lambda result: self._session_ready(layer, *result))
        worker.errored.connect(self._load_failed)
        self._worker = show_activity(worker, f"loading {Path(bundle_path).name}")
        worker.start()

    def _load_failed(self, error: BaseException) -> None:
        self.start_button.setEnabled(True)
        self.status.setText(f"Could not load the model: {error}")

    def _session_ready(self, layer: Any, session: InferenceSession | None, raster: Any) -> None:
        if session is None:
            from omicslens.models.torchscript_check import UntrustedCodeError

            if isinstance(raster, UntrustedCodeError) and self.confirm_trust(self, raster):
                self.load_model(trust_code=True)
                return
            self._load_failed(raster)
            return
        self.start_button.setEnabled(True)
        self.live = LiveInference(
            self.viewer,
            layer,
            session,
            raster,
            follow_view=False,
            colormap=self.display.colormap,
            opacity=self.display.opacity,
        )
        self.live.stats_changed.connect(self._show_stats)
        self.live.error.connect(lambda message: self.status.setText(f"Problem: {message}"))
        self.domain_banner.reset(session.bundle)
        self.live.domain_changed.connect(self._domain_changed)
        self.state.live = self.live
        self.state.output = self.live.output
        self.view_job = start_job(
            self.state, self.live.follow_view_progress(), "tiles in view", owner=self.live
        )
        self.live.set_follow_view(self.follow_check.isChecked())
        self._fill_outputs(session)
        if self.initial_display is not None:
            self.apply_display(self.initial_display)
        self._set_running(True)
        self.measured.session_changed()
        device = session.predictor.device
        tissue = int(session.tissue_tiles.sum())
        trusted = " Running code you chose to trust." if session.predictor.trust_code else ""
        self.status.setText(
            f"{session.bundle.name} on {device}: {tissue} tissue tiles of "
            f"{session.grid.tile_um:g} um; {session.store.done_count} already predicted." + trusted
        )

    def _fill_outputs(self, session: InferenceSession) -> None:
        """Genes (with validation r, flagged when low), then uncertainty and gene sets."""
        names = list(session.bundle.output_names)
        meta = session.bundle.output_meta
        self._grades = session.bundle.robustness_grades
        self._choices = []
        self.output_list.blockSignals(True)
        self.output_list.clear()
        for position in range(len(names)):
            kind = meta[position].get("kind", "gene")
            choice = single_output(names, position)
            if kind == "uncertainty":
                choice = OutputCombination(
                    "Uncertainty (ensemble SD)", choice.weights, 0.0, choice.used
                )
            elif kind == "domain":
                choice = OutputCombination(
                    "Domain distance (1 = edge of training data)", choice.weights, 0.0, choice.used
                )
            self._add_choice(choice, meta[position].get("pearson"), kind)
        for gene_set in available_gene_sets(names, meta):
            self._add_choice(gene_set, None, "set")
        self.output_list.setCurrentRow(0)
        self.output_list.blockSignals(False)
        self._reflag()
        if self.initial_output:
            self.select_output(self.initial_output)

    def select_output(self, name: str) -> bool:
        """Show the output called ``name`` (gene, class, gene set; any case). When the
        model has no such output, say so with the closest names and keep the current one."""
        from omicslens.core.output_names import UnknownOutputError, match_output, resolve_output

        labels = [choice.label for choice in self._choices]
        names = [
            choice.used[0] if len(choice.used) == 1 else choice.label for choice in self._choices
        ]
        found = match_output(name, labels) or match_output(name, names)
        if found is None:
            model = self.live.session.bundle.name if self.live else "this model"
            try:
                resolve_output(name, names, model)
            except UnknownOutputError as error:
                self.status.setText(f"{error}.")
            return False
        row = labels.index(found) if found in labels else names.index(found)
        self.output_list.setCurrentRow(row)
        self.output_list.scrollToItem(self.output_list.item(row))
        return True

    def _add_choice(self, choice: OutputCombination, pearson: Any, kind: str) -> None:
        item = QListWidgetItem()
        item.setData(Qt.UserRole, len(self._choices))
        item.setData(Qt.UserRole + 1, pearson if isinstance(pearson, (int, float)) else None)
        item.setData(Qt.UserRole + 2, kind)
        if kind == "set":
            item.setToolTip(
                f"Mean of standardised predictions of {', '.join(choice.used)}"
                + (
                    f"; not predicted by this model: {', '.join(choice.missing)}"
                    if choice.missing
                    else ""
                )
            )
        self._choices.append(choice)
        self.output_list.addItem(item)

    def _reflag(self, value: float = 0.0) -> None:
        threshold = self.flag_spin.value()
        for row in range(self.output_list.count()):
            item = self.output_list.item(row)
            choice = self._choices[int(item.data(Qt.UserRole))]
            pearson = item.data(Qt.UserRole + 1)
            kind = item.data(Qt.UserRole + 2)
            text = choice.label
            if kind == "set":
                text = f"Σ {text}"
            elif pearson is not None:
                low = pearson < threshold
                grade = self._grades.get(choice.used[0], "") if len(choice.used) == 1 else ""
                graded = f", robustness {grade}" if grade else ""
                text = f"{'⚠ ' if low else ''}{text}  (r = {pearson:.2f}{graded})"
                item.setToolTip(
                    f"Validation Pearson r = {pearson:.2f}"
                    + (f": below {threshold:.2f}, do not rely on this map" if low else "")
                    + (
                        f"\nRobustness grade {grade} (A best, D worst): how well this gene's "
                        "map survives stain, scanner colour, JPEG, blur and pixel-size changes "
                        "(robustness.json in the bundle; docs/expression.md)"
                        if grade
                        else ""
                    )
                )
            item.setText(text)

    def flagged_genes(self) -> list[str]:
        """Genes currently flagged as below the validation threshold."""
        return [
            self._choices[int(self.output_list.item(r).data(Qt.UserRole))].label
            for r in range(self.output_list.count())
            if self.output_list.item(r).text().startswith("⚠")
        ]

    def _filter_outputs(self, text: str) -> None:
        needle = text.strip().lower()
        shown = 0
        for row in range(self.output_list.count()):
            item = self.output_list.item(row)
            hidden = bool(needle) and needle not in item.text().lower()
            item.setHidden(hidden)
            shown += not hidden
        if needle and not shown and self.live is not None:
            from omicslens.core.output_names import UnknownOutputError, resolve_output

            try:
                resolve_output(
                    text.strip(), [c.label for c in self._choices], self.live.session.bundle.name
                )
            except UnknownOutputError as error:
                self.status.setText(f"{error}.")

    def _output_chosen(self, row: int) -> None:
        if self.live is None or row < 0:
            return
        choice = self._choices[int(self.output_list.item(row).data(Qt.UserRole))]
        store = self.live.session.store
        worker = thread_worker(store.combined_raster, start_thread=False)(
            choice.weights, choice.bias
        )
        live = self.live
        worker.returned.connect(lambda raster: self._show_choice(live, choice, raster))
        worker.start()
        self._worker = worker

    def _show_choice(self, live: LiveInference, choice: OutputCombination, raster: Any) -> None:
        if live is not self.live:
            return  # the model changed meanwhile
        live.set_output(choice, raster)
        self.state.output = choice
        self.measured.output_changed(choice)

    @property
    def current_choice(self) -> OutputCombination | None:
        return self.live.output if self.live is not None else None

    # -- running -------------------------------------------------------------------------
    def _follow_toggled(self, checked: bool) -> None:
        if self.live is not None:
            self.live.set_follow_view(checked)

    def predict_whole_slide(self) -> JobHandle | None:
        """Every tissue tile, behind the view, as a job with a progress bar."""
        from omicslens.app.tiles import track_tiles

        live = self.live
        if live is None:
            return None
        tiles = live.whole_slide_tiles()
        self.whole_slide_job = start_job(
            self.state,
            track_tiles(live.session, live.scheduler, tiles),
            "whole slide",
            on_done=self._whole_slide_done,
            on_error=lambda error: self.status.setText(f"Whole slide stopped: {error}"),
            owner=live,
        )
        self.status.setText(f"Whole slide: {len(tiles)} tissue tiles.")
        return self.whole_slide_job

    def _whole_slide_done(self, run: Any) -> None:
        self.status.setText(
            f"Whole slide: {run.predicted} tiles predicted, {run.cached} were cached"
            + (
                f", {len(run.failures)} failed ({run.failures[0].describe()})"
                if run.failures
                else ""
            )
            + "."
        )

    def cancel(self) -> None:
        for job in self.state.jobs():
            if job.owner is self.live and job.owner is not None and job is not self.view_job:
                job.cancel()
        if self.live is not None:
            self.live.cancel()
        self.status.setText("Cancelled.")

    def _show_stats(self, stats: Any) -> None:
        self.status.setText(
            f"{stats.done} tiles predicted · {stats.queued} queued · "
            f"{stats.tiles_per_second:.1f} tiles/s"
            + (f" · {stats.failed} failed" if stats.failed else "")
        )

    # -- display -------------------------------------------------------------------------
    def display_settings(self) -> ShownOutput | None:
        """The shown output and how it is displayed (what a saved session keeps)."""
        choice = self.current_choice
        if self.live is None or choice is None:
            return None
        display = self.display
        return ShownOutput(choice.label, display.fixed_limits, display.colormap, display.opacity)

    def apply_display(self, shown: ShownOutput) -> None:
        """Show ``shown``'s output with its colour map, opacity and limits (None = auto)."""
        self.select_output(shown.label)
        self.display.apply(shown.colormap, shown.opacity, shown.contrast_limits)

    def snapshot(self, path: str | Path, overwrite: bool = False) -> Path:
        """The canvas as PNG with the scale bar and the overlay's colour bar (atomic)."""
        return self.display.snapshot(path, overwrite)

    def _overlay(self) -> Any:
        return self.live.overlay if self.live is not None else None

    # -- helpers -------------------------------------------------------------------------
    def _slide_layer(self) -> Any:
        name = self.layer_combo.currentText()
        for layer in self.viewer.layers:  # LayerList has no .get()
            if layer.name == name:
                return layer
        return None

    def _set_running(self, running: bool) -> None:
        for widget in (self.whole_button, self.cancel_button, self.output_list, self.filter_edit):
            widget.setEnabled(running)

    def close_live(self) -> None:
        """Stop the running prediction (its overlay stays)."""
        if self.live is not None:
            if self.state.live is self.live:
                self.state.stop_live()
            else:
                self.live.close()
            self.live = None
        self._set_running(False)

    def closeEvent(self, event: Any) -> None:
        self.close_live()
        super().closeEvent(event)


def _validation_scores(session: InferenceSession) -> dict[int, float]:
    """Per-output validation Pearson from the bundle config, where it records one."""
    scores: dict[int, float] = {}
    for position, meta in enumerate(getattr(session.bundle.config, "outputs", None) or ()):
        value = meta.get("pearson") if isinstance(meta, dict) else getattr(meta, "pearson", None)
        if isinstance(value, (int, float)):
            scores[position] = float(value)
    return scores
