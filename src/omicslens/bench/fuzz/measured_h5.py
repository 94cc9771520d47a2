"""The HDF5 measured-expression sources of :mod:`.measured` and their mutations: a Space
Ranger-style Visium folder and an AnnData ``.h5ad`` written from the real HER2ST cut."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from omicslens.bench.fuzz.measured import (
    MPP,
    Edit,
    _case,
    _prefixed,
    _rewrite,
    _table_cases,
    _to_directory,
)
from omicslens.bench.fuzz.runner import Case
from omicslens.bench.fuzz.slides import Source, _flip, _truncate


def write_visium(folder: Path, measured: Any) -> Path:
    """A Space Ranger-style folder holding ``measured`` (CSC matrix, genes x barcodes)."""
    import h5py
    import numpy as np

    root = folder / "visium"
    (root / "spatial").mkdir(parents=True, exist_ok=True)
    counts = np.asarray(measured.counts, dtype=np.int32)
    barcodes = [f"{s}-1" for s in measured.spot_ids]
    indptr, indices, data = [0], [], []
    for row in counts:
        nonzero = np.flatnonzero(row)
        indices += nonzero.tolist()
        data += row[nonzero].tolist()
        indptr.append(len(indices))
    with h5py.File(root / "filtered_feature_bc_matrix.h5", "w") as h5:
        group = h5.create_group("matrix")
        group["barcodes"] = np.array([b.encode() for b in barcodes])
        group["data"] = np.array(data, dtype=np.int32)
        group["indices"] = np.array(indices, dtype=np.int64)
        group["indptr"] = np.array(indptr, dtype=np.int64)
        group["shape"] = np.array([counts.shape[1], counts.shape[0]], dtype=np.int32)
        features = group.create_group("features")
        features["name"] = np.array([g.encode() for g in measured.genes])
        features["id"] = np.array([f"ENSG{i:011d}".encode() for i in range(len(measured.genes))])
    lines = ["barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres"]
    for code, (ax, ay), x, y in zip(
        barcodes, measured.array_xy, measured.x, measured.y, strict=True
    ):
        lines.append(f"{code},1,{int(ay)},{int(ax)},{y:.2f},{x:.2f}")
    (root / "spatial" / "tissue_positions.csv").write_text("\n".join(lines) + "\n")
    factors = {"spot_diameter_fullres": 55.0 / MPP, "tissue_hires_scalef": 0.5}
    (root / "spatial" / "scalefactors_json.json").write_text(json.dumps(factors))
    return root


def write_h5ad(path: Path, measured: Any, change: Callable[[Any], object] | None = None) -> Path:
    import anndata
    import numpy as np
    import pandas as pd

    adata = anndata.AnnData(
        X=np.log1p(measured.counts).astype(np.float32),
        obs=pd.DataFrame(index=list(measured.spot_ids)),
        var=pd.DataFrame(index=list(measured.genes)),
    )
    adata.layers["counts"] = measured.counts.astype(np.float32)
    adata.obsm["spatial"] = np.c_[measured.x, measured.y].astype(np.float64)
    if change is not None:
        change(adata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata.write_h5ad(path)
    return path


def _h5_edit(relative: str, change: Callable[[Any], object]) -> Edit:
    def edit(root: Path) -> None:
        import h5py

        with h5py.File(root / relative if relative else root, "r+") as h5:
            change(h5)

    return edit


def _replace(key: str, value: Any) -> Callable[[Any], None]:
    def change(h5: Any) -> None:
        if key in h5:
            del h5[key]
        if value is not None:
            h5[key] = value

    return change


def visium_cases(source: Source) -> list[Case]:
    import numpy as np

    cases: list[Case] = []

    def add(kind: str, detail: str, edit: Edit, hang: bool = False) -> None:
        cases.append(_case(source, kind, detail, edit, hang))

    h5 = "filtered_feature_bc_matrix.h5"
    for key in (
        "matrix",
        "matrix/barcodes",
        "matrix/data",
        "matrix/indptr",
        "matrix/shape",
        "matrix/features",
        "matrix/features/name",
        "matrix/indices",
    ):
        add("h5-missing", key.replace("/", "."), _h5_edit(h5, _replace(key, None)))
    for detail, key, value in (
        ("shape-huge", "matrix/shape", np.array([2**31 - 1, 2**31 - 1], np.int64)),
        ("shape-small", "matrix/shape", np.array([3, 2], np.int32)),
        ("shape-negative", "matrix/shape", np.array([-1, 25], np.int64)),
        ("shape-3d", "matrix/shape", np.array([205, 25, 2], np.int32)),
        ("shape-str", "matrix/shape", np.array([b"a", b"b"])),
        ("indptr-short", "matrix/indptr", np.array([0, 5], np.int64)),
        ("indptr-past-end", "matrix/indptr", np.arange(26, dtype=np.int64) * 10**6),
        ("indptr-decreasing", "matrix/indptr", np.arange(26, dtype=np.int64)[::-1]),
        ("indices-out-of-range", "matrix/indices", np.full(5000, 10**6, np.int64)),
        ("indices-negative", "matrix/indices", np.full(5000, -3, np.int64)),
        ("data-float-nan", "matrix/data", np.full(5000, np.nan)),
        ("data-negative", "matrix/data", np.full(5000, -4, np.int32)),
        ("data-inf", "matrix/data", np.full(5000, np.inf)),
        ("data-str", "matrix/data", np.array([b"x"] * 5000)),
        ("barcodes-int", "matrix/barcodes", np.arange(25)),
        ("barcodes-duplicate", "matrix/barcodes", np.array([b"14x12-1"] * 25)),
        ("barcodes-latin1", "matrix/barcodes", np.array([b"\xe9\xff-1"] * 25)),
        ("barcodes-short", "matrix/barcodes", np.array([b"x-1"])),
        ("names-latin1", "matrix/features/name", np.array([b"G\xe9\xff"] * 205)),
        ("names-int", "matrix/features/name", np.arange(205)),
        ("names-short", "matrix/features/name", np.array([b"ERBB2"])),
        ("names-2d", "matrix/features/name", np.array([[b"A", b"B"]] * 205)),
        ("data-scalar", "matrix/data", np.int32(3)),
    ):
        add("h5-value", detail, _h5_edit(h5, _replace(key, value)))
    add("h5-value", "matrix-is-dataset", _h5_edit(h5, _replace("matrix", np.zeros(3))))
    size = (source.path / h5).stat().st_size
    for cut in (0, 8, 512, size // 2, size - 10):
        add("h5-file", f"truncate-{cut}", _rewrite(h5, partial(_truncate, cut=cut)))
    for index, position in enumerate((600, size // 3, size // 2, size - 200)):
        add(
            "h5-file",
            f"flip-{index}",
            _rewrite(h5, partial(_flip, positions=[position], masks=[0xFF])),
        )
    add("h5-file", "missing", lambda root: (root / h5).unlink())
    positions = "spatial/tissue_positions.csv"
    _table_cases(
        _prefixed(add, "positions"),
        positions,
        False,
        {"array_row": 2, "pixel_row": 4, "pixel_col": 5},
    )
    add(
        "positions-file",
        "list-name",
        lambda r: (r / positions).rename(r / "spatial" / "tissue_positions_list.csv"),
    )
    factors = "spatial/scalefactors_json.json"
    for detail, text in (
        ("zero", '{"spot_diameter_fullres": 0}'),
        ("negative", '{"spot_diameter_fullres": -80}'),
        ("nan", '{"spot_diameter_fullres": NaN}'),
        ("inf", '{"spot_diameter_fullres": Infinity}'),
        ("string", '{"spot_diameter_fullres": "eighty"}'),
        ("null", '{"spot_diameter_fullres": null}'),
        ("list", "[1, 2]"),
        ("truncated", '{"spot_diameter_fullres": 8'),
        ("empty", ""),
        ("not-utf8", '{"spot_diameter_fullres": 80, "x": "\xe9"}'),
        ("deep", "[" * 100_000 + "]" * 100_000),
    ):
        data = text.encode("latin-1")
        add("scalefactors", detail, _write_bytes(factors, data))
    return cases


def h5ad_cases(source: Source) -> list[Case]:
    import numpy as np

    cases: list[Case] = []

    def add(kind: str, detail: str, edit: Edit, hang: bool = False) -> None:
        cases.append(_case(source, kind, detail, edit, hang))

    for detail, key, value in (
        ("spatial-missing", "obsm/spatial", None),
        ("spatial-1d", "obsm/spatial", np.zeros(25)),
        ("spatial-one-column", "obsm/spatial", np.zeros((25, 1))),
        ("spatial-short", "obsm/spatial", np.zeros((3, 2))),
        ("spatial-nan", "obsm/spatial", np.full((25, 2), np.nan)),
        ("spatial-inf", "obsm/spatial", np.full((25, 2), np.inf)),
        ("spatial-negative", "obsm/spatial", np.full((25, 2), -5000.0)),
        ("spatial-far", "obsm/spatial", np.full((25, 2), 1e9)),
        ("spatial-str", "obsm/spatial", np.array([[b"a", b"b"]] * 25)),
        ("counts-missing", "layers/counts", None),
        ("counts-nan", "layers/counts", np.full((25, 205), np.nan, np.float32)),
        ("counts-negative", "layers/counts", np.full((25, 205), -3, np.float32)),
        ("counts-inf", "layers/counts", np.full((25, 205), np.inf, np.float32)),
        ("counts-wrong-shape", "layers/counts", np.zeros((25, 3), np.float32)),
        ("counts-str", "layers/counts", np.array([[b"x"] * 205] * 25)),
        ("counts-bool", "layers/counts", np.ones((25, 205), bool)),
        ("counts-3d", "layers/counts", np.ones((25, 205, 2), np.float32)),
        ("obs-names-duplicate", "obs/_index", np.array([b"s"] * 25)),
        ("obs-names-missing", "obs/_index", None),
        ("var-names-latin1", "var/_index", np.array([b"G\xe9\xff"] * 205)),
        ("var-names-int", "var/_index", np.arange(205)),
        ("obs", "obs", None),
        ("X-missing", "X", None),
    ):
        add("h5ad-value", detail, _h5_edit("", _replace(key, value)))

    def sparse_counts(shape: tuple[int, int]) -> Edit:
        def change(h5: Any) -> None:
            del h5["layers/counts"]
            group = h5["layers"].create_group("counts")
            group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0"})
            group.attrs["shape"] = np.array(shape, np.int64)
            group["data"] = np.ones(25, np.float32)
            group["indices"] = np.zeros(25, np.int32)
            group["indptr"] = np.arange(26, dtype=np.int32)

        return _h5_edit("", change)

    add("h5ad-sparse", "valid", sparse_counts((25, 205)))
    add("h5ad-sparse", "declared-huge", sparse_counts((25, 2**40)), True)
    add("h5ad-sparse", "declared-small", sparse_counts((2, 3)))
    size = source.path.stat().st_size
    for cut in (0, 8, 1024, size // 2, size - 10):
        add("h5ad-file", f"truncate-{cut}", _rewrite_file(partial(_truncate, cut=cut)))
    for index, position in enumerate((700, size // 3, size // 2, size - 300)):
        flip = partial(_flip, positions=[position], masks=[0xFF])
        add("h5ad-file", f"flip-{index}", _rewrite_file(flip))
    add("h5ad-file", "text", lambda p: p.write_text("not an h5ad"))
    add("h5ad-file", "directory", _to_directory)
    return cases


def _write_bytes(relative: str, data: bytes) -> Edit:
    """Replace the file at ``relative`` (under the case's root) by ``data``."""

    def edit(root: Path) -> None:
        (root / relative).write_bytes(data)

    return edit


def _rewrite_file(change: Callable[[bytes], bytes]) -> Edit:
    """Replace the case's file (the ``.h5ad`` itself) by ``change`` of its bytes."""

    def edit(path: Path) -> None:
        path.write_bytes(change(path.read_bytes()))

    return edit
