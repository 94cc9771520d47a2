"""Typed errors for model bundles, weights and devices.

Same style as :mod:`omicslens.core.errors`: every error is an :class:`OmicsLensError`
*and* the built-in a caller would naturally catch (``ValueError``, ``FileNotFoundError``),
and every bundle error starts its message with the file it is about, so a user can fix
the right file without reading a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from omicslens.core.errors import OmicsLensError


class BundleError(OmicsLensError, ValueError):
    """A problem with one model bundle; ``path`` names the file or folder at fault."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class BundleNotFoundError(BundleError, FileNotFoundError):
    """Neither a local bundle folder nor a Hugging Face repo in the local cache."""


@dataclass(frozen=True)
class ConfigProblem:
    """One broken field of a ``config.json``.

    ``field`` is a JSON path like ``transform[1].arguments.mean``.
    """

    field: str
    message: str

    def __str__(self) -> str:
        return f"field '{self.field}': {self.message}"


class BundleConfigError(BundleError):
    """``config.json`` is missing, not JSON, or has broken fields.

    Validation collects *every* problem before raising, so a user fixes the file in one
    pass: ``problems`` lists them all in file order, ``field`` is the first one's path
    (handy for tests and for highlighting one field in a GUI).
    """

    def __init__(self, path: str | Path, problems: Iterable[ConfigProblem]) -> None:
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("BundleConfigError needs at least one problem")
        self.field = self.problems[0].field
        if len(self.problems) == 1:
            text = str(self.problems[0])
        else:
            listed = "\n".join(f"  - {problem}" for problem in self.problems)
            text = f"{len(self.problems)} problems:\n{listed}"
        super().__init__(path, text)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(problem.field for problem in self.problems)


class WeightsError(BundleError):
    """The weights file cannot be loaded, is refused as unsafe, or does not fit the model."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """The bundle names (or lacks) a weights file that is not there."""


class StateDictMismatchError(WeightsError):
    """A state dict does not fit the architecture: names every missing/unexpected key.

    Strict loading only: a silently half-loaded model would give plausible-looking but
    wrong predictions, which is worse than no predictions.
    """

    def __init__(
        self,
        path: str | Path,
        architecture: str,
        missing: Sequence[str] = (),
        unexpected: Sequence[str] = (),
        mismatched: Sequence[str] = (),
    ) -> None:
        self.missing = tuple(missing)
        self.unexpected = tuple(unexpected)
        self.mismatched = tuple(mismatched)
        parts = []
        if self.missing:
            parts.append(f"missing keys: {', '.join(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected keys: {', '.join(self.unexpected)}")
        if self.mismatched:
            parts.append(f"shape mismatches: {', '.join(self.mismatched)}")
        super().__init__(
            path,
            f"state dict does not match architecture '{architecture}' ({'; '.join(parts)})",
        )


class ArchitectureError(OmicsLensError, ValueError):
    """An architecture name we cannot build (unknown, or needs ``timm``) or bad arguments."""


class DeviceError(OmicsLensError, ValueError):
    """A requested compute device (or precision) is not available on this machine."""
