"""How often arriving tiles may be drawn: as often as the canvas can afford.

Why: every overlay refresh is a frame of the whole canvas, drawn on the Qt main thread.
With a GPU-backed display a frame costs a few ms, and 10 draws a second cost nothing.
Under software OpenGL (Mesa's llvmpipe: Xvfb, VMs, remote desktops, many hospital thin
clients) a frame costs 40-180 ms of the same CPU cores that run the model, and a fixed
10 Hz redraw can spend most of a core on drawing. On the 2-core development machine the
model thread is the first screen's bottleneck, so fewer frames bought little there
(docs/benchmarks.md, "Draw pacing"); the pacing keeps the main thread free for input.

So the pacer measures what the canvas's frames really cost (from the start of the
canvas's draw event until the event loop is free again) and spaces redraws so that
drawing takes at most ``share`` of the main thread: ``interval = cost / share``, never
below ``floor_ms`` (the old fixed rate) nor above ``ceiling_ms`` (the map must still
visibly fill). The first draw after a camera move is not paced (see
``LiveInference``): latency there matters more than throughput.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QTimer

#: least time between two draws of arriving tiles (the rate with a cheap canvas)
FLOOR_MS = 100.0
#: most time between two draws while tiles arrive: the map keeps visibly filling
CEILING_MS = 1000.0
#: drawing may take at most this share of the main thread while tiles arrive
DRAW_SHARE = 0.2
#: weight of the newest frame in the running estimate of a frame's cost
SMOOTHING = 0.3


class DrawPacer:
    """A running estimate of a frame's cost and the draw interval it allows."""

    def __init__(
        self,
        share: float = DRAW_SHARE,
        floor_ms: float = FLOOR_MS,
        ceiling_ms: float = CEILING_MS,
        smoothing: float = SMOOTHING,
    ) -> None:
        if not 0 < share <= 1 or not 0 < smoothing <= 1 or floor_ms > ceiling_ms:
            raise ValueError("share and smoothing must be in (0, 1], floor <= ceiling")
        self.share = share
        self.floor_ms = floor_ms
        self.ceiling_ms = ceiling_ms
        self.smoothing = smoothing
        self.frame_ms: float | None = None  # None until a frame was measured
        self.frames = 0
        self.longest_ms = 0.0  # the longest frame measured (benchmarks report it)
        self._started: float | None = None

    def record(self, frame_ms: float) -> None:
        """Add one measured frame (ms) to the running estimate."""
        self.frames += 1
        self.longest_ms = max(self.longest_ms, frame_ms)
        if self.frame_ms is None:
            self.frame_ms = frame_ms
        else:
            self.frame_ms += self.smoothing * (frame_ms - self.frame_ms)

    @property
    def interval_ms(self) -> float:
        """Least time between two draws of arriving tiles, now."""
        if self.frame_ms is None:
            return self.floor_ms
        return min(max(self.frame_ms / self.share, self.floor_ms), self.ceiling_ms)

    def watch(self, viewer: Any) -> Callable[[], None]:
        """Measure every frame of ``viewer``'s canvas; returns a function that stops it.

        Does nothing (and the interval stays at the floor) when the canvas cannot be
        reached, for example a headless viewer or napari internals that moved.
        """
        try:
            draw = viewer.window._qt_viewer.canvas._scene_canvas.events.draw
        except AttributeError:  # pragma: no cover - napari internals moved
            return lambda: None

        def frame_starts(event: Any) -> None:
            self._started = time.perf_counter()

        def frame_done() -> None:
            if self._started is not None:
                self.record((time.perf_counter() - self._started) * 1000)
                self._started = None

        def frame_ends(event: Any) -> None:
            # the frame is not over when the draw handlers return: Qt still composites
            # the GL widget into the window (under llvmpipe: waiting for the rasteriser
            # and reading the pixels back). A zero timer fires once that is done.
            QTimer.singleShot(0, frame_done)

        draw.connect(frame_starts, position="first")
        draw.connect(frame_ends, position="last")

        def stop() -> None:
            with contextlib.suppress(Exception):  # the canvas is already gone
                draw.disconnect(frame_starts)
                draw.disconnect(frame_ends)
            # a frame whose draw ended just before may still have its zero timer queued:
            # without this it was counted after stop (a flaky GUI test in CI showed it)
            self._started = None

        return stop
