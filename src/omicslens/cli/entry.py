"""The ``omicslens`` console script.

Why a module of its own: importing :mod:`omicslens.cli.main` pulls in numpy, dask and
torch, which takes seconds. A Ctrl-C in those seconds arrived before ``main``'s handler
and printed a 30-line import traceback (2 of 8 measured Ctrl-Cs on the bundled sample).
Here the import itself is inside the handler; nothing heavy is imported at module level.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from omicslens.cli.main import main as run

        return run(argv)
    except KeyboardInterrupt:
        print("\nomicslens: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def console() -> None:
    """Entry point: exit with :func:`main`'s status, without the interpreter's teardown.

    Why: the teardown frees torch, joins zarr's event-loop threads and runs the garbage
    collector over everything, and it cost 0.9 s of wall time after the last output of
    a 10.8 s ``omicslens predict`` (measured against WSInfer, docs/benchmarks.md). After
    a Ctrl-C it is worse: the interrupt can land while zarr's background loop awaits a
    chunk, and tearing down then logs "Task was destroyed but it is pending!" under our
    one line (seen in CI), or torch's pool aborts. Every output is written atomically
    and closed before :func:`main` returns, so nothing is lost by skipping the teardown;
    logging handlers and the standard streams are flushed first. ``omicslens view``
    keeps the normal exit, since napari and Qt clean up after their window.
    """
    code = main()
    if len(sys.argv) > 1 and sys.argv[1] == "view" and code != EXIT_INTERRUPTED:
        sys.exit(code)
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
