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
    """Entry point: exit with :func:`main`'s status.

    After a Ctrl-C the process leaves without the interpreter's teardown. Why: the
    interrupt can land while zarr's background event loop (tifffile's zarr store) is
    awaiting a chunk; tearing down then logs "Task was destroyed but it is pending!"
    under our one line (seen in CI), and torch's pool can abort. Every output is written
    atomically, so nothing half-written is left behind by skipping the teardown.
    """
    code = main()
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
