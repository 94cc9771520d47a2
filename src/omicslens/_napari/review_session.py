"""Save the review in the OmicsLens panel as one small file, and reopen it as it was.

What is kept (:class:`~omicslens.core.session.ReviewSession`): the slide (path and
content fingerprint) and its resolution, the model, the shown output with its colour
map, opacity and limits, the regions, the reviewer's cell corrections, and the camera.
Predictions are not stored: they come back from the prediction cache, or are predicted
again for the view. Reopening refuses a slide whose content changed since (regions and
corrections would land on the wrong tissue); the error names the file.

Why the order of restoring matters: the slide first (everything is in its coordinates),
then the regions (replacing what the autosave restored; the autosave's own content is
kept as its backup), then the model, whose output and colours are applied once it has
loaded, and the camera last, after the panel's first fit of the view.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from omicslens._napari.layers import slide_layer_data, slide_of
from omicslens._napari.region_edits import ShapeRecord, replace_shapes
from omicslens.core.fingerprint import slide_fingerprint
from omicslens.core.session import (
    Camera,
    CellCorrection,
    ReviewSession,
    load_session,
    locate_slide,
    save_session,
)

if TYPE_CHECKING:
    from omicslens._napari.panel import OmicsLensPanel


def _slide_layer(panel: OmicsLensPanel) -> Any:
    live = panel.predict.live
    if live is not None:
        return live.slide_layer
    return next((layer for layer in panel.viewer.layers if slide_of(layer) is not None), None)


def capture(panel: OmicsLensPanel) -> ReviewSession:
    """The panel's review as a session (ValueError when no slide is open). The slide's
    fingerprint is left empty: reading the slide is for :func:`write` (off the GUI)."""
    layer = _slide_layer(panel)
    slide = slide_of(layer) if layer is not None else None
    if slide is None:
        raise ValueError("open a slide first: a session is saved for a slide")
    live = panel.predict.live
    model = str(live.session.bundle.path) if live is not None else None
    analysis = panel.smear.analysis
    corrections = []
    if analysis is not None:
        by_id = {cell.id: cell for cell in analysis.cells}
        corrections = [
            CellCorrection(int(i), float(by_id[i].centre_x), float(by_id[i].centre_y), label)
            for i, label in sorted(analysis.corrections.items())
            if i in by_id
        ]
    camera = panel.viewer.scene.camera
    return ReviewSession(
        slide_path=str(Path(slide.path).resolve()),
        slide_fingerprint="",
        mpp=float(slide.mpp_x),
        model=model,
        output=panel.predict.display_settings(),
        regions=panel.regions.regions(),
        corrections=corrections,
        camera=Camera(tuple(float(c) for c in camera.center), float(camera.zoom)),
    )


def write(session: ReviewSession, path: str | Path, overwrite: bool = False) -> Path:
    """Fingerprint the slide and write the session (I/O: run it off the GUI thread)."""
    session.slide_fingerprint = slide_fingerprint(session.slide_path)
    return save_session(session, path, overwrite=overwrite)


def save(panel: OmicsLensPanel, path: str | Path, overwrite: bool = False) -> Path:
    return write(capture(panel), path, overwrite=overwrite)


def prepare(path: str | Path) -> tuple[ReviewSession, Any]:
    """Read the session, find and check its slide, open it (I/O: off the GUI thread).

    Raises :class:`~omicslens.core.session.SessionFileError` (or its
    ``SessionSlideError``) naming the file; nothing is added to the viewer then.
    """
    from omicslens.core import open_slide

    session = load_session(path)
    slide_path = locate_slide(session, Path(path))
    # the session's resolution is the one the review used (typed, or the file's own)
    return session, open_slide(slide_path, mpp=session.mpp)


def restore(panel: OmicsLensPanel, path: str | Path) -> ReviewSession:
    """:func:`prepare` and :func:`apply` in one go (before the event loop runs)."""
    session, slide = prepare(path)
    apply(panel, session, slide, Path(path))
    return session


def apply(panel: OmicsLensPanel, session: ReviewSession, slide: Any, path: Path) -> None:
    """Show the prepared slide and bring back the review (GUI thread)."""
    viewer = panel.viewer
    data, kwargs, _ = slide_layer_data(slide)
    layer = viewer.add_image(data, **kwargs)
    viewer.reset_view()
    if session.regions:
        shapes = panel.regions.new_layer()
        if shapes is not None:
            records = tuple(
                ShapeRecord(
                    r.name,
                    r.shape_type,
                    tuple(map(tuple, r.vertices[:, ::-1].round(3).tolist())),
                    r.id,
                )
                for r in session.regions
            )
            replace_shapes(shapes, records)
            panel.regions.refresh()
    panel.smear.pending_corrections = list(session.corrections)
    if session.model:
        panel.predict.add_model_folder(session.model)
        if session.output is not None:
            panel.predict.initial_output = session.output.label
            panel.predict.initial_display = session.output
        panel.predict.layer_combo.setCurrentText(layer.name)
        panel.show_tab("Predict")
        panel.predict.load_model()
    if session.camera is not None:
        panel.keep_camera = True  # the panel's first fit must not undo it
        viewer.scene.camera.center = session.camera.center
        viewer.scene.camera.zoom = session.camera.zoom
    panel.session_path = Path(path)
