"""One evented state per viewer, shared by the OmicsLens docks.

The docks never look each other up: the Predict dock publishes its running prediction
(``live``) and the shown output, the Blood smear dock its analysis, the Regions dock its
regions; every dock subscribes to the fields it needs (``state.events.<field>``, psygnal,
which napari ships).

The state also owns the lifetime of OmicsLens's background work in this viewer:

- removing a slide layer stops the prediction bound to it and closes its slide (off the
  main thread: joining threads and flushing the store are I/O);
- closing the viewer cancels every job and joins every OmicsLens thread before the
  window goes (napari does not forward ``closeEvent`` to docks, so an event filter on
  the main window catches it).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psygnal import evented
from qtpy.QtCore import QEvent, QObject

#: how long closing the viewer waits for background work to end
SHUTDOWN_SECONDS = 15.0


@evented
@dataclass
class ViewerState:
    """What the docks share. Set fields on the main thread only."""

    live: Any = None  # LiveInference of the Predict dock (session, scheduler, overlay)
    output: Any = None  # OutputCombination shown in the overlay
    smear: Any = None  # SmearAnalysis of the Blood smear dock
    regions: list[Any] = field(default_factory=list)  # Region, as the Regions dock has them

    def __post_init__(self) -> None:
        self._jobs: list[Any] = []  # running JobHandles
        self._stoppers: list[threading.Thread] = []
        self.closed = False
        self.viewer_ref: Any = lambda: None  # weak: the state never keeps a viewer alive

    # -- jobs -------------------------------------------------------------------------
    def add_job(self, job: Any) -> None:
        self._jobs = [j for j in self._jobs if not j.finished.is_set()]
        self._jobs.append(job)

    def jobs(self) -> list[Any]:
        return [j for j in self._jobs if not j.finished.is_set()]

    # -- lifetime ---------------------------------------------------------------------
    def stop_live(self) -> None:
        """Stop the running prediction (threads end off the main thread)."""
        live = self.live
        if live is None:
            return
        for job in self.jobs():
            if getattr(job, "owner", None) is live:
                job.cancel()
        self.live = None
        self._stoppers.append(live.close())

    def slide_layer_removed(self, layer: Any) -> None:
        """A slide layer left the viewer: stop what runs on it and close its slide."""
        if self.live is not None and self.live.slide_layer is layer:
            self.stop_live()
        from omicslens._napari.layers import slide_of

        slide = slide_of(layer)
        if slide is not None:
            waiting = list(self._stoppers)

            def close_after_stop() -> None:
                for stopper in waiting:
                    stopper.join(SHUTDOWN_SECONDS)
                slide.close()

            closer = threading.Thread(target=close_after_stop, name="omicslens-close-slide")
            closer.start()
            self._stoppers.append(closer)

    def shutdown(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        """Cancel every job, stop the prediction and join every OmicsLens thread."""
        if self.closed:
            return
        self.closed = True
        for job in self.jobs():
            job.cancel()
        self.stop_live()
        for job in list(self._jobs):
            if job.thread is not None:
                job.thread.join(timeout)
        for stopper in self._stoppers:
            stopper.join(timeout)
        self._jobs.clear()  # they hold the prediction, which holds the viewer
        self._stoppers.clear()


_STATES: dict[int, ViewerState] = {}


def warn_if_opened_as_pixels(layer: Any) -> None:
    """A whole-slide file opened by napari's built-in reader (``viewer.open(path)`` names
    it by default): say so, since it is in pixels, without the pyramid, unpredictable."""
    from fnmatch import fnmatch

    from omicslens._napari.preferences import OWNED_PATTERNS

    source = getattr(layer, "source", None)
    path = str(getattr(source, "path", "") or "")
    if getattr(source, "reader_plugin", None) != "napari" or not path:
        return
    if any(fnmatch(path.lower(), pattern) for pattern in OWNED_PATTERNS):
        from omicslens._napari.notify import Problem, notify

        notify(
            Problem(
                f"{Path(path).name} was opened by napari's built-in reader, not OmicsLens.",
                f"{path} was opened by napari's built-in reader: in pixels, not "
                "micrometres, without the slide's pyramid, and OmicsLens cannot predict "
                "on it. Open it with File > Open, or viewer.open(path, "
                "plugin='omicslens').",
            ),
            severity="warning",
        )


class _CloseWatcher(QObject):
    """Runs ``state.shutdown`` when the viewer's main window closes."""

    def __init__(self, state: ViewerState, key: int, window: QObject) -> None:
        super().__init__(window)
        self._state = state
        self._key = key

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Close:
            self._state.shutdown()
            _STATES.pop(self._key, None)
        return False


def _unwrapped(obj: Any) -> Any:
    """The object behind napari's ``PublicOnlyProxy`` (plugin docks get proxied viewers)."""
    return getattr(obj, "__wrapped__", obj)


def viewer_state(viewer: Any) -> ViewerState:
    """The state of ``viewer`` (created, and hooked to the viewer, on first use)."""
    from omicslens._napari.gl_context import keep_gl_context_on_layer_removal

    keep_gl_context_on_layer_removal()  # see that module: a layer removal can crash Mesa
    viewer = _unwrapped(viewer)
    key = id(viewer)
    state = _STATES.get(key)
    if state is not None and not state.closed and state.viewer_ref() is viewer:
        return state
    state = ViewerState()
    state.viewer_ref = weakref.ref(viewer)
    _STATES[key] = state

    def removed(event: Any) -> None:
        state.slide_layer_removed(event.value)

    def inserted(event: Any) -> None:
        from omicslens._napari.layers import slide_of
        from omicslens._napari.preferences import show_scale_bar

        if slide_of(event.value) is not None:  # a slide, however it was opened
            show_scale_bar(viewer)
        else:
            warn_if_opened_as_pixels(event.value)

    from omicslens._napari.preferences import prefer_omicslens_reader

    prefer_omicslens_reader()
    viewer.layers.events.removed.connect(removed)
    viewer.layers.events.inserted.connect(inserted)
    window = _unwrapped(getattr(_unwrapped(getattr(viewer, "window", None)), "_qt_window", None))
    if window is not None:
        watcher = _CloseWatcher(state, key, window)
        window.installEventFilter(watcher)
    return state
