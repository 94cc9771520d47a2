"""Keys on the canvas, so every prediction map can be read on its own.

A heat map without a key is a picture, not a measurement: a screenshot of the canvas must
say what is shown, in which unit, and what the colours span. :class:`MapLegend` gives one
prediction layer

- napari's own colour bar (its ticks are the current contrast limits), with a text key
  above it in the canvas's top-left corner: the output, its unit and the colour range;
- a layer name that says which output is shown ("ERBB2 · model (slide)");
- a status-bar hover that reads "ERBB2: 2.01 log1p relative expression" rather than
  "[3000, 2500]: 2.01".

napari 0.9 has no hook for a layer's status text, and its status bar is refreshed from a
worker thread that calls ``layer.get_status``, so anything written to ``viewer.status``
from a mouse callback is overwritten a moment later. The legend therefore replaces
``get_status`` on this one layer instance (not the class): the replacement only indexes
the in-memory raster, which is safe from that thread and does no I/O.

Under software GL each new tick or key text costs a shader rebuild on the GUI thread, so
while tiles stream in the automatic contrast and the key move at most once a second, in
the frame that draws the new tiles (``PredictionOverlay``); other contrast changes (the
user dragging the slider) rewrite the key at most once a second (:class:`Throttle`; the
last change is never dropped).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from omicslens._napari.throttle import Throttle
from omicslens.core.domain import DOMAIN_OUTPUT
from omicslens.core.genesets import OutputCombination

EXPRESSION_UNIT = "log1p relative expression"
UNCERTAINTY_UNIT = "ensemble SD"
DOMAIN_UNIT = "domain distance (1 = 95th pct of reference)"
PROBABILITY_UNIT = "probability"
GENE_SET_UNIT = "mean z-score"  # a gene-set score averages genes standardised on training
FEATURE_UNIT = "feature value"
UNCERTAINTY_OUTPUT = "ensemble_sd"
SEPARATOR = " · "
KEY_THROTTLE_MS = 1000
LEGEND_PREFIX = "omicslens_legend_"
#: where the keys of maps shown together go, in order; bottom right holds the scale bar
#: and the cell class key
MAP_CORNERS = ("top_left", "bottom_left", "top_right")


def free_corner(viewer: Any) -> str:
    """The first corner no other map's key holds, so that two maps shown together keep
    each key beside its own colour bar (napari stacks the overlays of one corner as
    "texts first, then bars", which would pair them wrongly). A fourth map shares the
    first corner."""
    taken = {
        str(overlay.position)
        for key, overlay in viewer.canvas.overlays.items()
        if key.startswith(LEGEND_PREFIX) and overlay.visible
    }
    return next((corner for corner in MAP_CORNERS if corner not in taken), MAP_CORNERS[0])


def output_unit(
    output: OutputCombination,
    output_names: Sequence[str],
    output_meta: Sequence[Mapping[str, Any]] | None = None,
    task: str | None = None,
) -> str:
    """The unit of what ``output`` shows, from the bundle's output kinds and task."""
    weights = np.asarray(output.weights)
    single = len(output.used) == 1 and output.bias == 0 and np.count_nonzero(weights) == 1
    if not single:
        return GENE_SET_UNIT
    name = output.used[0]
    position = int(np.flatnonzero(weights)[0])
    meta = output_meta[position] if output_meta and position < len(output_meta) else {}
    kind = meta.get("kind")
    if kind == "domain" or name == DOMAIN_OUTPUT:
        return DOMAIN_UNIT
    if kind == "uncertainty" or name == UNCERTAINTY_OUTPUT:
        return UNCERTAINTY_UNIT
    if task == "classification":
        return PROBABILITY_UNIT
    if task == "embedding":
        return FEATURE_UNIT
    return EXPRESSION_UNIT


def format_value(value: float) -> str:
    return f"{value:.3g}"


