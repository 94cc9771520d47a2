"""The OmicsLens panel: every dock as a tab of one panel that fits a laptop screen.

Why one panel: as four docks stacked in napari's dock area, Slide info, Predict, Regions
and Blood smear needed 2,539 px of height on a 1,200 px screen, and their lists shrank
to 0-2 rows. As tabs, only one page is laid out at a time; each page scrolls inside its
tab when the window is shorter than the page, so every control stays reachable at
1,366 x 768. The pages are the same widgets as the separate docks (which stay available
from the Plugins menu); they share the viewer's state, never each other.

When the panel first appears, napari's dock area has just taken width from the canvas:
the view is fitted to the slide again, or tissue (or the only white cell of a smear) can
sit off screen and is never predicted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QSize, QTimer
from qtpy.QtWidgets import QFrame, QScrollArea, QTabWidget, QVBoxLayout, QWidget

from omicslens._napari.inference_widget import InferenceWidget
from omicslens._napari.regions_widget import RegionsWidget
from omicslens._napari.slide_info import SlideInfoWidget
from omicslens._napari.smear_widget import SmearWidget

if TYPE_CHECKING:
    import napari

#: narrow enough to leave a 1,366 px screen most of its width for the slide
PANEL_MIN_WIDTH = 380
#: the panel as a whole may shrink this far; pages scroll below it
PANEL_MIN_HEIGHT = 320
#: the width napari's dock area gives the panel at first (the user can drag it wider)
PANEL_WIDTH = 440


def _scrolling(page: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.NoFrame)
    area.setWidget(page)
    return area


class OmicsLensPanel(QWidget):
    """Slide, Predict, Regions and Blood smear as tabs of one dock."""

    TABS = ("Slide", "Predict", "Regions", "Blood smear")

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.slide_info = SlideInfoWidget(napari_viewer)
        self.predict = InferenceWidget(napari_viewer)
        self.regions = RegionsWidget(napari_viewer)
        self.smear = SmearWidget(napari_viewer)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        pages = (self.slide_info, self.predict, self.regions, self.smear)
        tips = (
            "What the slide is: format, size, resolution and where it came from",
            "Load a model and predict on the visible tiles as you pan and zoom",
            "Draw, name, import and export regions; their area, cells and predictions",
            "Find, type and review the white cells of a blood smear",
        )
        for page, title, tip in zip(pages, self.TABS, tips, strict=True):
            index = self.tabs.addTab(_scrolling(page), title)
            self.tabs.setTabToolTip(index, tip)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self.setMinimumSize(PANEL_MIN_WIDTH, PANEL_MIN_HEIGHT)
        self._fitted = False

    def sizeHint(self) -> QSize:
        """Narrow: the widest page (the smear gallery) would otherwise set the width."""
        return QSize(PANEL_WIDTH, super().sizeHint().height())

    def show_tab(self, title: str) -> None:
        self.tabs.setCurrentIndex(self.TABS.index(title))

    @property
    def live(self) -> Any:
        """The running prediction (what ``omicslens view --screenshot`` waits for)."""
        return self.predict.live

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if not self._fitted:
            self._fitted = True
            # after the dock area has taken its width from the canvas
            QTimer.singleShot(0, self._fit_view)

    def _fit_view(self) -> None:
        if len(self.viewer.layers):
            self.viewer.reset_view()
