"""The white cells of a smear on the canvas: thin rings in their class colour, a key.

A reviewer judges a white cell by its cytoplasm and granules, so nothing may cover them:
each cell is a ring with a transparent face, about :data:`OUTLINE_SCREEN_PX` screen
pixels wide at every zoom (napari draws point borders in data units, so the width is
re-set when the camera zooms). The key (:class:`~omicslens._napari.legend.ClassLegend`)
names the classes in their colours; a cell a reviewer re-classed is drawn as a square
and labelled "corrected", and a line of the key says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from omicslens._napari.legend import ClassLegend

if TYPE_CHECKING:
    from omicslens.hemato.smear import SmearAnalysis

#: the ring's width on screen, whatever the zoom
OUTLINE_SCREEN_PX = 1.5
CELL_SYMBOL = "disc"
CORRECTED_SYMBOL = "square"
CORRECTED_TEXT = "corrected"
CORRECTED_KEY = "□ corrected by reviewer"


class SmearCells:
    """The cells layer of the current analysis, its key and the corrected-cells note."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.layer: Any = None
        self.legend: ClassLegend | None = None
        self.note: Any = None  # the "corrected by reviewer" key line
        self._note_key = f"omicslens_smear_corrected_{id(self)}"
        self.score_key: Any = None  # what the ring colours mean when they show a score
        self._score_key_name = f"omicslens_smear_score_{id(self)}"
        viewer.scene.camera.events.zoom.connect(self.fit_outline)
        viewer.layers.events.removed.connect(self._on_removed)

    def outline_width(self, scale: float) -> float:
        """Border width in data pixels that is :data:`OUTLINE_SCREEN_PX` on screen."""
        zoom = float(self.viewer.scene.camera.zoom) or 1.0
        return OUTLINE_SCREEN_PX / (zoom * abs(scale) or 1.0)

    def draw(self, analysis: SmearAnalysis, slide_layer: Any) -> Any:
        """(Re)draw every cell of ``analysis`` over ``slide_layer``; returns the layer."""
        from omicslens.hemato.typing import class_colour

        cells = analysis.cells
        labels = analysis.labels()
        corrected = [cell.id in analysis.corrections for cell in cells]
        data = np.array([[c.centre_y, c.centre_x] for c in cells]).reshape(-1, 2)
        colours = np.array([[*class_colour(label), 255] for label in labels]) / 255.0
        sizes = [2 * np.sqrt(c.cell_area_um2 / np.pi) / analysis.mpp for c in cells]
        self.remove()
        scale = tuple(slide_layer.scale[-2:])
        self.layer = self.viewer.add_points(
            data,
            name=f"white cells ({slide_layer.name})",
            scale=scale,
            units=("um", "um"),
            size=sizes or 10,
            symbol=[CORRECTED_SYMBOL if c else CELL_SYMBOL for c in corrected] or CELL_SYMBOL,
            face_color="transparent",
            border_color=colours if len(cells) else "yellow",
            # a thin ring of constant screen width: the cytoplasm stays visible
            border_width=self.outline_width(scale[-1]),
            border_width_is_relative=False,
            features={
                "class": labels,
                "id": [c.id for c in cells],
                "corrected": corrected,
                "mark": [CORRECTED_TEXT if c else "" for c in corrected],
            },
            text={
                "string": "{mark}",
                "color": "white",
                "size": 8,
                "anchor": "upper_left",
            },
        )
        if any(corrected):  # below the class lines: bottom-right tiles upwards
            from napari.components.overlays import TextOverlay

            self.note = TextOverlay(
                text=f"{CORRECTED_KEY} ({sum(corrected)})",
                color="white",
                position="bottom_right",
                box=True,
                font_size=10,
                visible=True,
            )
            self.viewer.canvas.overlays[self._note_key] = self.note
        self.legend = ClassLegend(self.viewer, self.layer, *class_key(analysis, labels))
        self.layer.events.visible.connect(self._layer_visible)
        return self.layer

    def fit_outline(self, event: Any = None) -> None:
        """Keep the rings :data:`OUTLINE_SCREEN_PX` wide after a zoom."""
        if self.layer is None or self.layer not in self.viewer.layers or not len(self.layer.data):
            return
        self.layer.border_width = self.outline_width(self.layer.scale[-1])

    def recolour(self, values: np.ndarray, name: str = "score") -> None:
        """Colour the rings by a per-cell score (viridis); the class key is hidden and a
        key naming the score and its colour range takes its place."""
        if self.layer is None:
            return
        if self.legend is not None:
            self.legend.set_shown(False)  # the colours no longer mean classes
        features = {k: self.layer.features[k] for k in ("class", "id", "corrected", "mark")}
        self.layer.features = {**features, "score": values}
        self.layer.border_color = "score"
        self.layer.border_colormap = "viridis"
        low, high = float(values.min()), float(values.max())
        self.layer.border_contrast_limits = (low, high if high > low else low + 1e-6)
        self.layer.refresh()
        self._show_score_key(f"Ring colour: {name}\nviridis, purple {low:.3g} to yellow {high:.3g}")

    def _show_score_key(self, text: str) -> None:
        from napari.components.overlays import TextOverlay

        self._drop_score_key()
        self.score_key = TextOverlay(
            text=text, color="white", position="bottom_right", box=True, font_size=10, visible=True
        )
        self.viewer.canvas.overlays[self._score_key_name] = self.score_key

    def _drop_score_key(self) -> None:
        if self.score_key is not None:
            self.score_key.visible = False  # hidden first: see ClassLegend.close
        self.viewer.canvas.overlays.pop(self._score_key_name, None)
        self.score_key = None

    def remove(self) -> None:
        # napari holds event callbacks weakly: the legend must stay referenced until the
        # layer's removal has reached it, or its entries would stay on the canvas
        legend = self.legend
        if self.layer is not None and self.layer in self.viewer.layers:
            self.viewer.layers.remove(self.layer)  # its legend goes with it
        if legend is not None:
            legend.close()  # and for sure: a stale key must never stay under a new one
        self._drop_note()
        self._drop_score_key()
        self.layer, self.legend = None, None

    def _drop_note(self) -> None:
        if self.note is not None:
            self.note.visible = False  # hidden first: see ClassLegend.close
        self.viewer.canvas.overlays.pop(self._note_key, None)
        self.note = None

    def _layer_visible(self, event: Any = None) -> None:
        if self.note is not None and self.layer is not None:
            self.note.visible = bool(self.layer.visible)

    def _on_removed(self, event: Any) -> None:
        if self.layer is not None and event.value is self.layer:
            self._drop_note()
            self.layer = None  # the legend (kept until the next draw) removes itself


def class_key(
    analysis: SmearAnalysis, labels: list[str]
) -> tuple[Mapping[str, tuple[int, int, int]], dict[str, int]]:
    """Class -> colour and class -> cells, in the model's class order."""
    from omicslens.hemato.typing import class_colour

    counts = Counter(labels)
    order = [*analysis.types.class_names, *sorted(counts)]
    present = [name for name in dict.fromkeys(order) if counts[name]]
    return {name: class_colour(name) for name in present}, dict(counts)
