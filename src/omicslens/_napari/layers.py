"""Turn a ``Slide`` into napari layer data, scaled in micrometres."""

from __future__ import annotations

from typing import Any

from omicslens._napari.dask_cache import bound_napari_dask_cache
from omicslens._napari.gl_context import keep_gl_context_on_layer_removal
from omicslens.core import Slide

#: Key under which a layer's metadata holds the OmicsLens slide summary.
META_KEY = "omicslens"


def slide_layer_data(slide: Slide, name: str | None = None) -> tuple[Any, dict[str, Any], str]:
    """A napari ``LayerDataTuple`` for ``slide``: multiscale image, scale in um/px.

    The layer's metadata keeps the open ``Slide`` (so widgets can read associated
    images and metadata without reopening) and a JSON-able summary.
    """
    bound_napari_dask_cache()
    keep_gl_context_on_layer_removal()  # removing this slide must not crash under Mesa
    levels = list(slide.levels)
    kwargs: dict[str, Any] = {
        "name": name or slide.path.name,
        "scale": (slide.mpp_y, slide.mpp_x),
        "units": ("um", "um"),
        "metadata": {META_KEY: {"slide": slide, "info": slide.info()}},
    }
    if slide.is_rgb:
        kwargs["rgb"] = True
        kwargs["contrast_limits"] = (0, 255)
    elif slide.channels == 1:
        levels = [level[..., 0] for level in levels]
    else:
        kwargs["channel_axis"] = 2
    if len(levels) > 1:
        kwargs["multiscale"] = True
        data: Any = levels
    else:
        kwargs["multiscale"] = False
        data = levels[0]
    return data, kwargs, "image"


def slide_of(layer: Any) -> Slide | None:
    """The ``Slide`` behind a layer opened by OmicsLens, else None."""
    entry = getattr(layer, "metadata", {}).get(META_KEY)
    if isinstance(entry, dict) and isinstance(entry.get("slide"), Slide):
        return entry["slide"]
    return None


def fill_slide_layer_combo(combo: Any, viewer: Any) -> None:
    """List the viewer's slide layers in a QComboBox, keeping the current choice if present."""
    current = combo.currentText()
    combo.clear()
    for layer in viewer.layers:
        if slide_of(layer) is not None:
            combo.addItem(layer.name)
    index = combo.findText(current)
    if index >= 0:
        combo.setCurrentIndex(index)
