"""The prediction heatmap: one napari image layer per (slide layer, model), one pixel per tile.

Dense predictions are drawn as an image whose pixels are the model's tiles (never as
tens of thousands of shapes). The layer lives in the same micrometre world as the slide:
its scale is the tile size in um, and it is translated by half a tile minus half a slide
pixel so tile (r, c) covers exactly the slide pixels it was cut from. Unknown tiles are
NaN, drawn transparent.

All methods run on the Qt main thread and touch only small arrays.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from qtpy.QtCore import QTimer

from omicslens._napari.legend import MapLegend, output_unit
from omicslens.core.genesets import OutputCombination, single_output
from omicslens.core.grid import TileGrid

META_KEY = "omicslens_prediction"
#: while tiles stream in, automatic contrast moves at most this often (the first batch at
#: once, the last one is never skipped): each move redraws the colour bar's ticks and key,
#: a shader rebuild of tens to hundreds of ms of the GUI thread under software GL. It moves
#: in the frame that draws new tiles, never in a frame of its own (see update_tiles).
STREAMING_CONTRAST_MS = 1000


def overlay_geometry(grid: TileGrid) -> tuple[tuple[float, float], tuple[float, float]]:
    """(scale, translate) in um, (y, x) order, aligning tile pixels with slide pixels."""
    scale = (grid.tile_h * grid.mpp_y, grid.tile_w * grid.mpp_x)
    translate = (scale[0] / 2 - grid.mpp_y / 2, scale[1] / 2 - grid.mpp_x / 2)
    return scale, translate


class PredictionOverlay:
    """Keeps a napari Image layer in step with a prediction store for one output."""

    def __init__(
        self,
        viewer: Any,
        grid: TileGrid,
        raster: np.ndarray,
        name: str,
        output_names: list[str],
        colormap: str = "inferno",
        opacity: float = 0.6,
        metadata: dict[str, Any] | None = None,
        output: OutputCombination | None = None,
        output_meta: Sequence[Mapping[str, Any]] | None = None,
        task: str | None = None,
    ) -> None:
        self.viewer = viewer
        self.grid = grid
        self.output_names = output_names
        self.output_meta = output_meta
        self.task = task
        shown = output if output is not None else single_output(output_names, 0)
        scale, translate = overlay_geometry(grid)
        self.layer = viewer.add_image(
            raster,
            name=name,
            scale=scale,
            translate=translate,
            units=("um", "um"),
            colormap=colormap,
            opacity=opacity,
            blending="translucent",
            interpolation2d="nearest",
            metadata={META_KEY: {"outputs": output_names, **(metadata or {})}},
        )
        self._auto_contrast = True
        #: colour bar, key, "<output> · <name>" layer name and hover text (see legend.py)
        self.legend = MapLegend(viewer, self.layer, name, shown.label, self._unit(shown))
        self._last_contrast = -math.inf  # time.monotonic() of the last automatic contrast
        # the last tiles' contrast, once on-screen updates pause (restarted by each one)
        self._settle = QTimer()
        self._settle.setSingleShot(True)
        self._settle.setInterval(STREAMING_CONTRAST_MS)
        self._settle.timeout.connect(self._settle_contrast)
        self.autoscale()

    def _unit(self, output: OutputCombination) -> str:
        return output_unit(output, self.output_names, self.output_meta, self.task)

    @property
    def raster(self) -> np.ndarray:
        return self.layer.data

    def set_output(self, raster: np.ndarray, output: OutputCombination | None = None) -> None:
        """Show another output (its full raster was computed off the GUI thread)."""
        self.layer.data = raster
        if self._auto_contrast:
            self.autoscale()
        else:  # limits the user fixed stay (the Predict tab shows them)
            self.layer.refresh()
        if output is not None:  # after the contrast, so the key shows the new range at once
            self.legend.show(output.label, self._unit(output))

    def update_tiles(self, indices: np.ndarray, values: np.ndarray, refresh: bool = True) -> None:
        """Write newly predicted tiles (values for the shown output) into the layer."""
        rows, cols = self.grid.row_col(indices)
        data = self.layer.data
        data[rows, cols] = values
        if not refresh:
            return  # contrast changes redraw too: both wait for the next on-screen update
        if self._auto_contrast:
            self._streaming_contrast()
        self.layer.refresh()

    def _streaming_contrast(self) -> None:
        """Rescale in this frame if the last rescale is a second old, else once tiles pause.

        Why: each frame costs 50-150 ms of the GUI thread under software GL. A throttle
        with its own timer rescaled (and so redrew) between the overlay's own redraws,
        about one extra frame a second while tiles streamed in.
        """
        if (time.monotonic() - self._last_contrast) * 1000 >= STREAMING_CONTRAST_MS:
            self._settle.stop()
            self.autoscale(refresh=False)  # drawn by the caller's refresh
        else:
            self._settle.start()

    def _settle_contrast(self) -> None:
        if self.layer not in self.viewer.layers:
            return  # the map was removed meanwhile
        if self._auto_contrast:  # a contrast fixed meanwhile stays
            self.autoscale()

    def redraw(self) -> None:
        """Draw tiles written with ``refresh=False`` (and rescale contrast if automatic)."""
        if self._auto_contrast:
            self.autoscale()
        else:
            self.layer.refresh()

    def autoscale(self, refresh: bool = True) -> None:
        """Contrast from the 1st-99th percentile of known tiles (robust to outliers)."""
        known = self.layer.data[np.isfinite(self.layer.data)]
        if known.size == 0:
            return
        low, high = np.percentile(known, [1, 99]).tolist()
        if high <= low:
            high = low + 1e-6
        self.layer.contrast_limits_range = (
            min(low, float(known.min())),
            max(high, float(known.max())),
        )
        self.layer.contrast_limits = (low, high)
        self._last_contrast = time.monotonic()
        self.legend.refresh_now()  # the key changes in the same frame as the colours
        if refresh:
            self.layer.refresh()

    def set_fixed_contrast(self, low: float, high: float) -> None:
        self._auto_contrast = False
        self.layer.contrast_limits_range = (min(low, high - 1e-6), max(high, low + 1e-6))
        self.layer.contrast_limits = (low, high)
        self.legend.refresh_now()

    def use_auto_contrast(self) -> None:
        self._auto_contrast = True
        self.autoscale()
