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

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QSize, QTimer
from qtpy.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from omicslens._napari.inference_widget import InferenceWidget
from omicslens._napari.jobs import show_activity
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
        self.save_button = QPushButton("Save session…")
        self.save_button.setToolTip(
            "Save the slide, model, shown output and colours, regions, cell corrections "
            "and view as one small .omicslens.json file"
        )
        self.open_button = QPushButton("Open session…")
        self.open_button.setToolTip("Reopen a saved session (omicslens view SESSION does too)")
        self.session_status = QLabel("")
        self.session_status.setWordWrap(True)
        self.session_status.setVisible(False)  # shown with its first message
        self.session_status.setContentsMargins(6, 0, 6, 0)
        session_row = QHBoxLayout()
        session_row.setContentsMargins(6, 4, 6, 0)
        session_row.addWidget(self.save_button)
        session_row.addWidget(self.open_button)
        session_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(session_row)
        layout.addWidget(self.session_status)
        layout.addWidget(self.tabs)
        self.setMinimumSize(PANEL_MIN_WIDTH, PANEL_MIN_HEIGHT)
        self._fitted = False
        #: a reopened session's camera: the first fit of the view must not replace it
        self.keep_camera = False
        #: the session file last saved or opened (the default of the next save)
        self.session_path: Path | None = None
        self.save_button.clicked.connect(self._save_dialog)
        self.open_button.clicked.connect(self._open_dialog)

    def sizeHint(self) -> QSize:
        """Narrow: the widest page (the smear gallery) would otherwise set the width."""
        return QSize(PANEL_WIDTH, super().sizeHint().height())

    def _say(self, text: str) -> None:
        self.session_status.setText(text)
        self.session_status.setVisible(bool(text))

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
        if len(self.viewer.layers) and not self.keep_camera:
            self.viewer.reset_view()

    # -- sessions ---------------------------------------------------------------------
    def save_session(self, path: str | Path, overwrite: bool = False) -> Any:
        """Save in a worker thread (the slide is read for its fingerprint); returns it."""
        from napari.qt.threading import thread_worker

        from omicslens._napari.review_session import capture, write

        session = capture(self)  # the GUI's state, read here on the GUI thread
        worker = thread_worker(write, start_thread=False)(session, path, overwrite)
        worker.returned.connect(self._saved)
        worker.errored.connect(lambda e: self._say(f"Not saved: {e}"))
        self._session_worker = show_activity(worker, "saving the session")
        worker.start()
        return worker

    def _saved(self, written: Path) -> None:
        self.session_path = written
        self._say(f"Session saved to {written}.")

    def open_session(self, path: str | Path) -> Any:
        """Reopen a session: the file and slide are read in a worker thread; a bad file
        is reported in the panel and as a notification naming it."""
        from napari.qt.threading import thread_worker

        from omicslens._napari.review_session import prepare

        self._say(f"Opening {Path(path).name}…")
        worker = thread_worker(prepare, start_thread=False)(path)
        worker.returned.connect(lambda result: self._reopened(Path(path), *result))
        worker.errored.connect(self._not_reopened)
        self._session_worker = show_activity(worker, f"opening {Path(path).name}")
        worker.start()
        return worker

    def _reopened(self, path: Path, session: Any, slide: Any) -> None:
        from omicslens._napari.review_session import apply

        apply(self, session, slide, path)
        self._say(f"Session {path.name} reopened.")

    def _not_reopened(self, error: BaseException) -> None:
        from omicslens._napari.notify import notify, problem_from_error

        self._say(f"Not opened: {error}")
        notify(problem_from_error("could not open the session", error))

    def _save_dialog(self) -> None:
        from omicslens.core.session import SESSION_SUFFIX

        default = str(self.session_path or Path.home() / f"review{SESSION_SUFFIX}")
        path, _ = QFileDialog.getSaveFileName(
            self, "Save OmicsLens session", default, f"OmicsLens session (*{SESSION_SUFFIX})"
        )
        if not path:
            return
        try:
            self.save_session(path, overwrite=True)  # the dialog asked before replacing
        except ValueError as error:  # no slide open
            self._say(f"Not saved: {error}")

    def _open_dialog(self) -> None:
        from omicslens.core.session import SESSION_SUFFIX

        path, _ = QFileDialog.getOpenFileName(
            self, "Open OmicsLens session", "", f"OmicsLens session (*{SESSION_SUFFIX})"
        )
        if path:
            self.open_session(path)
