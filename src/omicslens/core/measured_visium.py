"""Reader for 10x Visium Space Ranger folders: the HDF5 matrix and ``spatial/`` tables.

Split out of :mod:`omicslens.core.measured` (which dispatches to it and re-exports
:func:`read_visium`): one module per layout the user may already have. ``h5py`` is
imported only when a matrix is read.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.measured_expression import (
    VISIUM_SPOT_DIAMETER_UM,
    MeasuredDataError,
    MeasuredExpression,
    _drop_warning,
)
from omicslens.core.measured_fields import (
    MAX_DENSE_VALUES,
    _checked_counts,
    _number,
    _text_name,
    _unique,
)


def read_visium(folder: Path) -> MeasuredExpression:
    """A Space Ranger output folder (filtered matrix + spatial/)."""
    matrix = folder / "filtered_feature_bc_matrix.h5"
    if not matrix.exists():
        raise MeasuredDataError(folder, "filtered_feature_bc_matrix.h5 is missing")
    barcodes, names, counts = _read_10x_matrix(matrix)
    spatial = folder / "spatial"
    positions_file = next(
        (
            spatial / n
            for n in ("tissue_positions.csv", "tissue_positions_list.csv")
            if (spatial / n).exists()
        ),
        None,
    )
    if positions_file is None:
        raise MeasuredDataError(folder, "spatial/tissue_positions(.csv|_list.csv) is missing")
    positions = _read_tissue_positions(positions_file)
    keep = [position for position, code in enumerate(barcodes) if code in positions]
    if not keep:
        raise MeasuredDataError(matrix, f"no barcode of the matrix is in {positions_file}")
    _drop_warning(matrix, [code for code in barcodes if code not in positions], positions_file)
    table = np.array([positions[barcodes[position]] for position in keep], dtype=np.float64)
    diameter = None
    scalefactors = spatial / "scalefactors_json.json"
    notes: dict[str, Any] = {}
    if scalefactors.exists():
        factors = _read_scalefactors(scalefactors)
        notes["scalefactors"] = factors
        if "spot_diameter_fullres" in factors:
            # 55 um spots: the full-resolution pixel size follows from their diameter
            notes["mpp_from_spot_diameter"] = VISIUM_SPOT_DIAMETER_UM / float(
                factors["spot_diameter_fullres"]
            )
        diameter = VISIUM_SPOT_DIAMETER_UM
    return MeasuredExpression(
        spot_ids=[barcodes[position] for position in keep],
        x=table[:, 0],
        y=table[:, 1],
        genes=names,
        counts=counts[keep],
        source=f"Visium {folder.name}",
        spot_diameter_um=diameter,
        notes=notes,
    )


def _dataset(path: Path, group: Any, key: str, kind: str, ndim: int = 1) -> np.ndarray:
    """``group[key]`` read whole, checked to be a ``kind`` (numpy kinds) array of ``ndim``."""
    import h5py

    item = group.get(key)
    if not isinstance(item, h5py.Dataset):
        raise MeasuredDataError(path, f"{group.name}/{key} is missing (not a dataset)")
    if item.ndim != ndim or item.dtype.kind not in kind:
        raise MeasuredDataError(
            path, f"{item.name} is a {item.ndim}-D {item.dtype} dataset, not {ndim}-D {kind}"
        )
    if item.size > MAX_DENSE_VALUES:
        raise MeasuredDataError(path, f"{item.name} has {item.size} values; too large")
    return np.asarray(item[()])


def _read_10x_matrix(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            group = h5.get("matrix")
            if not isinstance(group, h5py.Group):
                raise MeasuredDataError(path, "no matrix group (not a 10x feature-barcode matrix)")
            features = group.get("features")
            if not isinstance(features, h5py.Group):
                raise MeasuredDataError(path, "/matrix/features is missing")
            raw_codes = _dataset(path, group, "barcodes", "SOU")
            raw_names = _dataset(path, features, "name", "SOU")
            shape = _dataset(path, group, "shape", "iu")
            data = _dataset(path, group, "data", "biuf")
            indices = _dataset(path, group, "indices", "iu")
            indptr = _dataset(path, group, "indptr", "iu")
    except (OSError, RuntimeError, ValueError) as error:
        if isinstance(error, MeasuredDataError):
            raise
        raise MeasuredDataError(path, f"not a readable HDF5 matrix ({error})") from None
    barcodes = [_text_name(path, f"barcode {i}", b) for i, b in enumerate(raw_codes)]
    names = [_text_name(path, f"feature name {i}", n) for i, n in enumerate(raw_names)]
    _unique(path, "barcode", barcodes)
    expected = (len(names), len(barcodes))
    if shape.shape != (2,) or tuple(int(v) for v in shape) != expected:
        raise MeasuredDataError(
            path,
            f"/matrix/shape is {shape.tolist()}, but it holds {expected[0]} features "
            f"x {expected[1]} barcodes",
        )
    n_genes, n_cells = expected
    if n_genes * n_cells > MAX_DENSE_VALUES:
        raise MeasuredDataError(path, f"{n_cells} spots x {n_genes} genes is too large to load")
    indptr = indptr.astype(np.int64)
    if (
        len(indptr) != n_cells + 1
        or indptr[0] != 0
        or np.any(np.diff(indptr) < 0)
        or indptr[-1] != len(data)
        or len(indices) != len(data)
    ):
        raise MeasuredDataError(
            path,
            f"/matrix/indptr ({len(indptr)} entries) does not index /matrix/data "
            f"({len(data)} values) for {n_cells} barcodes",
        )
    if len(indices) and (indices.min() < 0 or indices.max() >= n_genes):
        raise MeasuredDataError(
            path, f"/matrix/indices has a feature index outside 0..{n_genes - 1}"
        )
    counts = np.zeros((n_cells, n_genes), dtype=np.float64)
    rows = np.repeat(np.arange(n_cells), np.diff(indptr))
    counts[rows, indices.astype(np.int64)] = data
    return barcodes, names, _checked_counts(path, "/matrix/data", counts, (n_cells, n_genes))


def _read_tissue_positions(path: Path) -> dict[str, tuple[float, float, int, int]]:
    """barcode -> (pixel x, pixel y, array col, array row) from a tissue positions CSV."""
    positions: dict[str, tuple[float, float, int, int]] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for number, row in enumerate(csv.reader(handle), 1):
                if not row or row == [""] or row[0] == "barcode":
                    continue
                if len(row) < 6:
                    raise MeasuredDataError(path, f"row {number} has {len(row)} fields, not 6")
                barcode = _text_name(path, f"row {number} barcode", row[0])
                if barcode in positions:
                    raise MeasuredDataError(
                        path, f"row {number}: barcode {barcode} is listed twice"
                    )
                where = f"row {number}"
                array_row, array_col = (
                    int(_number(path, f"{where} {c}", row[i], True))
                    for i, c in ((2, "array_row"), (3, "array_col"))
                )
                pixel_row, pixel_col = (
                    _number(path, f"{where} {c}", row[i])
                    for i, c in ((4, "pxl_row_in_fullres"), (5, "pxl_col_in_fullres"))
                )
                positions[barcode] = (pixel_col, pixel_row, array_col, array_row)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise MeasuredDataError(path, f"cannot read tissue positions ({error})") from None
    if not positions:
        raise MeasuredDataError(path, "no spot positions")
    return positions


def _read_scalefactors(path: Path) -> dict[str, Any]:
    try:
        factors = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise MeasuredDataError(path, f"not readable JSON ({type(error).__name__})") from None
    if not isinstance(factors, dict):
        raise MeasuredDataError(path, "expected a JSON object of scale factors")
    if "spot_diameter_fullres" in factors:
        value = factors["spot_diameter_fullres"]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (math.isfinite(value) and value > 0)
        ):
            raise MeasuredDataError(
                path, f"spot_diameter_fullres must be a positive number, got {value!r}"
            )
    return factors
