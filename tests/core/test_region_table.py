"""The region summary CSV read back by pandas, with names that broke the f-string CSV."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from omicslens.core.exports.region_table import (
    REGION_COLUMNS,
    RegionRow,
    region_table_csv,
    write_region_table,
)

TRICKY = [
    'tumour "core"',
    "stroma, left",
    "two\nlines",
    'all of them: "a", b\r\nc',
    "  leading space",
    "plain",
    "",
    "ünïcödé µm²",
    "=SUM(A1)",
]


def _rows() -> list[RegionRow]:
    return [
        RegionRow(
            region=name,
            area_mm2=0.125 * (i + 1),
            tiles=10 + i,
            tissue_tiles=8 + i,
            predicted=5,
            tissue_fraction=0.8,
            stats={"ERBB2": {"mean": 1.5 + i, "median": 1.0, "sd": math.nan if i == 0 else 0.5}},
            extra={"QuPath area": 123.0, "class": 'Tumor: "P"'},
        )
        for i, name in enumerate(TRICKY)
    ]


def test_tricky_names_round_trip_through_pandas(tmp_path: Path) -> None:
    path = write_region_table(_rows(), tmp_path / "regions.csv")
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"region": str})
    assert len(frame) == len(TRICKY)
    assert frame["region"].fillna("").tolist() == TRICKY
    assert list(frame.columns[: len(REGION_COLUMNS)]) == REGION_COLUMNS
    assert list(frame.columns[len(REGION_COLUMNS) :]) == [
        "mean_ERBB2",
        "median_ERBB2",
        "sd_ERBB2",
        "QuPath area",
        "class",
    ]
    np.testing.assert_allclose(frame["area_mm2"], [0.125 * (i + 1) for i in range(len(TRICKY))])
    assert frame["unpredicted"].tolist() == [3 + i for i in range(len(TRICKY))]
    assert math.isnan(frame["sd_ERBB2"][0]) and frame["sd_ERBB2"][1] == 0.5
    assert (frame["class"] == 'Tumor: "P"').all()
    with pytest.raises(FileExistsError):
        write_region_table(_rows(), path)


def test_plain_dicts_and_explicit_columns() -> None:
    text = region_table_csv(
        [{"region": 'a "b"', "tiles": np.int64(3), "x": np.float32(0.5)}, {"region": "c,d"}],
        columns=["region", "tiles", "x"],
    )
    assert text.splitlines()[0] == "region,tiles,x"
    assert text.splitlines()[1] == '"a ""b""",3,0.5'
    from io import StringIO

    frame = pd.read_csv(StringIO(text))
    assert frame["region"].tolist() == ['a "b"', "c,d"]
    assert frame["tiles"][0] == 3 and math.isnan(frame["tiles"][1])
