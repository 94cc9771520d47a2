"""Dock widget: what the open slide is (format, size, resolution and its source, levels)
and its associated images (label, macro, thumbnail), as QuPath's "Image" tab shows them.

Associated images are decoded on a worker thread; the Qt thread only builds pixmaps
from the small decoded arrays.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.qt.threading import thread_worker
from qtpy.QtCore import Qt
from qtpy.QtGui import QDoubleValidator, QImage, QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from omicslens._napari.layers import slide_layer_data, slide_of
from omicslens.core.resolution import PLAUSIBLE_MPP

if TYPE_CHECKING:
    import napari

PREVIEW_WIDTH = 260


class SlideInfoWidget(QWidget):
    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.layer_combo = QComboBox()
        self.details = QTextBrowser()
        self.details.setMinimumHeight(220)
        self.associated_combo = QComboBox()
        self.show_button = QPushButton("Preview")
        self.open_button = QPushButton("Open as layer")
        self.preview = QLabel("No associated image shown")
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setMinimumHeight(120)
        self.mpp_edit = QLineEdit()
        self.mpp_edit.setPlaceholderText("microns per pixel")
        low, high = PLAUSIBLE_MPP
        validator = QDoubleValidator(low, high, 6, self)
        validator.setNotation(QDoubleValidator.StandardNotation)
        self.mpp_edit.setValidator(validator)
        self.mpp_edit.setToolTip(
            "Microns per pixel at full resolution. A value typed for a file that states "
            "none is remembered for that file; applying reopens the slide layer (its "
            "predictions start again at the new scale)"
        )
        self.mpp_button = QPushButton("Apply resolution")
        self.mpp_button.setToolTip("Reopen the slide at the resolution typed on the left")
        self.mpp_status = QLabel("")
        self.mpp_status.setWordWrap(True)
        self.layer_combo.setToolTip("The slide layer described below")
        self.associated_combo.setToolTip("Label, macro and thumbnail images stored in the file")
        self.show_button.setToolTip("Show the associated image below")
        self.open_button.setToolTip("Open the associated image as a layer of its own")
        self._associated_cache: dict[tuple[int, str], np.ndarray] = {}
        self._worker: Any = None

        row = QHBoxLayout()
        row.addWidget(self.associated_combo, 1)
        row.addWidget(self.show_button)
        row.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Slide layer"))
        layout.addWidget(self.layer_combo)
        layout.addWidget(self.details, 1)
        mpp_row = QHBoxLayout()
        mpp_row.addWidget(QLabel("Resolution (µm/px)"))
        mpp_row.addWidget(self.mpp_edit, 1)
        mpp_row.addWidget(self.mpp_button)
        layout.addLayout(mpp_row)
        layout.addWidget(self.mpp_status)
        layout.addWidget(QLabel("Associated images"))
        layout.addLayout(row)
        layout.addWidget(self.preview)

        self.layer_combo.currentIndexChanged.connect(self._update_details)
        self.mpp_button.clicked.connect(self.apply_resolution)
        self.show_button.clicked.connect(lambda: self.load_associated(open_layer=False))
        self.open_button.clicked.connect(lambda: self.load_associated(open_layer=True))
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    # -- layer list -------------------------------------------------------------------
    def _slide_layers(self) -> list[Any]:
        return [layer for layer in self.viewer.layers if slide_of(layer) is not None]

    def _refresh_layers(self, *_: Any) -> None:
        current = self.layer_combo.currentText()
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        for layer in self._slide_layers():
            self.layer_combo.addItem(layer.name)
        index = self.layer_combo.findText(current)
        self.layer_combo.setCurrentIndex(index if index >= 0 else self.layer_combo.count() - 1)
        self.layer_combo.blockSignals(False)
        self._update_details()

    def selected_layer(self) -> Any | None:
        name = self.layer_combo.currentText()
        return next((layer for layer in self._slide_layers() if layer.name == name), None)

    def _update_details(self, *_: Any) -> None:
        layer = self.selected_layer()
        self.associated_combo.clear()
        if layer is None:
            self.details.setHtml("<i>Open a slide (File &gt; Open, or File &gt; Open Sample).</i>")
            self._set_buttons(False)
            return
        slide = slide_of(layer)
        assert slide is not None
        self.details.setHtml(describe_slide_html(slide.info()))
        self.mpp_edit.setText(f"{slide.mpp_x:.6g}")
        self.associated_combo.addItems(slide.associated_images)
        self._set_buttons(bool(slide.associated_images))

    # -- resolution -------------------------------------------------------------------
    def apply_resolution(self) -> Any:
        """Reopen the selected slide at the typed resolution (in a worker thread) and
        remember it when the file states none (a typo can be corrected here)."""
        layer = self.selected_layer()
        slide = slide_of(layer) if layer is not None else None
        try:
            mpp = float(self.mpp_edit.text().replace(",", "."))
        except ValueError:
            mpp = float("nan")
        low, high = PLAUSIBLE_MPP
        if slide is None or not low <= mpp <= high:
            self.mpp_status.setText(f"Type a resolution between {low} and {high} µm/px.")
            return None
        worker = thread_worker(_reopen_at, start_thread=False)(slide.path, mpp)
        worker.returned.connect(lambda result: self._replace_layer(layer, *result))
        worker.errored.connect(lambda error: self.mpp_status.setText(f"Not changed: {error}"))
        self._mpp_worker = worker
        worker.start()
        return worker

    def _replace_layer(self, old: Any, slide: Any, remembered: bool) -> None:
        viewer = self.viewer
        if old not in viewer.layers:
            slide.close()
            return
        index = list(viewer.layers).index(old)
        name = old.name
        data, kwargs, _ = slide_layer_data(slide, name=name)
        viewer.layers.remove(old)  # stops the prediction bound to it, closes its slide
        viewer.add_image(data, **kwargs)
        viewer.layers.move(len(viewer.layers) - 1, index)
        self.layer_combo.setCurrentText(name)
        note = (
            "remembered for this file"
            if remembered
            else "for this session only: the file states its own resolution"
        )
        self.mpp_status.setText(f"{name} reopened at {slide.mpp_x:g} µm/px ({note}).")

    def _set_buttons(self, enabled: bool) -> None:
        self.show_button.setEnabled(enabled)
        self.open_button.setEnabled(enabled)

    # -- associated images ------------------------------------------------------------
    def load_associated(self, open_layer: bool = False) -> Any:
        """Decode the chosen associated image on a worker thread, then show it."""
        layer = self.selected_layer()
        name = self.associated_combo.currentText()
        if layer is None or not name:
            return None
        slide = slide_of(layer)
        assert slide is not None
        key = (id(slide), name)

        def done(pixels: np.ndarray) -> None:
            self._associated_cache[key] = pixels
            self._show_preview(pixels, name)
            if open_layer:
                self.viewer.add_image(
                    pixels, name=f"{layer.name} [{name}]", rgb=pixels.shape[-1] in (3, 4)
                )

        if key in self._associated_cache:
            done(self._associated_cache[key])
            return None

        @thread_worker
        def decode() -> np.ndarray:
            return slide.associated_image(name)

        self.preview.setText(f"Loading {name}...")
        worker = decode()
        worker.returned.connect(done)
        worker.errored.connect(lambda exc: self.preview.setText(f"Cannot read {name}: {exc}"))
        self._worker = worker
        worker.start()
        return worker

    def _show_preview(self, pixels: np.ndarray, name: str) -> None:
        rgb = (
            np.ascontiguousarray(pixels[..., :3])
            if pixels.ndim == 3
            else np.ascontiguousarray(np.repeat(pixels[..., None], 3, axis=2))
        )
        height, width = rgb.shape[:2]
        image = QImage(rgb.data, width, height, 3 * width, QImage.Format_RGB888).copy()
        pixmap = QPixmap.fromImage(image).scaledToWidth(
            min(PREVIEW_WIDTH, width), Qt.SmoothTransformation
        )
        self.preview.setPixmap(pixmap)
        self.preview.setToolTip(f"{name}: {width} x {height} px")


def _reopen_at(path: Any, mpp: float) -> tuple[Any, bool]:
    """Open ``path`` at ``mpp``; remember it when the file states no resolution."""
    from omicslens.core import MissingResolutionError, open_slide
    from omicslens.core.settings import remember_mpp

    try:
        open_slide(path).close()
        states_its_own = True
    except MissingResolutionError:
        states_its_own = False
    if not states_its_own:
        remember_mpp(path, mpp)
    return open_slide(path, mpp=mpp), not states_its_own


def describe_slide_html(info: dict[str, Any]) -> str:
    """The slide summary as small HTML (also used in tests to check what users read)."""
    objective = info.get("objective_power")
    rows = [
        ("File", escape(str(info["path"]))),
        ("Format", escape(str(info["format"]))),
        ("Size", f"{info['width']:,} x {info['height']:,} px"),
        (
            "Resolution",
            f"{info['mpp_x']:.4f} x {info['mpp_y']:.4f} &micro;m/px "
            f"<small>({escape(str(info['mpp_source']))})</small>",
        ),
        (
            "Physical size",
            f"{info['width'] * info['mpp_x'] / 1000:.2f} x "
            f"{info['height'] * info['mpp_y'] / 1000:.2f} mm",
        ),
        ("Objective", f"{objective:g}x" if objective else "not stated"),
        ("Associated", escape(", ".join(info["associated_images"]) or "none")),
    ]
    table = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
    levels = "".join(
        "<tr>"
        f"<td>{lv['level']}</td><td>{lv['width']:,} x {lv['height']:,}</td>"
        f"<td>{lv['downsample']:g}</td><td>{lv['mpp_x']:.3f}</td>"
        f"<td>{lv['tile_width'] or '-'}</td><td>{escape(str(lv['compression']))}</td>"
        "</tr>"
        for lv in info["levels"]
    )
    return (
        f"<table>{table}</table><br><b>Levels</b>"
        "<table><tr><th>#</th><th>size</th><th>down</th><th>&micro;m/px</th><th>tile</th>"
        f"<th>codec</th></tr>{levels}</table>"
    )
