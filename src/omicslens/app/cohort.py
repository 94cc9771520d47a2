"""Cohorts on a dask.distributed cluster: one task per slide, idempotent, resumable.

``predict_cohort`` submits :func:`slide_task` once per slide to a ``Client`` (the user's
own, one for a scheduler address, or one for a ``LocalCluster`` it starts). Only plain
values cross the wire (paths as strings, :class:`PredictOptions`, the model reference);
each worker process opens the slide itself and loads the bundle once, then reuses it for
every later slide it gets. A task writes its outputs atomically and skips a slide whose
``done.json`` matches the model, so when a worker dies and dask re-runs its task on
another worker, the result is the same files, written once: predictions the dead worker
had already flushed to ``OUT/.cache`` are reused, the rest are predicted again.

Per-slide failures (a bad file, failed tiles, an unexpected error in one task) are
reported in the slide's row of ``OUT/cohort.csv`` and never stop the other slides.

Workers may declare a ``GPU`` resource (``dask worker ... --resources GPU=1``); when the
device is CUDA every task asks for one, so one slide runs per GPU at a time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
import time
import uuid
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omicslens.app.predict import (
    INPUT_ERRORS,
    PredictOptions,
    SlideReport,
    error_report,
    predict_slide,
)
from omicslens.app.progress import Progress, run_job
from omicslens.app.tiles import load_predictor
from omicslens.core.atomic import write_text_atomic

PROGRESS_TOPIC = "omicslens-progress"
COHORT_FILE = "cohort.csv"
#: seconds between progress messages a task sends to the client
PUBLISH_EVERY = 1.0


@dataclass(frozen=True)
class CohortSettings:
    """Where the tasks run and how: a scheduler address or a local cluster of N workers."""

    scheduler: str | None = None
    local_workers: int | None = None
    device: str | None = None
    batch_size: int | None = None
    threads_per_worker: int = 1
    poll_seconds: float = 0.5

    @classmethod
    def parse(
        cls,
        scheduler: str | None = None,
        cluster: str | None = None,
        device: str | None = None,
        batch_size: int | None = None,
    ) -> CohortSettings:
        """From the CLI: ``--scheduler tcp://host:8786`` or ``--cluster local:N``."""
        workers = None
        if cluster is not None:
            kind, _, count = cluster.partition(":")
            if kind != "local" or not count.isdigit() or int(count) < 1:
                raise ValueError(f"--cluster: expected local:N with N >= 1, got {cluster!r}")
            workers = int(count)
        return cls(scheduler, workers, device, batch_size)

    @property
    def needs_gpu(self) -> bool:
        return bool(self.device) and str(self.device).startswith("cuda")


@dataclass
class CohortReport:
    slides: list[SlideReport]
    table: Path
    seconds: float
    workers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(report.ok for report in self.slides)

    def describe(self) -> str:
        counts: dict[str, int] = {}
        for report in self.slides:
            counts[report.status] = counts.get(report.status, 0) + 1
        parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        return f"{len(self.slides)} slides ({parts}) in {self.seconds:.0f} s"


# -- on the worker ---------------------------------------------------------------------
_PREDICTORS: dict[tuple[str, str | None, int | None], Any] = {}
_PREDICTORS_LOCK = threading.Lock()


def _worker_predictor(model: str, device: str | None, batch_size: int | None) -> Any:
    """The bundle loaded once per worker process and reused for its later slides."""
    key = (model, device, batch_size)
    with _PREDICTORS_LOCK:
        if key not in _PREDICTORS:
            _PREDICTORS[key] = load_predictor(model, device, batch_size)
        return _PREDICTORS[key]


def _worker_name() -> str:
    try:
        from distributed import get_worker

        worker = get_worker()
        return str(worker.name if worker.name is not None else worker.address)
    except (ImportError, ValueError):
        return "local"


def _publisher(slide: str) -> Any:
    """A progress callback that tells the client, at most once a second."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    last = [0.0]

    def publish(step: Progress) -> None:
        now = time.monotonic()
        if step.stage == "tiles" and now - last[0] < PUBLISH_EVERY:
            return
        last[0] = now
        worker.log_event(
            PROGRESS_TOPIC,
            {
                "slide": slide,
                "stage": step.stage,
                "done": step.done,
                "total": step.total,
                "failed": step.failed,
                "worker": str(worker.name),
            },
        )

    return publish


def slide_task(
    slide: str,
    model: str,
    out: str,
    options: PredictOptions,
    device: str | None = None,
    batch_size: int | None = None,
) -> SlideReport:
    """One slide, on whichever worker runs it. Idempotent: safe to run again."""
    predictor = None
    try:
        predictor = _worker_predictor(model, device, batch_size)
        report = run_job(predict_slide(slide, predictor, out, options), _publisher(slide))
    except INPUT_ERRORS as error:
        report = error_report(slide, error, predictor)
    report.worker = _worker_name()
    return report


# -- on the client ---------------------------------------------------------------------
def _absolute_model(model: str | Path) -> str:
    """A model folder as an absolute path (workers may run elsewhere); names stay names."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else str(model)


