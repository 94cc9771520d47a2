"""Measured spatial expression (the ground truth predictions are compared with and fit on).

Three layouts users already have:

- **HER2ST / ST v1** (Andersson et al. 2021): ``counts/<S>.tsv.gz`` (spots x genes, first
  column ``{x}x{y}``), ``spots/<S>_selection.tsv`` (array x, y and pixel_x, pixel_y) and
  ``images/<S>.jpg``. Pass the counts file, or the folder plus ``section``.
- **10x Visium Space Ranger** output folder: ``filtered_feature_bc_matrix.h5`` and
  ``spatial/tissue_positions_list.csv`` (or ``tissue_positions.csv``) with
  ``scalefactors_json.json``; positions are full-resolution image pixels.
- **AnnData** ``.h5ad`` with ``obsm['spatial']`` in image pixels (HEST and squidpy).

Positions are always level-0 pixels of the matching H&E image.

This module reads any of them (:func:`load_measured`) and picks genes to compare
(:func:`highly_variable_genes`); it re-exports the pieces it is built from: the value type
(:mod:`omicslens.core.measured_expression`), the readers
(:mod:`omicslens.core.measured_her2st`, :mod:`omicslens.core.measured_visium`,
:mod:`omicslens.core.measured_anndata`), their shared field checks
(:mod:`omicslens.core.measured_fields`) and the correlations
(:mod:`omicslens.core.correlation`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omicslens.core.correlation import average_ranks as average_ranks
from omicslens.core.correlation import pearson_per_column as pearson_per_column
from omicslens.core.correlation import spearman as spearman
from omicslens.core.correlation import spearman_per_column as spearman_per_column
from omicslens.core.measured_anndata import _from_anndata as _from_anndata
from omicslens.core.measured_anndata import read_anndata
from omicslens.core.measured_expression import ST_PITCH_UM as ST_PITCH_UM
from omicslens.core.measured_expression import ST_SPOT_DIAMETER_UM as ST_SPOT_DIAMETER_UM
from omicslens.core.measured_expression import (
    VISIUM_SPOT_DIAMETER_UM as VISIUM_SPOT_DIAMETER_UM,
)
from omicslens.core.measured_expression import MeasuredDataError, MeasuredExpression
from omicslens.core.measured_expression import MeasuredDataWarning as MeasuredDataWarning
from omicslens.core.measured_expression import _drop_warning as _drop_warning
from omicslens.core.measured_fields import MAX_DENSE_VALUES as MAX_DENSE_VALUES
from omicslens.core.measured_fields import _checked_counts as _checked_counts
from omicslens.core.measured_fields import _checked_positions as _checked_positions
from omicslens.core.measured_fields import _number as _number
from omicslens.core.measured_fields import _text_name as _text_name
from omicslens.core.measured_fields import _unique as _unique
from omicslens.core.measured_her2st import _SELECTED as _SELECTED
from omicslens.core.measured_her2st import _is_number as _is_number
from omicslens.core.measured_her2st import _read_counts_tsv as _read_counts_tsv
from omicslens.core.measured_her2st import _read_spot_table as _read_spot_table
from omicslens.core.measured_her2st import read_her2st
from omicslens.core.measured_visium import _dataset as _dataset
from omicslens.core.measured_visium import _read_10x_matrix as _read_10x_matrix
from omicslens.core.measured_visium import _read_scalefactors as _read_scalefactors
from omicslens.core.measured_visium import _read_tissue_positions as _read_tissue_positions
from omicslens.core.measured_visium import read_visium

__all__ = [
    "MAX_DENSE_VALUES",
    "ST_PITCH_UM",
    "ST_SPOT_DIAMETER_UM",
    "VISIUM_SPOT_DIAMETER_UM",
    "MeasuredDataError",
    "MeasuredDataWarning",
    "MeasuredExpression",
    "average_ranks",
    "highly_variable_genes",
    "load_measured",
    "pearson_per_column",
    "read_anndata",
    "read_her2st",
    "read_visium",
    "spearman",
    "spearman_per_column",
]


def load_measured(path: str | Path, section: str | None = None) -> MeasuredExpression:
    """Read measured expression from any supported layout (see the module docstring).

    Every malformed input is a :class:`MeasuredDataError` naming the file and the field;
    spots that one table lists and the other does not are dropped with a warning."""
    path = Path(path)
    if not path.exists():
        raise MeasuredDataError(path, "does not exist")
    if path.suffix == ".h5ad":
        measured = read_anndata(path)
    elif path.is_dir() and (path / "spatial").is_dir():
        measured = read_visium(path)
    elif path.is_dir() and (path / "counts").is_dir():
        if section is None:
            found = sorted(p.name.split(".")[0] for p in (path / "counts").glob("*.tsv.gz"))
            raise MeasuredDataError(path, f"HER2ST folder: name a section ({', '.join(found)})")
        measured = read_her2st(path / "counts" / f"{section}.tsv.gz")
    elif path.name.endswith(".tsv.gz") or path.name.endswith(".tsv"):
        measured = read_her2st(path)
    else:
        raise MeasuredDataError(
            path, "not a HER2ST counts file/folder, a Visium folder or an .h5ad file"
        )
    measured.path = path
    return measured


def highly_variable_genes(sections: list[MeasuredExpression], top: int = 50) -> list[str]:
    """Top genes by variance of log-normalised expression, pooled over ``sections``.

    Genes must be measured in every section. Ties and order are deterministic.
    """
    common = set(sections[0].genes)
    for section in sections[1:]:
        common &= set(section.genes)
    genes = sorted(common)
    pooled = np.vstack([section.normalised(genes) for section in sections])
    variance = pooled.var(axis=0)
    order = np.lexsort((np.arange(len(genes)), -variance))
    return [genes[position] for position in order[:top]]
