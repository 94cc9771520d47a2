"""Start the napari viewer with a slide, the plugin's docks and optionally a model.

What ``omicslens view`` runs; kept in the napari glue so the command line stays free of
GUI code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omicslens.core import OmicsLensError

EXIT_INPUT_ERROR = 1


def launch(
    path: Path | None,
    mpp: float | None = None,
    model: str | None = None,
    output: str | None = None,
    screenshot: Path | None = None,
) -> int:
    """Open the viewer; with ``screenshot``, save the window once drawn and close."""
    import napari

    from omicslens._napari.layers import slide_layer_data
    from omicslens._napari.panel import OmicsLensPanel
    from omicslens._napari.preferences import show_scale_bar
    from omicslens._napari.reader import open_for_viewer

    if model:
        # an unknown model, or a misspelt or absent output, is an error before any window
        try:
            folder = _model_folder(model)
            if output:
                output = _checked_output(folder, output)
        except (OmicsLensError, FileNotFoundError) as error:
            print(f"omicslens: error: {error}", file=sys.stderr)
            return EXIT_INPUT_ERROR
    if screenshot:
        _quiet_backend_notice()
    viewer = napari.Viewer(title="OmicsLens")
    # docked directly, not through the plugin menu: asking napari's plugin manager for
    # the widget registers the plugin's commands again in a process that already made
    # viewers (app_model: "Command 'omicslens.get_reader' already registered")
    panel = OmicsLensPanel(viewer)
    viewer.window.add_dock_widget(panel, name="OmicsLens", area="right")
    if path is not None and is_session_file(Path(path)):
        return _launch_session(viewer, panel, Path(path), screenshot)
    if path is not None:
        try:
            slide = open_for_viewer(Path(path), mpp=mpp)
        except OmicsLensError as error:
            viewer.close()
            print(f"omicslens: error: {error}", file=sys.stderr)
            return EXIT_INPUT_ERROR
        data, kwargs, _ = slide_layer_data(slide)
        viewer.add_image(data, **kwargs)
        show_scale_bar(viewer)
        viewer.reset_view()
    if model:
        code = _start_prediction(panel, model, output)
        if code:
            viewer.close()
            return code
    if screenshot:
        return _screenshot_and_exit(viewer, screenshot, wait_for_predictions=bool(model))
    napari.run()
    return 0


def is_session_file(path: Path) -> bool:
    from omicslens.core.session import SESSION_SUFFIX

    return path.name.endswith(SESSION_SUFFIX)


def _launch_session(viewer: Any, panel: Any, path: Path, screenshot: Path | None) -> int:
    """``omicslens view SESSION``: the review as it was saved."""
    import napari

    from omicslens._napari.review_session import restore

    try:
        session = restore(panel, path)
    except OmicsLensError as error:
        viewer.close()
        print(f"omicslens: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    if screenshot:
        return _screenshot_and_exit(viewer, screenshot, wait_for_predictions=bool(session.model))
    napari.run()
    return 0


def _quiet_backend_notice() -> None:
    """Keep napari's one-off PyQt5 deprecation toast out of documentation screenshots."""
    try:
        from napari._qt import qt_main_window
    except ImportError:  # pragma: no cover - napari internals moved
        return
    qt_main_window.SHOW_QT_WARNING = False  # type: ignore[attr-defined]


def _start_prediction(panel: Any, model: str, output: str | None) -> int:
    """Show the Predict tab, load ``model`` for the slide, follow the view."""
    try:
        folder = _model_folder(model)
    except FileNotFoundError as error:
        print(f"omicslens: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    panel.show_tab("Predict")
    widget = panel.predict
    widget.add_model_folder(folder)
    if output:
        widget.initial_output = output
    widget.load_model()
    return 0


def _model_folder(model: str) -> Path:
    """A bundled model's folder by name, else the path given (FileNotFoundError)."""
    from omicslens.core.samples import bundled_tile_models

    bundled = bundled_tile_models()
    folder = Path(bundled.get(model, Path(model)))
    if not folder.exists():
        known = ", ".join(bundled) or "none"
        raise FileNotFoundError(f"no model {model!r} (bundled: {known})")
    return folder


def _checked_output(folder: Path, output: str) -> str:
    """The output's name as the model spells it (genes, classes, gene sets it can score);
    an :class:`~omicslens.core.output_names.UnknownOutputError` listing close names."""
    from omicslens.core.genesets import available_gene_sets
    from omicslens.core.output_names import resolve_output
    from omicslens.models.bundle import load_bundle

    bundle = load_bundle(folder)
    names = list(bundle.output_names)
    labels = [s.label for s in available_gene_sets(names, bundle.output_meta)]
    return resolve_output(output, names + labels, bundle.name)


def _screenshot_and_exit(viewer: Any, target: Path, wait_for_predictions: bool = False) -> int:
    """Let napari draw every visible tile (and predictions), save the window, and close."""
    import time

    from qtpy.QtWidgets import QApplication

    viewer.window._qt_window.resize(1400, 900)
    deadline = time.monotonic() + 8.0
    while time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)
    if wait_for_predictions:
        deadline = time.monotonic() + 600.0
        while time.monotonic() < deadline and not _predictions_settled(viewer):
            QApplication.processEvents()
            time.sleep(0.05)
        for _ in range(40):
            QApplication.processEvents()
            time.sleep(0.05)
    target.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(target), canvas_only=False)
    viewer.close()
    print(f"screenshot saved to {target}")
    return 0


def _predictions_settled(viewer: Any) -> bool:
    for widget in viewer.window.dock_widgets.values():
        live = getattr(widget, "live", None)
        if live is not None:
            # the view has been planned and every tile it asked for is known (predicted
            # now, or found in the cache: a warm cache predicts nothing)
            planned = live.scheduler.request_id > 0
            tiles = live.view_tiles
            known = bool(live.session.store.is_done(tiles).all()) if len(tiles) else True
            return bool(planned and live.scheduler.idle and known)
    return False
