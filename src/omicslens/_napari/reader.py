"""napari reader contribution: whole-slide images as multiscale layers in micrometres.

Returns None for paths that are not slides we read, so napari can try other plugins,
except for the whole-slide extensions only OmicsLens reads (``.svs``, ``.ndpi``,
``.btf``): a file named so that is not a slide gets our message ("not a TIFF file"),
not napari's generic "no plugin found".
When a slide states no resolution, the user is asked once (``ask_resolution``) and the
answer is remembered for that file's content; cancelling leaves the file unopened with
a clear message. Nothing is guessed.

A slide that cannot be opened is reported as one short notification naming the file
and the problem (our typed :class:`~omicslens.core.OmicsLensError` message), not as
napari's "Tried to read with plugin ..." toast with a traceback: the reader returns
napari's "empty file" sentinel, so no layer is added and the viewer stays as it was.
Opening a slide also turns on the scale bar, and makes OmicsLens napari's preferred
reader for the whole-slide patterns (:mod:`omicslens._napari.preferences`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omicslens._napari.layers import slide_layer_data
from omicslens._napari.preferences import prefer_omicslens_reader, show_scale_bar
from omicslens.core import MissingResolutionError, OmicsLensError, Slide, open_slide, sniff_format
from omicslens.core.exports.zarr_raster import is_prediction_zarr, read_prediction_zarr
from omicslens.core.settings import remember_mpp, remembered_mpp


def _ask_with_dialog(path: Path, problem: str) -> float | None:
    from omicslens._napari.resolution_dialog import ask_resolution_dialog
    from omicslens.hemato.resolution_hint import red_cell_estimate_for

    # offered for smears (the CLI estimates from red cells too); labelled "smear only"
    return ask_resolution_dialog(path, problem, estimate=red_cell_estimate_for(path))


#: extensions no other napari reader opens: a broken file named so gets our message
ONLY_OURS = frozenset({".svs", ".ndpi", ".btf"})

#: How the reader asks for a missing resolution: (path, problem) -> mpp or None.
#: Tests replace it; the default shows a Qt dialog.
ask_resolution: Callable[[Path, str], float | None] = _ask_with_dialog


def napari_get_reader(path: str | list[str]) -> Callable[..., list[Any]] | None:
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if paths and all(is_prediction_zarr(p) for p in paths):
        return read_predictions
    if not paths:
        return None
    if any(sniff_format(p) is None for p in paths):
        claimed = all(Path(p).suffix.lower() in ONLY_OURS for p in paths)
        return read_slides if claimed else None
    return read_slides


def read_predictions(path: str | list[str]) -> list[Any]:
    """Exported prediction rasters (``omicslens predict --format zarr``) as overlay layers:
    one image layer per output, in micrometres, aligned with the slide they came from."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers: list[Any] = []
    for item in paths:
        levels, meta = read_prediction_zarr(item)
        data = [level for level in levels] if len(levels) > 1 else levels[0]
        layers.append(
            (
                data,
                {
                    "channel_axis": 0,
                    "name": [f"{name} ({Path(item).parent.name})" for name in meta["outputs"]],
                    "scale": meta["scale"],
                    "translate": meta["translate"],
                    "units": ("um", "um"),
                    "colormap": "inferno",
                    "opacity": 0.6,
                    "blending": "translucent",
                    "visible": [i == 0 for i in range(len(meta["outputs"]))],
                    "multiscale": len(levels) > 1,
                },
                "image",
            )
        )
    return layers


def read_slides(path: str | list[str]) -> list[Any]:
    """Layer data of each slide; a slide that cannot be opened is a notification."""
    import napari

    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers = []
    for item in paths:
        try:
            layers.append(slide_layer_data(open_for_viewer(Path(item))))
        except OmicsLensError as error:
            report_unopened(Path(item), error)
    if not layers:
        return [(None,)]  # napari's "empty file": nothing added, no second error toast
    prefer_omicslens_reader()
    show_scale_bar(napari.current_viewer())
    return layers


def report_unopened(path: Path, error: OmicsLensError) -> None:
    """One short notification naming the file and the problem; the rest under Details."""
    from omicslens._napari.notify import notify, problem_from_error

    notify(problem_from_error("could not open", error, path))


def open_for_viewer(path: Path, mpp: float | None = None) -> Slide:
    """Open ``path``; on a missing resolution use the remembered answer or ask once."""
    try:
        return open_slide(path, mpp=mpp)
    except MissingResolutionError as error:
        remembered = remembered_mpp(path)
        if remembered is not None:
            return open_slide(path, mpp=remembered)
        answer = ask_resolution(path, str(error))
        if answer is None:
            raise
        slide = open_slide(path, mpp=answer)
        remember_mpp(path, answer)
        return slide
