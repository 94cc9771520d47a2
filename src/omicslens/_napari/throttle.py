"""Leading-and-trailing throttle on the Qt main thread.

Used where an action is costly and its triggers come in bursts: planning the view while
the camera moves (live_inference) and rewriting a map's key while the user drags its
contrast (legend). The first trigger after a pause acts at once, later ones inside the
interval are merged into one call when it ends, so the last state is never dropped.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QTimer


class Throttle:
    """Run ``action`` at once, then at most once per ``interval_ms``; a call inside the
    interval is run when it ends, so the last state is always shown. Main thread only."""

    def __init__(self, action: Callable[[], None], interval_ms: int) -> None:
        self.action = action
        self._due = False
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._interval_over)

    def __call__(self) -> None:
        if self._timer.isActive():
            self._due = True
            return
        self.action()
        self._timer.start()

    def _interval_over(self) -> None:
        if self._due:
            self._due = False
            self.action()
            self._timer.start()

    def run_now(self) -> None:
        """Run the action now; a call still due is covered by this one."""
        self._due = False
        self.action()
        self._timer.start()

    def stop(self) -> None:
        self._due = False
        self._timer.stop()
