"""napari reader contribution: whole-slide images as multiscale layers in micrometres.

Returns None for paths that are not slides we read, so napari can try other plugins.
When a slide states no resolution, the user is asked once (``ask_resolution``) and the
answer is remembered for that file's content; cancelling leaves the file unopened with
a clear message. Nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omicslens._napari.layers import slide_layer_data
from omicslens.core import MissingResolutionError, Slide, open_slide, sniff_format
from omicslens.core.exports.zarr_raster import is_prediction_zarr, read_prediction_zarr
from omicslens.core.settings import remember_mpp, remembered_mpp


def _ask_with_dialog(path: Path, problem: str) -> float | None:
    from omicslens._napari.resolution_dialog import ask_resolution_dialog

    return ask_resolution_dialog(path, problem)


#: How the reader asks for a missing resolution: (path, problem) -> mpp or None.
#: Tests replace it; the default shows a Qt dialog.
ask_resolution: Callable[[Path, str], float | None] = _ask_with_dialog


def napari_get_reader(path: str | list[str]) -> Callable[..., list[Any]] | None:
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if paths and all(is_prediction_zarr(p) for p in paths):
        return read_predictions
    if not paths or any(sniff_format(p) is None for p in paths):
        return None
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
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    return [slide_layer_data(open_for_viewer(Path(p))) for p in paths]


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
