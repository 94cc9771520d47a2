"""Reader for AnnData ``.h5ad`` files with ``obsm['spatial']`` in image pixels (HEST, squidpy).

Split out of :mod:`omicslens.core.measured` (which dispatches to it and re-exports
:func:`read_anndata`): one module per layout the user may already have. ``anndata`` is
imported only when a file is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.measured_expression import MeasuredDataError, MeasuredExpression
from omicslens.core.measured_fields import (
    MAX_DENSE_VALUES,
    _checked_counts,
    _checked_positions,
    _text_name,
    _unique,
)


def read_anndata(path: Path) -> MeasuredExpression:
    """An .h5ad with obsm['spatial'] in image pixels (HEST, squidpy)."""
    try:
        import anndata
    except ImportError as exc:  # pragma: no cover - anndata is a dependency
        raise MeasuredDataError(path, "reading .h5ad needs the anndata package") from exc
    if not path.is_file():
        raise MeasuredDataError(path, "not a file")
    try:
        adata = anndata.read_h5ad(path)
    except MemoryError:
        raise
    except Exception as error:  # h5py and anndata raise many kinds on a damaged file
        raise MeasuredDataError(
            path, f"not a readable .h5ad ({type(error).__name__}: {error})"
        ) from None
    try:
        return _from_anndata(path, adata)
    except MeasuredDataError:
        raise
    except MemoryError:
        raise
    except Exception as error:  # a field of the wrong kind (a string table, a group...)
        raise MeasuredDataError(
            path, f"unreadable field ({type(error).__name__}: {error})"
        ) from None


def _from_anndata(path: Path, adata: Any) -> MeasuredExpression:
    n_spots, n_genes = adata.n_obs, adata.n_vars
    if "spatial" not in adata.obsm:
        raise MeasuredDataError(path, "AnnData has no obsm['spatial'] spot positions")
    if n_spots * n_genes > MAX_DENSE_VALUES:
        raise MeasuredDataError(path, f"{n_spots} spots x {n_genes} genes is too large to load")
    field = "layers['counts']" if "counts" in adata.layers else "X"
    matrix = adata.layers["counts"] if field != "X" else adata.X
    if matrix is None:
        raise MeasuredDataError(path, "AnnData has neither layers['counts'] nor X")
    shape = tuple(getattr(matrix, "shape", ()))
    if shape != (n_spots, n_genes):
        raise MeasuredDataError(path, f"{field} has shape {shape}, expected {(n_spots, n_genes)}")
    dense = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    counts = _checked_counts(path, field, dense, (n_spots, n_genes))
    spatial = _checked_positions(path, "obsm['spatial']", adata.obsm["spatial"], n_spots)
    ids = [_text_name(path, f"obs name {i}", v) for i, v in enumerate(adata.obs_names)]
    genes = [_text_name(path, f"var name {i}", v) for i, v in enumerate(adata.var_names)]
    _unique(path, "spot (obs name)", ids)
    return MeasuredExpression(
        spot_ids=ids,
        x=spatial[:, 0],
        y=spatial[:, 1],
        genes=genes,
        counts=counts,
        source=f"AnnData {path.name}",
    )
