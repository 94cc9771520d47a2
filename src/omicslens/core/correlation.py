"""Per-column Pearson and Spearman correlations (predicted against measured expression).

Split out of :mod:`omicslens.core.measured`, which re-exports these names: they are plain
numpy statistics on (spots, genes) arrays and know nothing about where the spots came
from.
"""

from __future__ import annotations

import numpy as np


def pearson_per_column(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Pearson r of each column; NaN where either side is constant."""
    p = predicted - predicted.mean(axis=0)
    m = measured - measured.mean(axis=0)
    denominator = np.sqrt((p * p).sum(axis=0) * (m * m).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (p * m).sum(axis=0) / denominator, np.nan)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks (1-based, float64) of each column of ``values``; ties get their mean rank.

    A 1-D array is ranked as one column. NaN is not supported (drop it first).
    """
    data = np.asarray(values, dtype=np.float64)
    column = data.ndim == 1
    data = data.reshape(len(data), -1)
    ranks = np.empty_like(data)
    for j in range(data.shape[1]):
        order = np.argsort(data[:, j], kind="mergesort")
        ordered = data[order, j]
        # runs of equal values: each gets the mean of the positions it spans
        starts = np.r_[True, ordered[1:] != ordered[:-1]]
        run = np.cumsum(starts) - 1
        first = np.flatnonzero(starts)
        last = np.r_[first[1:], len(ordered)] - 1
        ranks[order, j] = (first[run] + last[run]) / 2.0 + 1.0
    return ranks[:, 0] if column else ranks


def spearman_per_column(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each column of ``x`` with the same column of ``y``
    (or with ``y`` itself when it is 1-D): Pearson r of average-tie ranks; NaN where
    either side is constant."""
    rx = average_ranks(x)
    ry = average_ranks(y)
    rx = rx.reshape(len(rx), -1)
    ry = ry.reshape(len(ry), -1)
    if rx.shape[1] != ry.shape[1]:
        rx, ry = np.broadcast_arrays(rx, ry)
    return np.asarray(pearson_per_column(rx, ry), dtype=np.float64)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays (NaN if either is constant)."""
    return float(spearman_per_column(np.ravel(x), np.ravel(y))[0])
