"""Similarity search in the Predict dock: click a tile, see where else it looks alike.

"Pick a tile" arms a one-shot mouse callback; the clicked tile's predicted profile is
compared with every predicted tile (``core.similarity``, in a worker thread); the result
is drawn as its own heatmap layer aligned with the slide, and the most similar places
are listed (click one to go there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari.qt.threading import thread_worker
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QGroupBox, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout

from omicslens._napari.overlay import overlay_geometry
from omicslens.core.similarity import SimilarityResult, similarity_to

if TYPE_CHECKING:
    from omicslens._napari.inference_widget import InferenceWidget


class SimilarityPanel(QGroupBox):
    def __init__(self, owner: InferenceWidget) -> None:
        super().__init__("Similar tiles (predicted profile)")
        self.owner = owner
        self.layer: Any = None
        self.result: SimilarityResult | None = None
        self._worker: Any = None
        self.pick_button = QPushButton("Pick a tile, then click it on the slide")
        self.pick_button.setToolTip(
            "Click a tile on the slide to list the tiles whose predictions resemble it most"
        )
        self.matches = QListWidget()
        self.matches.setMaximumHeight(110)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.pick_button)
        layout.addWidget(self.matches)
        layout.addWidget(self.info)
        self.pick_button.clicked.connect(self.arm)
        self.matches.itemClicked.connect(self._go)

    def arm(self) -> None:
        if self.owner.live is None:
            self.info.setText("Load a model first.")
            return
        self.info.setText("Click a predicted tile on the slide.")
        self.owner.viewer.mouse_drag_callbacks.append(self._clicked)

    def _clicked(self, viewer: Any, event: Any) -> None:
        viewer.mouse_drag_callbacks.remove(self._clicked)
        live = self.owner.live
        if live is None:
            return
        y, x = live.slide_layer.world_to_data(event.position)[-2:]
        self.search_at(float(x), float(y))

    def search_at(self, x: float, y: float) -> Any:
        """Search from the tile under level-0 point (x, y) (off the main thread)."""
        live = self.owner.live
        grid = live.session.grid
        tiles = grid.tiles_in_rect(x, y, x + 1e-6, y + 1e-6)
        if len(tiles) == 0:
            self.info.setText("That point is outside the slide.")
            return None
        query = int(tiles[0])
        worker = thread_worker(similarity_to, start_thread=False)(live.session.store, query)
        worker.returned.connect(self._show)
        worker.errored.connect(lambda error: self.info.setText(str(error)))
        self._worker = worker
        worker.start()
        return worker

    def _show(self, result: SimilarityResult) -> None:
        live = self.owner.live
        if live is None:
            return
        self.result = result
        grid = live.session.grid
        row, col = (int(v) for v in grid.row_col(result.query))
        scale, translate = overlay_geometry(grid)
        name = "similarity to the picked tile"
        if self.layer is not None and self.layer in self.owner.viewer.layers:
            self.layer.data = result.raster
        else:
            self.layer = self.owner.viewer.add_image(
                result.raster,
                name=name,
                scale=scale,
                translate=translate,
                units=("um", "um"),
                colormap="viridis",
                contrast_limits=(-1, 1),
                opacity=0.7,
                blending="translucent",
                interpolation2d="nearest",
            )
        self.matches.clear()
        for index, cosine in result.ranked:
            r, c = (int(v) for v in grid.row_col(index))
            item = QListWidgetItem(f"tile ({r}, {c}): cosine {cosine:.2f}")
            item.setData(Qt.UserRole, index)
            self.matches.addItem(item)
        self.info.setText(
            f"Tile ({row}, {col}) against every predicted tile; "
            "1 = same predicted profile, -1 = opposite."
        )

    def _go(self, item: QListWidgetItem) -> None:
        live = self.owner.live
        if live is None:
            return
        grid = live.session.grid
        centre = grid.centres([int(item.data(Qt.UserRole))])[0]
        sy, sx = live.slide_layer.scale[-2:]
        self.owner.viewer.scene.camera.center = (centre[1] * sy, centre[0] * sx)
