"""Reader for HER2ST / ST v1 sections: a counts TSV, a spot selection table, a JPEG.

Split out of :mod:`omicslens.core.measured` (which dispatches to it and re-exports
:func:`read_her2st`): one module per layout the user may already have.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from pathlib import Path

import numpy as np

from omicslens.core.measured_expression import (
    ST_SPOT_DIAMETER_UM,
    MeasuredDataError,
    MeasuredExpression,
    _drop_warning,
)
from omicslens.core.measured_fields import _checked_counts, _number, _text_name, _unique


def read_her2st(counts_path: Path) -> MeasuredExpression:
    """A HER2ST section from its counts file; spots and image are found beside it."""
    section = counts_path.name.split(".")[0]
    root = counts_path.parent.parent
    spots_path = root / "spots" / f"{section}_selection.tsv"
    if not spots_path.exists():
        raise MeasuredDataError(counts_path, f"spot table {spots_path} is missing")
    genes, ids, counts = _read_counts_tsv(counts_path)
    positions = _read_spot_table(spots_path)
    keep = [position for position, spot in enumerate(ids) if spot in positions]
    if not keep:
        raise MeasuredDataError(counts_path, f"no spot in the counts matches {spots_path}")
    _drop_warning(counts_path, [spot for spot in ids if spot not in positions], spots_path)
    kept_ids = [ids[position] for position in keep]
    table = np.array([positions[spot] for spot in kept_ids], dtype=np.float64)
    image = root / "images" / f"{section}.jpg"
    return MeasuredExpression(
        spot_ids=kept_ids,
        x=table[:, 0],
        y=table[:, 1],
        genes=genes,
        counts=counts[keep],
        source=f"HER2ST section {section}",
        image=image if image.exists() else None,
        spot_diameter_um=ST_SPOT_DIAMETER_UM,
        array_xy=table[:, 2:4].astype(np.float64),
    )


_SELECTED = {"1": True, "1.0": True, "true": True, "0": False, "0.0": False, "false": False}


def _read_spot_table(path: Path) -> dict[str, tuple[float, float, int, int]]:
    """Selected spots of a ``<S>_selection.tsv``: ``{x}x{y}`` -> (pixel x, y, array x, y)."""
    positions: dict[str, tuple[float, float, int, int]] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter="\t")
            missing = [
                c for c in ("x", "y", "pixel_x", "pixel_y") if c not in (reader.fieldnames or [])
            ]
            if missing:
                raise MeasuredDataError(path, f"spot table has no column {', '.join(missing)}")
            for number, row in enumerate(reader, 2):
                if None in row or None in row.values():
                    raise MeasuredDataError(
                        path, f"row {number} does not have one field per column"
                    )
                selected = str(row.get("selected", "1")).strip().lower()
                if selected not in _SELECTED:
                    raise MeasuredDataError(
                        path, f"row {number}: selected is {selected[:20]!r}, not 0 or 1"
                    )
                if not _SELECTED[selected]:
                    continue
                x, y = (int(_number(path, f"row {number} {c}", row[c], True)) for c in "xy")
                key = f"{x}x{y}"
                if key in positions:
                    raise MeasuredDataError(path, f"row {number}: spot {key} is listed twice")
                px, py = (
                    _number(path, f"row {number} {c}", row[c]) for c in ("pixel_x", "pixel_y")
                )
                positions[key] = (px, py, x, y)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise MeasuredDataError(path, f"cannot read spot table ({error})") from None
    if not positions:
        raise MeasuredDataError(path, "spot table has no selected spot")
    return positions


def _read_counts_tsv(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    opener = gzip.open if path.name.endswith(".gz") else open
    ids: list[str] = []
    rows: list[np.ndarray] = []
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            header = handle.readline().rstrip("\r\n").split("\t")
            genes = [_text_name(path, f"gene column {i + 2}", g) for i, g in enumerate(header[1:])]
            if not genes:
                raise MeasuredDataError(path, "counts table has no gene columns (tab-separated)")
            if all(_is_number(gene) for gene in genes):
                raise MeasuredDataError(
                    path, "the first row holds counts, not gene names (no header?)"
                )
            for number, line in enumerate(handle, 2):
                parts = line.rstrip("\r\n").split("\t")
                if parts == [""]:
                    continue  # a blank line (often the last one)
                if len(parts) != len(header):
                    raise MeasuredDataError(
                        path, f"row {number} has {len(parts)} fields, the header {len(header)}"
                    )
                ids.append(_text_name(path, f"row {number} spot id", parts[0]))
                try:
                    rows.append(np.asarray(parts[1:], dtype=np.float64))
                except ValueError:
                    bad = next(c for c, v in enumerate(parts[1:]) if not _is_number(v))
                    raise MeasuredDataError(
                        path,
                        f"row {number}, gene {genes[bad]}: {parts[bad + 1][:40]!r} is not a count",
                    ) from None
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise MeasuredDataError(path, f"cannot read counts table ({exc})") from exc
    if not rows:
        raise MeasuredDataError(path, "counts table has no spots")
    _unique(path, "spot", ids)
    counts = _checked_counts(path, "counts", np.vstack(rows), (len(ids), len(genes)))
    return genes, ids, counts


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
