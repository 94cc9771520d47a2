"""Checks for the fields of a measured-expression table, shared by every layout's reader.

Split out of :mod:`omicslens.core.measured`: HER2ST, Visium and AnnData readers all turn
cells, names, count matrices and positions into typed values the same way, and every
malformed one becomes a :class:`~omicslens.core.measured_expression.MeasuredDataError`
naming the file and the field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.measured_expression import MeasuredDataError

#: a dense spots x genes matrix larger than this is refused (4 GiB of float32)
MAX_DENSE_VALUES = 2**30


def _number(path: Path, where: str, text: str, integer: bool = False) -> float:
    """A finite number from a table cell (an integer where ``integer``), else a typed error."""
    try:
        value = float(text)
    except ValueError:
        raise MeasuredDataError(path, f"{where}: {text[:40]!r} is not a number") from None
    if not math.isfinite(value) or (integer and (value != int(value) or abs(value) >= 2**31)):
        kind = "a whole number (array coordinate)" if integer else "a finite number"
        raise MeasuredDataError(path, f"{where}: {text[:40]!r} is not {kind}")
    return value


def _text_name(path: Path, where: str, value: Any) -> str:
    """A gene name or spot id: printable text (bytes must be UTF-8), surrounding blanks cut."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise MeasuredDataError(path, f"{where}: {value[:40]!r} is not UTF-8 text") from None
    if not isinstance(value, str):
        raise MeasuredDataError(path, f"{where}: {value!r} is not text")
    name = value.strip().lstrip("\ufeff")
    if not name or not name.isprintable():
        raise MeasuredDataError(path, f"{where}: {value[:40]!r} is not a printable name")
    return name


def _unique(path: Path, what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise MeasuredDataError(path, f"{what} {name!r} appears twice")
        seen.add(name)


def _checked_counts(path: Path, field: str, counts: Any, shape: tuple[int, int]) -> np.ndarray:
    """(spots, genes) counts as float32: numeric, of ``shape``, finite and non-negative."""
    array = np.asarray(counts)
    if array.dtype.kind not in "biuf":
        raise MeasuredDataError(path, f"{field} holds {array.dtype} values, not numbers")
    if array.shape != shape:
        raise MeasuredDataError(path, f"{field} has shape {array.shape}, expected {shape}")
    with np.errstate(over="ignore"):
        values = array.astype(np.float32)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        spot, gene = (int(v) for v in np.argwhere(bad)[0])
        raise MeasuredDataError(
            path,
            f"{field}: {int(bad.sum())} counts are negative, NaN or beyond float32 "
            f"(first at spot {spot}, gene {gene}: {array[spot, gene]!r})",
        )
    return values


def _checked_positions(path: Path, field: str, xy: Any, spots: int) -> np.ndarray:
    try:
        array = np.asarray(xy, dtype=np.float64)
    except (TypeError, ValueError):
        raise MeasuredDataError(path, f"{field} holds values that are not numbers") from None
    if array.ndim != 2 or array.shape[0] != spots or array.shape[1] < 2:
        raise MeasuredDataError(
            path, f"{field} has shape {array.shape}, expected ({spots}, 2) pixel positions"
        )
    if not np.isfinite(array[:, :2]).all():
        spot = int(np.flatnonzero(~np.isfinite(array[:, :2]).all(axis=1))[0])
        raise MeasuredDataError(path, f"{field}: spot {spot} has a NaN or infinite position")
    return array[:, :2]