def _task_key(run: str, position: int, slide: Path) -> str:
    digest = hashlib.sha1(str(slide).encode()).hexdigest()[:8]
    return f"omicslens-predict-{run}-{position}-{digest}"


def _open_client(settings: CohortSettings) -> tuple[Any, Any]:
    """(client, cluster-we-started or None) for the settings."""
    from distributed import Client, LocalCluster

    # set_as_default=False: our client must never become the process-wide dask scheduler
    # (later dask computations in this process, e.g. napari's, would go to the cluster)
    if settings.scheduler:
        return Client(settings.scheduler, set_as_default=False), None
    workers = settings.local_workers or 1
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=settings.threads_per_worker,
        processes=True,
        dashboard_address=None,
        resources={"GPU": 1} if settings.needs_gpu else None,
        # one process per slide: keep each worker's torch to its share of the cores
        env={"OMP_NUM_THREADS": str(max(1, _cores() // workers))},
    )
    return Client(cluster, set_as_default=False), cluster


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def predict_cohort(
    slides: Sequence[str | Path],
    model: str | Path,
    out: str | Path,
    options: PredictOptions | None = None,
    settings: CohortSettings | None = None,
    *,
    client: Any = None,
) -> Generator[Progress, None, CohortReport]:
    """Predict every slide as one task on a dask.distributed cluster.

    ``client``: the user's own ``distributed.Client`` (then ``settings.scheduler`` and
    ``settings.local_workers`` are ignored, and the client is left open). Yields progress
    over slides (the message counts tiles); returns a :class:`CohortReport` and writes
    ``OUT/cohort.csv`` (one row per slide).
    """
    options = options or PredictOptions()
    settings = settings or CohortSettings(local_workers=1)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths = [Path(s).resolve() for s in slides]
    model_ref = _absolute_model(model)
    started = time.monotonic()
    own_cluster = None
    own_client = client is None
    if own_client:
        client, own_cluster = _open_client(settings)
    tiles: dict[str, tuple[int, int, int]] = {}  # slide -> (done, total, failed)
    lock = threading.Lock()

    def on_event(event: Any) -> None:
        _, message = event
        if isinstance(message, dict) and message.get("stage") == "tiles":
            with lock:
                tiles[message["slide"]] = (message["done"], message["total"], message["failed"])

    client.subscribe_topic(PROGRESS_TOPIC, on_event)
    run = uuid.uuid4().hex[:8]
    try:
        futures = [
            client.submit(
                slide_task,
                str(path),
                model_ref,
                str(out),
                options,
                settings.device,
                settings.batch_size,
                key=_task_key(run, position, path),
                pure=False,
                resources={"GPU": 1} if settings.needs_gpu else None,
            )
            for position, path in enumerate(paths)
        ]
        reports: dict[int, SlideReport] = {}
        while len(reports) < len(futures):
            for position, future in enumerate(futures):
                if position in reports or not future.done():
                    continue
                reports[position] = _collect(future, paths[position])
            with lock:
                done_tiles = sum(d for d, _, _ in tiles.values())
                total_tiles = sum(t for _, t, _ in tiles.values())
            failed = sum(1 for r in reports.values() if not r.ok)
            yield Progress(
                "slides",
                len(reports) - failed,
                len(futures),
                failed=failed,
                message=f"({done_tiles}/{total_tiles} tiles on running slides)",
            )
            if len(reports) < len(futures):
                time.sleep(settings.poll_seconds)
        workers = sorted(client.scheduler_info().get("workers", {}))
    finally:
        client.unsubscribe_topic(PROGRESS_TOPIC)
        if own_client:
            client.close()
        if own_cluster is not None:
            own_cluster.close()
    ordered = [reports[i] for i in range(len(futures))]
    table = write_cohort_table(ordered, out / COHORT_FILE)
    return CohortReport(ordered, table, time.monotonic() - started, workers)


def _collect(future: Any, slide: Path) -> SlideReport:
    """The task's report, or an error report when the task itself failed or was lost."""
    try:
        report = future.result()
    except Exception as error:  # a bug in one task, or a task lost with its workers
        report = error_report(slide, error)
        report.error = f"{type(error).__name__}: {error}"
    return report


COHORT_COLUMNS = [
    "slide",
    "status",
    "tiles",
    "cached",
    "predicted",
    "failed",
    "seconds",
    "worker",
    "model",
    "domain_verdict",
    "domain_in_fraction",
    "error",
]


def write_cohort_table(reports: Sequence[SlideReport], path: Path) -> Path:
    """``cohort.csv``: one row per slide (replaced on every run: it is a run's status)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COHORT_COLUMNS)
    for r in reports:
        writer.writerow(
            [
                str(r.slide),
                r.status,
                r.tiles_wanted,
                r.tiles_cached,
                r.tiles_predicted,
                r.tiles_failed,
                f"{r.seconds:.2f}",
                r.worker,
                r.model,
                r.domain.verdict if r.domain else "",
                f"{r.domain.in_domain_fraction:.4f}" if r.domain else "",
                r.error,
            ]
        )
    return write_text_atomic(path, buffer.getvalue())
