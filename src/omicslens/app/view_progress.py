"""The viewer's never-ending job: progress of the tiles on screen, and the domain verdict.

Why here and not in the napari glue: it is the same kind of user-level job as
``predict_slide`` (a Qt-free generator that yields :class:`Progress`), reads the store
and every predicted tissue tile off the main thread, and can be driven and tested
without a viewer. The dock only runs it in a worker and shows what it yields.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

import numpy as np

from omicslens.app.progress import Progress
from omicslens.core.domain import DomainVerdict

if TYPE_CHECKING:
    from omicslens.models.session import InferenceSession

#: how often the domain verdict is recomputed while tiles arrive (it reads every
#: predicted tissue tile, so not on every poll)
DOMAIN_EVERY_S = 1.0


def follow_view(
    session: InferenceSession,
    view_tiles: Callable[[], np.ndarray],
    on_domain: Callable[[DomainVerdict], None],
    *,
    poll_seconds: float = 0.25,
    domain_every_s: float = DOMAIN_EVERY_S,
) -> Generator[Progress, None, None]:
    """Yield "tiles in view" progress of ``view_tiles()`` (what the camera shows now)
    every ``poll_seconds``, until closed (one activity bar for the whole session rather
    than one per camera move).

    Whenever more tiles are done than at the last verdict, and at most every
    ``domain_every_s``, the slide's domain verdict over all predicted tissue tiles is
    recomputed and handed to ``on_domain`` (bundles with a domain reference only).
    """
    from omicslens.app.domain import slide_domain

    counted, checked_at = -1, float("-inf")
    while True:
        tiles = view_tiles()
        done = int(session.store.is_done(tiles).sum()) if len(tiles) else 0
        total_done = session.store.done_count
        due = time.monotonic() - checked_at >= domain_every_s
        if session.bundle.domain is not None and total_done != counted and due:
            counted, checked_at = total_done, time.monotonic()
            verdict = slide_domain(session)
            if verdict is not None and verdict.tiles_checked:
                on_domain(verdict)
        yield Progress("tiles in view", done, len(tiles))
        time.sleep(poll_seconds)