class MapLegend:
    """Colour bar, text key, layer name and hover text of one prediction layer."""

    def __init__(self, viewer: Any, layer: Any, base_name: str, label: str, unit: str) -> None:
        from napari.components.overlays import TextOverlay

        self.viewer = viewer
        self.layer = layer
        self.base_name = base_name
        self.label = label
        self.unit = unit
        self.key = f"{LEGEND_PREFIX}{id(layer)}"
        self.corner = free_corner(viewer)
        colorbar = layer.colorbar
        colorbar.box = True  # a dark box keeps ticks legible over pink tissue
        colorbar.position = self.corner
        colorbar.visible = True
        # napari tiles a corner vertically, viewer overlays first: the key sits just
        # above the layer's colour bar (and no tiling setting is changed)
        self.text = TextOverlay(position=self.corner, box=True, font_size=10, visible=True)
        viewer.canvas.overlays[self.key] = self.text
        # each new key text rebuilds a shader (tens of ms under software GL): while tiles
        # stream in and the automatic contrast moves, rewrite it at most once a second
        self._throttle = Throttle(self._refresh, KEY_THROTTLE_MS)
        layer.events.contrast_limits.connect(self._contrast_changed)
        layer.events.visible.connect(self._on_visible)
        viewer.layers.events.removed.connect(self._on_removed)
        self._napari_status = layer.get_status
        layer.get_status = self.get_status
        self.show(label, unit)

    @property
    def layer_name(self) -> str:
        return f"{self.label}{SEPARATOR}{self.base_name}"

    def show(self, label: str, unit: str) -> None:
        """Another output is shown: rename the layer and rewrite the key."""
        self.label, self.unit = label, unit
        self.layer.name = self.layer_name
        self._refresh()

    def key_text(self) -> str:
        low, high = self.layer.contrast_limits
        # short lines: a narrow canvas must not clip the key
        return f"{self.label}\n{self.unit}\ncolours {format_value(low)} to {format_value(high)}"

    def _refresh(self, event: Any = None) -> None:
        self.text.text = self.key_text()

    def refresh_now(self) -> None:
        """Rewrite the key now, dropping a rewrite the throttle still owes (the contrast
        was just set in two steps, range then limits: one rewrite, in this frame)."""
        self._throttle.run_now()

    def _contrast_changed(self, event: Any = None) -> None:
        self._throttle()  # napari redraws the colour bar's ticks itself, at once

    def _on_visible(self, event: Any = None) -> None:
        self.text.visible = bool(self.layer.visible)

    def _on_removed(self, event: Any) -> None:
        if event.value is not self.layer:
            return
        self.viewer.layers.events.removed.disconnect(self._on_removed)
        self._throttle.stop()
        self.text.visible = False  # hidden first: see ClassLegend.close
        self.viewer.canvas.overlays.pop(self.key, None)

    def hover_text(self, value: Any) -> str:
        if value is None or not np.isfinite(value):
            return f"{self.label}: not predicted here"
        return f"{self.label}: {format_value(float(value))} {self.unit}"

    def get_status(self, position: Any = None, **kwargs: Any) -> dict[str, str]:
        """napari's status for this layer, its coordinates replaced by the hover text.

        Runs on napari's status thread: it reads only the in-memory raster.
        """
        status: dict[str, str] = self._napari_status(position, **kwargs)
        if position is None:
            return status
        value = self.layer.get_value(
            position,
            view_direction=kwargs.get("view_direction"),
            dims_displayed=kwargs.get("dims_displayed"),
            world=kwargs.get("world", False),
        )
        if value is None:  # off the raster: napari's own text
            return status
        text = self.hover_text(value)
        status["coordinates"] = text
        status["value"] = text.partition(": ")[2]
        return status


class ClassLegend:
    """Key for cells coloured by class: one line per class ("● Neutrophil (12)") written
    in that class's colour, stacked in the canvas's bottom-right corner.

    napari's text overlay has one colour, so each class gets its own; the entries live
    as long as the cells layer and follow its visibility.
    """

    def __init__(
        self,
        viewer: Any,
        layer: Any,
        colours: Mapping[str, tuple[int, int, int]],
        counts: Mapping[str, int],
    ) -> None:
        from napari.components.overlays import TextOverlay

        self.viewer = viewer
        self.layer = layer
        self._shown = True
        self.entries: dict[str, Any] = {}
        self._keys: list[str] = []
        # bottom-right tiles upwards in insertion order: add the last class first
        for position, name in reversed(list(enumerate(colours))):
            rgb = colours[name]
            overlay = TextOverlay(
                text=f"● {name} ({counts.get(name, 0)})",
                color=tuple(c / 255 for c in rgb[:3]),
                position="bottom_right",
                box=True,
                font_size=10,
                visible=bool(layer.visible),
            )
            key = f"omicslens_class_{id(layer)}_{position}"
            viewer.canvas.overlays[key] = overlay
            self.entries[name] = overlay
            self._keys.append(key)
        layer.events.visible.connect(self._update_visible)
        viewer.layers.events.removed.connect(self._on_removed)

    @property
    def lines(self) -> list[str]:
        """The entries' text, top to bottom as drawn."""
        return [overlay.text for overlay in reversed(self.entries.values())]

    def set_shown(self, shown: bool) -> None:
        """Hide the key while the cells are coloured by something else than their class."""
        self._shown = shown
        self._update_visible()

    def _update_visible(self, event: Any = None) -> None:
        for overlay in self.entries.values():
            overlay.visible = self._shown and bool(self.layer.visible)

    def _on_removed(self, event: Any) -> None:
        if event.value is self.layer:
            self.close()

    def close(self) -> None:
        """Take the entries off the canvas (also done when the cells layer goes)."""
        with contextlib.suppress(TypeError, ValueError, RuntimeError):  # disconnected already
            self.viewer.layers.events.removed.disconnect(self._on_removed)
        for overlay in self.entries.values():
            # napari 0.9 can keep drawing a text overlay's visual after its removal from
            # canvas.overlays (seen: the previous key stacked under the new one), so it
            # is hidden first
            overlay.visible = False
        for key in self._keys:
            self.viewer.canvas.overlays.pop(key, None)
        self._keys = []
