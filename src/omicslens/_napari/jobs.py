"""Run an application-layer job in a background thread, with a progress bar and a cancel.

Jobs (:mod:`omicslens.app`) are generators that yield
:class:`~omicslens.app.progress.Progress` and return a report. Here one runs in a thread
of its own (named ``omicslens-job-...``), in the way napari's ``thread_worker`` runs a
generator: every yielded step moves a ``napari.utils.progress`` bar in the activity
panel, the report arrives on the main thread through ``on_done``, and an error through
``on_error`` (Qt queued signals). Not napari's ``thread_worker`` itself: that uses Qt's
global thread pool, which has one thread per core (two here), and a whole-slide job plus
the view's progress would hold it for as long as they run, starving napari's own
workers and ours (region statistics, output rasters). Cancelling sets a flag the job
thread checks between steps; the generator is then closed **in the job thread**, so its
``finally`` (stopping schedulers, closing files) never runs on the main thread.
``finished`` is set once the job has fully ended, which is what viewer shutdown waits for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from typing import Any

from napari.utils import progress
from qtpy.QtCore import QObject, Signal

from omicslens.app.progress import Progress

#: least time between two moves of a job's progress bar (the last step always shows)
BAR_INTERVAL_S = 0.5


class _Bridge(QObject):
    """Signals emitted from the job thread, delivered on the main thread (queued)."""

    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    finished = Signal()


class JobHandle:
    """A running job: ``cancel()`` it, wait on ``finished``, read ``report`` when done."""

    def __init__(self, description: str, owner: Any = None) -> None:
        self.description = description
        self.owner = owner  # what the job belongs to (cancelled with it)
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self.report: Any = None
        self.bar: Any = None
        self.thread: threading.Thread | None = None
        self.signals = _Bridge()

    def cancel(self) -> None:
        self.cancelled.set()

    def _run(self, job: Generator[Progress, None, Any]) -> None:
        """The job thread: step the job until it ends or is cancelled."""
        signals = self.signals
        try:
            while not self.cancelled.is_set():
                try:
                    step = next(job)
                except StopIteration as finished:
                    signals.returned.emit(finished.value)
                    return
                signals.yielded.emit(step)
        except Exception as error:  # reported to the dock; the viewer stays usable
            signals.errored.emit(error)
        finally:
            job.close()  # its own cleanup, on this thread
            self.finished.set()
            signals.finished.emit()


def start_job(
    state: Any,
    job: Generator[Progress, None, Any],
    description: str,
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    owner: Any = None,
) -> JobHandle:
    """Start ``job`` in a worker thread with a progress bar; registered in ``state``."""
    handle = JobHandle(description, owner)
    bar = progress(total=0, desc=f"OmicsLens: {description}")
    handle.bar = bar
    # tqdm stores the description with ": " appended, so bar.desc never equals a label:
    # comparing with it re-labelled (and redrew) the bar on every step, ~20 % of the GUI
    # thread while a whole-slide job ran
    labels = [f"OmicsLens: {description}"]
    updated = [0.0]  # when the bar last moved

    def show(step: Progress) -> None:
        # napari's bar redraws on update() and on a new total, not on assigning n
        if step.total and bar.total != step.total:
            bar.total = step.total
        value = min(step.done + step.failed, step.total) if step.total else step.done
        label = f"OmicsLens: {description}"
        if step.stage != description:
            label += f" ({step.stage})"
        if step.failed:
            label += f", {step.failed} failed"
        if label != labels[0]:
            labels[0] = label
            bar.set_description(label)
        now = time.monotonic()
        finished = bool(step.total) and value >= step.total
        # a bar update costs the GUI thread several ms (tqdm formatting, napari's activity
        # widgets); two a second per job are plenty for the eye, the final one always shows
        if value != bar.n and (finished or now - updated[0] >= BAR_INTERVAL_S):
            updated[0] = now
            bar.update(value - bar.n)

    def returned(report: Any) -> None:
        handle.report = report
        if on_done is not None and not handle.cancelled.is_set():
            on_done(report)

    def errored(error: BaseException) -> None:
        if on_error is not None:
            on_error(error)

    signals = handle.signals
    signals.yielded.connect(show)
    signals.returned.connect(returned)
    signals.errored.connect(errored)
    signals.finished.connect(bar.close)
    handle.thread = threading.Thread(
        target=handle._run, args=(job,), name=f"omicslens-job-{description}", daemon=True
    )
    state.add_job(handle)
    handle.thread.start()
    return handle


def show_activity(worker: Any, description: str) -> Any:
    """An indeterminate bar in napari's activity panel while ``worker`` (a napari
    ``thread_worker``) runs: loading a model, region statistics, a session. Returns the
    worker. Why: a status line alone is easy to miss for a job of several seconds."""
    bar = progress(total=0, desc=f"OmicsLens: {description}")
    worker.finished.connect(bar.close)
    return worker
