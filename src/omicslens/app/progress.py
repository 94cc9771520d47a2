"""Progress records that jobs yield, and a plain runner for them (CLI, tests, workers)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

Report = TypeVar("Report")


@dataclass(frozen=True)
class Progress:
    """How far a job is: ``done`` of ``total`` units of ``stage`` (tiles, spots, cells...).

    ``failed`` counts units that could not be done (they are part of neither ``done`` nor
    the results), so a front end never shows "44/44" for a slide where tiles failed.
    """

    stage: str
    done: int
    total: int
    failed: int = 0
    message: str = ""

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, (self.done + self.failed) / self.total)

    def describe(self) -> str:
        text = f"{self.stage}: {self.done}/{self.total}"
        if self.failed:
            text += f" ({self.failed} failed)"
        return f"{text} {self.message}".rstrip()


Job = Generator[Progress, None, Report]


def run_job(job: Job[Report], on_progress: Callable[[Progress], None] | None = None) -> Report:
    """Iterate ``job`` to the end and return its report (``StopIteration.value``)."""
    while True:
        try:
            step = next(job)
        except StopIteration as finished:
            return finished.value
        if on_progress is not None:
            on_progress(step)
