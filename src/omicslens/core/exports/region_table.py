"""Region summaries as CSV, written with the ``csv`` module.

Region names are user text: a quote, comma or newline in a name is quoted as RFC 4180
says, so ``pandas.read_csv`` (and spreadsheets) read every row back with the same columns.
Rows are plain: :class:`RegionRow` or dicts, so the dock and the CLI share one writer.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.atomic import write_bytes_atomic

#: the leading columns, in order; per-output and measurement columns follow
REGION_COLUMNS = [
    "region",
    "area_mm2",
    "tiles",
    "tissue_tiles",
    "predicted",
    "unpredicted",
    "tissue_fraction",
]


@dataclass
class RegionRow:
    """One region: its name, tile counts and per-output statistics.

    ``stats`` maps an output to ``{"mean": .., "median": .., "sd": ..}`` (columns
    ``mean_<output>``, ...); ``extra`` holds any further columns, e.g. the input
    region's own QuPath measurements.
    """

    region: str
    area_mm2: float
    tiles: int
    tissue_tiles: int
    predicted: int
    tissue_fraction: float
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "region": self.region,
            "area_mm2": self.area_mm2,
            "tiles": self.tiles,
            "tissue_tiles": self.tissue_tiles,
            "predicted": self.predicted,
            "unpredicted": self.tissue_tiles - self.predicted,
            "tissue_fraction": self.tissue_fraction,
        }
        for output, values in self.stats.items():
            for stat, value in values.items():
                row[f"{stat}_{output}"] = value
        row.update(self.extra)
        return row


def _cell(value: Any) -> Any:
    """Numbers as text (6 significant digits; NaN and None as empty cells), text as is."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return "" if math.isnan(number) else f"{number:.6g}"
    return value


def region_table_csv(
    rows: Iterable[RegionRow | Mapping[str, Any]], columns: Sequence[str] | None = None
) -> str:
    """The CSV text: ``columns`` (default: the standard columns, then every other key in
    the order first seen); missing values and NaN are empty cells."""
    dicts = [row.as_dict() if isinstance(row, RegionRow) else dict(row) for row in rows]
    if columns is None:
        names = [c for c in REGION_COLUMNS if any(c in d for d in dicts)] or list(REGION_COLUMNS)
        for d in dicts:
            names.extend(k for k in d if k not in names)
        columns = names
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    for d in dicts:
        writer.writerow([_cell(d.get(c)) for c in columns])
    return buffer.getvalue()


def write_region_table(
    rows: Iterable[RegionRow | Mapping[str, Any]],
    path: str | os.PathLike[str],
    overwrite: bool = False,
    columns: Sequence[str] | None = None,
) -> Path:
    """Write the region summary CSV atomically (UTF-8); refuses to replace a file unless
    ``overwrite``."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (--force) to replace it")
    return write_bytes_atomic(target, region_table_csv(rows, columns).encode("utf-8"))
