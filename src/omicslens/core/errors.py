"""Typed errors for everything a user can hand us.

Each error also subclasses the built-in exception a caller would naturally catch
(``FileNotFoundError``, ``ValueError``, ``OSError``), the way WSInfer's ``errors.py``
does, so generic code keeps working while the GUI and CLI can show a precise message.
Every slide error names the file it is about.
"""

from __future__ import annotations

import os
from pathlib import Path


class OmicsLensError(Exception):
    """Base class of all errors raised on purpose by OmicsLens."""


class SlideError(OmicsLensError):
    """A problem with one slide file; ``path`` names it and the message starts with it."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class SlideNotFoundError(SlideError, FileNotFoundError):
    """The slide path does not exist."""


class UnsupportedSlideError(SlideError, ValueError):
    """The file exists but is not an image format OmicsLens reads."""


class CorruptSlideError(SlideError, ValueError):
    """The file claims a supported format but its structure or pixel data is broken."""


class MissingResolutionError(SlideError, ValueError):
    """The slide has no usable pixel size and the caller did not give one.

    We never guess a resolution: every physical measurement (tile grid at the model's
    spacing, areas in mm^2, scale bar) depends on it. ``hint`` carries whatever related
    information the file does have (for example an objective magnification) so the user
    can make an informed choice.
    """

    def __init__(self, path: str | Path, problem: str, hint: str | None = None) -> None:
        self.hint = hint
        message = problem if hint is None else f"{problem} ({hint})"
        super().__init__(
            path,
            f"{message}. Pass the resolution explicitly: mpp=<microns per pixel> in Python, "
            "--mpp X on the command line; napari asks for it.",
        )


class InvalidResolutionError(OmicsLensError, ValueError):
    """A resolution given by a user is not a positive, finite number of microns per pixel."""


class SlideReadError(SlideError, OSError):
    """Reading pixels failed after the slide was opened (for example a bad tile)."""


class OutputWriteError(OmicsLensError, OSError):
    """An output could not be written: read-only folder, full disk, no permission...

    Raised by the atomic writers with the file and the system's reason (for example
    ``out/tiles.csv: cannot write: No space left on device``); nothing half-written is
    left behind, and an earlier complete file at that path is kept."""

    def __init__(self, path: str | os.PathLike[str], error: OSError) -> None:
        reason = error.strerror or str(error)
        super().__init__(f"{Path(path)}: cannot write: {reason}")
        self.path = Path(path)
        self.errno = error.errno
