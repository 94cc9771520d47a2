"""Dock widget: run a model on the tiles in view and show the result as a heatmap.

Everything slow (loading weights, tissue detection, opening the prediction cache, reading
a whole output raster) runs in napari ``thread_worker``s; the widget only wires results
into layers. See :mod:`omicslens._napari.live_inference` for the threading of inference,
:mod:`omicslens._napari.model_chooser` for the slide and model form,
:mod:`omicslens._napari.output_picker` for the output list and
:mod:`omicslens._napari.inference_status` for what the dock says about its work.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.qt.threading import thread_worker
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from omicslens._napari.display_controls import DisplayControls
from omicslens._napari.domain_banner import DomainBanner
from omicslens._napari.inference_status import (
    loaded_text,
    stats_text,
    warn_out_of_domain,
    whole_slide_text,
)
from omicslens._napari.jobs import JobHandle, show_activity, start_job
from omicslens._napari.layers import slide_of
from omicslens._napari.live_inference import LiveInference
from omicslens._napari.measured_panel import MeasuredPanel
from omicslens._napari.model_chooser import DEVICES, ModelChooser
from omicslens._napari.output_picker import DEFAULT_FLAG_BELOW, OutputPicker
from omicslens._napari.similarity_panel import SimilarityPanel
from omicslens._napari.state import viewer_state
from omicslens._napari.tooltips import set_tooltips
from omicslens._napari.trust_prompt import ask_to_trust
from omicslens.core.genesets import OutputCombination
from omicslens.core.session import ShownOutput

__all__ = ["DEFAULT_FLAG_BELOW", "DEVICES", "InferenceWidget"]

if TYPE_CHECKING:
    import napari

    from omicslens.models.session import InferenceSession


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

        #: slide layer, model bundle, device and minimum tissue (model_chooser.py)
        self.chooser = ModelChooser(napari_viewer)
        self.layer_combo = self.chooser.layer_combo
        self.model_combo = self.chooser.model_combo
        self.browse_button = self.chooser.browse_button
        self.device_combo = self.chooser.device_combo
        self.tissue_spin = self.chooser.tissue_spin
        self.start_button = QPushButton("Load model")
        self.follow_check = QCheckBox("Follow the view (predict what is on screen)")
        self.follow_check.setChecked(True)
        self.whole_button = QPushButton("Predict whole slide")
        self.cancel_button = QPushButton("Cancel")
        #: the output list: search, validation r and robustness flags (output_picker.py)
        self.outputs = OutputPicker(self._say, self._model_name)
        self.filter_edit = self.outputs.filter_edit
        self.output_list = self.outputs.output_list
        self.flag_spin = self.outputs.flag_spin
        self.measured = MeasuredPanel(self)
        self.similarity = SimilarityPanel(self)
        set_tooltips(
            (self.start_button, "Load the model and start predicting the tiles on screen"),
            (
                self.follow_check,
                "Predict the tiles you pan and zoom to, in the background, nearest first",
            ),
            (self.whole_button, "Predict every tissue tile of the slide in the background"),
            (self.cancel_button, "Stop predicting; tiles already predicted are kept"),
        )
        self.status = QLabel("No model loaded")
        self.status.setWordWrap(True)
        #: colour map, opacity, colour limits and snapshot of the shown map
        self.display = DisplayControls(self.viewer, self._overlay, self.status.setText)
        self.domain_banner = DomainBanner()

        run_row = QHBoxLayout()
        run_row.addWidget(self.whole_button)
        run_row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(self.chooser.form())
        layout.addWidget(self.start_button)
        layout.addWidget(self.follow_check)
        layout.addLayout(run_row)
        layout.addWidget(self.domain_banner)
        self.outputs.add_to(layout)
        layout.addWidget(self.display)
        layout.addWidget(self.measured)
        layout.addWidget(self.similarity)
        layout.addWidget(self.status)

        self.browse_button.clicked.connect(lambda: self.chooser.browse(self))
        self.start_button.clicked.connect(self.load_model)
        self.follow_check.toggled.connect(self._follow_toggled)
        self.whole_button.clicked.connect(self.predict_whole_slide)
        self.cancel_button.clicked.connect(self.cancel)
        self.output_list.currentRowChanged.connect(self._output_chosen)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self.state.events.live.connect(self._live_changed)
        self._set_running(False)
        self._refresh_layers()

    def _domain_changed(self, verdict: Any) -> None:
        first_warning = self.domain_banner.verdict is None and verdict.verdict == "out-of-domain"
        self.domain_banner.show_verdict(verdict)
        if first_warning:
            warn_out_of_domain(verdict)

    def _live_changed(self, live: Any) -> None:
        """The shared prediction changed; None when its slide layer was removed."""
        if live is None and self.live is not None:
            self.live = None
            self._set_running(False)
            self.status.setText("The slide layer was removed: its prediction was stopped.")

    # -- choices -------------------------------------------------------------------------
    def _refresh_layers(self, event: Any = None) -> None:
        self.chooser.refresh_layers()

    def add_model_folder(self, folder: str | Path) -> None:
        """Choose the model bundle in ``folder`` (``view --model``, a reopened session)."""
        self.chooser.add_model_folder(folder)

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
        self.outputs.fill(session)
        if self.initial_output:
            self.select_output(self.initial_output)
        if self.initial_display is not None:
            self.apply_display(self.initial_display)
        self._set_running(True)
        self.measured.session_changed()
        self.status.setText(loaded_text(session))

    def _say(self, text: str) -> None:
        self.status.setText(text)

    def _model_name(self) -> str | None:
        return self.live.session.bundle.name if self.live is not None else None

    @property
    def _choices(self) -> list[OutputCombination]:
        """The outputs in the list, in list order (the picker's)."""
        return self.outputs.choices

    def select_output(self, name: str) -> bool:
        """Show the output called ``name`` (gene, class, gene set; any case). When the
        model has no such output, say so with the closest names and keep the current one."""
        return self.outputs.select(name)

    def flagged_genes(self) -> list[str]:
        """Genes currently flagged as below the validation threshold."""
        return self.outputs.flagged_genes()

    def _output_chosen(self, row: int) -> None:
        if self.live is None or row < 0:
            return
        choice = self.outputs.choice_at(row)
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
        self.status.setText(whole_slide_text(run))

    def cancel(self) -> None:
        for job in self.state.jobs():
            if job.owner is self.live and job.owner is not None and job is not self.view_job:
                job.cancel()
        if self.live is not None:
            self.live.cancel()
        self.status.setText("Cancelled.")

    def _show_stats(self, stats: Any) -> None:
        self.status.setText(stats_text(stats))

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
        return self.chooser.slide_layer()

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
