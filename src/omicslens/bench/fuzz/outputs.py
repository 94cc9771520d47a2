"""Is what a successful ``omicslens predict`` wrote valid? ``invalid-output`` otherwise.

``tiles.csv``: a header ``minx, miny, width, height, pred_...`` and rows of exactly as
many fields, integer boxes and finite numbers (a NaN, an empty cell or "inf" is not
data). ``tiles.geojson.gz``: strict JSON (no bare ``NaN`` tokens), one feature per row,
finite measurements. ``regions.csv`` / ``regions.geojson`` likewise, when present.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from pathlib import Path
from typing import Any

from omicslens.bench.fuzz.runner import Outcome, traceback_in
from omicslens.bench.fuzz.slides import classify_refusal

BOX = ["minx", "miny", "width", "height"]


def _strict_json(data: bytes) -> Any:
    def refuse(token: str) -> Any:
        raise ValueError(f"bare {token} token")

    return json.loads(data, parse_constant=refuse)


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _invalid(file: Path, problem: str) -> Outcome:
    return "invalid-output", f"{file.name}: {problem}"


def _read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def check_tile_outputs(folder: Path) -> Outcome:
    """``tiles.csv`` and ``tiles.geojson.gz`` in a slide's output folder."""
    table = folder / "tiles.csv"
    try:
        rows = _read_csv(table)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        return _invalid(table, f"unreadable: {error}")
    if not rows or rows[0][:4] != BOX or len(rows[0]) < 5:
        return _invalid(table, f"bad header {rows[:1]}")
    header = rows[0]
    if len(set(header)) != len(header):
        return _invalid(table, "duplicate column names")
    for number, row in enumerate(rows[1:], 1):
        if len(row) != len(header):
            return _invalid(table, f"row {number} has {len(row)} fields, header {len(header)}")
        if not all(cell.lstrip("-").isdigit() for cell in row[:4]):
            return _invalid(table, f"row {number}: box {row[:4]} is not integers")
        if not all(_finite(cell) for cell in row[4:]):
            return _invalid(table, f"row {number}: non-finite value written as data {row[4:]}")
    tiles = folder / "tiles.geojson.gz"
    if tiles.exists():
        try:
            document = _strict_json(gzip.decompress(tiles.read_bytes()))
        except (OSError, ValueError, EOFError) as error:
            return _invalid(tiles, f"not strict JSON: {error}")
        features = document.get("features") if isinstance(document, dict) else None
        if not isinstance(features, list) or len(features) != len(rows) - 1:
            return _invalid(tiles, f"{len(features or [])} features for {len(rows) - 1} rows")
        for feature in features:
            values = feature.get("properties", {}).get("measurements", {}).values()
            if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
                return _invalid(tiles, "a measurement that is not a finite number")
    return check_region_outputs(folder)


def check_region_outputs(folder: Path) -> Outcome:
    """``regions.csv`` and ``regions.geojson`` when ``--regions`` wrote them."""
    table = folder / "regions.csv"
    if not table.exists():
        return "ok", ""
    try:
        rows = _read_csv(table)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        return _invalid(table, f"unreadable: {error}")
    if len(rows) < 2:
        return _invalid(table, "no region rows")
    header = rows[0]
    for number, row in enumerate(rows[1:], 1):
        if len(row) != len(header):
            return _invalid(table, f"row {number} has {len(row)} fields, header {len(header)}")
        for name, cell in zip(header, row, strict=True):
            if cell.strip().lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
                return _invalid(table, f"row {number}: {name} = {cell!r} written as data")
    geojson = folder / "regions.geojson"
    try:
        document = _strict_json(geojson.read_bytes())
    except (OSError, ValueError) as error:
        return _invalid(geojson, f"not strict JSON: {error}")
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list) or len(features) != len(rows) - 1:
        return _invalid(geojson, f"{len(features or [])} features for {len(rows) - 1} rows")
    from omicslens.core.regions import read_regions

    try:
        read_regions(geojson)
    except Exception as error:  # what we write must read back
        return _invalid(geojson, f"does not read back: {type(error).__name__}: {error}")
    return "ok", ""


def classify_predict(rc: int, out: str, err: str, path: Path, folder: Path) -> Outcome:
    """A ``predict`` run on a fuzzed input: exit 0 must leave valid outputs in ``folder``;
    anything else must be a typed refusal naming ``path``."""
    printed = traceback_in(err)
    if printed is not None:
        return printed
    if rc == 0:
        return check_tile_outputs(folder)
    return classify_refusal(rc, out, err, path, json_error=False)
