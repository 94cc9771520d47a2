"""Keep the canvas's OpenGL context current when napari removes a layer.

Why: napari 0.9 removes a layer's visual and then, to dodge an access violation seen on
Windows drivers, calls ``context.finish()`` on the scene canvas
(``VispyCanvas._clean_and_update_scenegraph``). That flushes the queued GL commands (the
deletes of the removed layer's textures among them) while the canvas's own context is
not necessarily current. Under Mesa (llvmpipe, the software GL of Xvfb, VMs and remote
desktops) the next texture upload of a remaining layer then **crashes the process with
SIGSEGV in glDrawArrays**. A pathologist removing a slide while its prediction overlay
stays (our Predict dock keeps it, and draws the batch still in flight) lost the whole
viewer; CI died the same way (``tests/gui/test_viewer_state.py``).

Measured with a napari-only script (one RGB image, one float overlay, remove the image,
refresh the overlay): a crash on the first of 3 tries, each time, without this; 14 of 14
tries clean with it (docs/reliability.md, "Removing a layer").

The fix makes the canvas's context current before napari's own method runs; napari's
logic is otherwise untouched. It is installed once per process, when OmicsLens first
touches a viewer, and does nothing if napari no longer has the method.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_MARK = "_omicslens_keeps_gl_context"


def keep_gl_context_on_layer_removal() -> bool:
    """Wrap napari's scene-graph clean-up so it runs with the canvas context current.

    Returns True when the wrapper is in place (now or from an earlier call).
    """
    try:
        from napari._vispy.canvas import VispyCanvas
    except ImportError:  # pragma: no cover - napari internals moved
        return False
    original = getattr(VispyCanvas, "_clean_and_update_scenegraph", None)
    if original is None:  # pragma: no cover - a napari without the Windows workaround
        return False
    if getattr(original, _MARK, False):
        return True
    VispyCanvas._clean_and_update_scenegraph = _with_current_context(original)
    log.debug("napari layer removal now makes the canvas context current first")
    return True


def _with_current_context(original: Callable[[Any], None]) -> Callable[[Any], None]:
    @functools.wraps(original)
    def clean_and_update(self: Any) -> None:
        with contextlib.suppress(Exception):  # no native canvas yet (headless tests)
            self._scene_canvas.set_current()
        original(self)

    setattr(clean_and_update, _MARK, True)
    return clean_and_update
