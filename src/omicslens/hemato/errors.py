"""Typed errors of the hematology layer, in the style of :mod:`omicslens.core.errors`.

Each error is an :class:`~omicslens.core.errors.OmicsLensError` and also the built-in a
caller would naturally catch, and each message starts with the file it is about.
"""

from __future__ import annotations

from pathlib import Path

from omicslens.core.errors import OmicsLensError


class HematoError(OmicsLensError):
    """Base class of the errors raised on purpose by :mod:`omicslens.hemato`."""


class ResolutionEstimateError(HematoError, ValueError):
    """The pixel size could not be estimated from red cells (too few, or implausible)."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        where = "" if path is None else f"{path}: "
        super().__init__(
            f"{where}{problem}. Pass the resolution explicitly: --mpp X on the command "
            "line, mpp=<microns per pixel> in Python."
        )


class UnsupportedSmearError(HematoError, ValueError):
    """The image cannot be analysed as a brightfield smear (not 8-bit RGB)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}")


class OutputExistsError(HematoError, FileExistsError):
    """An output file is already there and overwriting was not asked for."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = list(paths)
        listed = ", ".join(str(path) for path in self.paths)
        super().__init__(f"{listed}: already exists; refusing to overwrite (use --force)")


class AggregatorBundleError(HematoError, ValueError):
    """A patient-level (MIL) aggregator bundle is missing, malformed or does not fit."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class EncoderUnavailableError(HematoError, ImportError):
    """A cell encoder needs a package that is not installed (for example timm)."""


class DatasetLayoutError(HematoError, ValueError):
    """A folder handed to a benchmark or a training run does not have the expected layout."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}")
