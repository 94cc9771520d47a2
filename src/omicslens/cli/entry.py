"""The ``omicslens`` console script.

Why a module of its own: importing :mod:`omicslens.cli.main` pulls in numpy, dask and
torch, which takes seconds. A Ctrl-C in those seconds arrived before ``main``'s handler
and printed a 30-line import traceback (2 of 8 measured Ctrl-Cs on the bundled sample).
Here the import itself is inside the handler; nothing heavy is imported at module level.
"""

from __future__ import annotations

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
    """Entry point: exit with :func:`main`'s status."""
    sys.exit(main())
