"""Work the Regions dock runs off the main thread: predicting regions, writing a crop.

Split out of :mod:`omicslens._napari.regions_widget` so that what runs in a worker (and
what it touches: the session, the scheduler, the slide) is apart from the dock's widgets.
The dock starts these and shows their results in its status line.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np

from omicslens._napari.jobs import show_activity
from omicslens.app.progress import Progress
from omicslens.app.regions import tissue_tiles_in
from omicslens.core.regions import Region


def region_tiles_job(live: Any, regions: list[Region]) -> Generator[Progress, None, Any]:
    """Find the regions' tissue tiles, queue the missing ones, follow them to the end."""
    from omicslens.app.tiles import track_tiles

    yield Progress("finding tiles", 0, len(regions))
    found = [tissue_tiles_in(live.session, region) for region in regions]
    wanted = np.unique(np.concatenate(found)) if found else np.empty(0, np.int64)
    missing = live.request_tiles(wanted)
    return (yield from track_tiles(live.session, live.scheduler, missing))


def start_crop_export(
    session: Any, region: Region, path: str | Path, say: Callable[[str], None]
) -> Any:
    """Start writing ``region`` (H&E + every output) as OME-TIFF in a worker thread;
    ``say`` gets "Wrote ..." or "Not written: ...". Returns the worker."""
    from napari.qt.threading import thread_worker

    from omicslens.core.exports.crop import write_region_ome_tiff

    outputs = list(range(len(session.bundle.output_names)))
    worker = thread_worker(write_region_ome_tiff, start_thread=False)(
        session.slide, region, session.store, outputs, path
    )
    worker.returned.connect(lambda written: say(f"Wrote {written}."))
    worker.errored.connect(lambda error: say(f"Not written: {error}"))
    show_activity(worker, f"writing {Path(path).name}")
    worker.start()
    return worker
