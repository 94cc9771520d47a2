"""Progress lines on stderr for the long commands.

Why: on a terminal one line is redrawn in place with ``\\r``; in a log file or a pipe
(a cluster job, ``2> log``) every redraw became a new line, so a run repeated
``tiles: 32/598`` a dozen times. Off a terminal a line is written only when its text
changes, and then one per line.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO


class ProgressPrinter:
    """Callable for :func:`omicslens.app.jobs.run_job`'s ``on_progress``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.last = ""

    def __call__(self, step: Any) -> None:
        text = f"  {step.describe()}"
        if text == self.last:
            return
        self.last = text
        if _is_terminal(self.stream):
            print(f"\r{text}", end="", file=self.stream, flush=True)
        else:
            print(text, file=self.stream, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False
