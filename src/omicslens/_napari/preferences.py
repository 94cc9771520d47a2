"""Make napari open whole-slide formats with OmicsLens, and show their scale.

Why: ``viewer.open("slide.ome.tif")`` without a plugin name picks napari's built-in
reader whenever more than one reader accepts the file and the user has stated no
preference. That reader loads the full-resolution plane into memory in pixels, not
micrometres, without the pyramid, and OmicsLens's docks cannot predict on it. napari's
own answer is its per-pattern reader preference (Preferences > Plugins > File extension
readers). OmicsLens fills it in for the whole-slide patterns below, **only where the
user has chosen nothing**: a choice the user made is never replaced. Plain ``*.tif`` and
images are left alone, because many of those are microscopy stacks that napari's reader
serves well.
"""

from __future__ import annotations

from typing import Any

PLUGIN = "omicslens"

#: the whole-slide patterns OmicsLens owns (each is a pyramid in micrometres)
OWNED_PATTERNS = ("*.svs", "*.ndpi", "*.btf", "*.ome.tif", "*.ome.tiff")


def prefer_omicslens_reader() -> list[str]:
    """Set OmicsLens as napari's reader for :data:`OWNED_PATTERNS` not yet assigned.

    Returns the patterns set now (empty when the preferences already say something for
    each). Never raises: a settings file napari cannot write leaves things as they were.
    """
    try:
        from napari.settings import get_settings

        plugins = get_settings().plugins
        current = dict(plugins.extension2reader)
        missing = [p for p in OWNED_PATTERNS if p not in current]
        if missing:
            plugins.extension2reader = {**current, **dict.fromkeys(missing, PLUGIN)}
        return missing
    except Exception:
        return []


def show_scale_bar(viewer: Any) -> None:
    """Turn the scale bar on (slide layers are scaled in um, so it reads in um)."""
    if viewer is None:
        return
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)
    bar = getattr(overlays, "scale_bar", None)  # napari >= 0.9
    if bar is None:
        bar = viewer.scale_bar  # older napari
    bar.visible = True  # its unit comes from the layers' units (um)
