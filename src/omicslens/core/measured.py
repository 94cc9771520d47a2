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
"""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.errors import OmicsLensError

#: Spatial Transcriptomics v1 arrays: spots 100 um wide on a 200 um square pitch.
ST_PITCH_UM = 200.0
ST_SPOT_DIAMETER_UM = 100.0
#: Visium: 55 um spots, 100 um centre to centre.
VISIUM_SPOT_DIAMETER_UM = 55.0


class MeasuredDataError(OmicsLensError, ValueError):
    """A measured-expression file or folder is missing parts or is malformed."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}")


@dataclass
class MeasuredExpression:
    """Spots x genes raw counts with spot centres in level-0 image pixels."""

    spot_ids: list[str]
    x: np.ndarray  # (spots,) level-0 pixels
    y: np.ndarray
    genes: list[str]
    counts: np.ndarray  # (spots, genes) float32 raw counts
    source: str
    image: Path | None = None
    spot_diameter_um: float | None = None
    array_xy: np.ndarray | None = None  # (spots, 2) array coordinates where known
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def n_spots(self) -> int:
        return len(self.spot_ids)

    def gene_index(self, genes: list[str]) -> np.ndarray:
        """Column positions of ``genes``; -1 for genes this section did not measure."""
        lookup = {gene: position for position, gene in enumerate(self.genes)}
        return np.array([lookup.get(gene, -1) for gene in genes], dtype=np.int64)

    def normalised(self, genes: list[str] | None = None, target_sum: float = 1e4) -> np.ndarray:
        """log1p(counts / library size * target_sum) for ``genes`` (0 where unmeasured)."""
        library = self.counts.sum(axis=1, keepdims=True)
        scaled = np.log1p(self.counts / np.maximum(library, 1.0) * target_sum).astype(np.float32)
        if genes is None:
            return scaled
        index = self.gene_index(genes)
        out = np.zeros((self.n_spots, len(genes)), dtype=np.float32)
        present = index >= 0
        out[:, present] = scaled[:, index[present]]
        return out

    def thinned(self, target_umi: float, seed: int = 0) -> MeasuredExpression:
        """A copy with each spot's raw counts binomially thinned to about ``target_umi``.

        Every count of a spot is kept with probability ``target_umi / library`` (spots
        already at or below the target are unchanged), which is how a shallower run of
        the same library would look. Deterministic for a given ``seed``.
        """
        if not target_umi > 0:
            raise ValueError(f"target_umi must be positive, got {target_umi}")
        rng = np.random.default_rng(seed)
        library = self.counts.sum(axis=1, keepdims=True).astype(np.float64)
        keep = np.minimum(1.0, target_umi / np.maximum(library, 1.0))
        whole = np.rint(np.maximum(self.counts, 0)).astype(np.int64)
        thinned = rng.binomial(whole, np.broadcast_to(keep, whole.shape)).astype(np.float32)
        return replace(
            self,
            counts=thinned,
            notes={**self.notes, "thinned_to_umi": float(target_umi), "thinning_seed": seed},
        )

    def pitch_mpp(self) -> float | None:
        """um per image pixel implied by the ST array pitch (200 um), from a least-squares
        fit of pixel positions on array coordinates; None without array coordinates.

        This is a measurement from the data (every spot votes), not a guess: HER2ST's
        JPEGs state no resolution and this is how their pixel size is known.
        """
        if self.array_xy is None or len(self.array_xy) < 3:
            return None
        design = np.c_[self.array_xy, np.ones(len(self.array_xy))]
        fx, *_ = np.linalg.lstsq(design, self.x, rcond=None)
        fy, *_ = np.linalg.lstsq(design, self.y, rcond=None)
        pitch = (np.hypot(fx[0], fy[0]) + np.hypot(fx[1], fy[1])) / 2
        return ST_PITCH_UM / float(pitch)


def load_measured(path: str | Path, section: str | None = None) -> MeasuredExpression:
    """Read measured expression from any supported layout (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise MeasuredDataError(path, "does not exist")
    if path.suffix == ".h5ad":
        return read_anndata(path)
    if path.is_dir() and (path / "spatial").is_dir():
        return read_visium(path)
    if path.is_dir() and (path / "counts").is_dir():
        if section is None:
            found = sorted(p.name.split(".")[0] for p in (path / "counts").glob("*.tsv.gz"))
            raise MeasuredDataError(path, f"HER2ST folder: name a section ({', '.join(found)})")
        return read_her2st(path / "counts" / f"{section}.tsv.gz")
    if path.name.endswith(".tsv.gz") or path.name.endswith(".tsv"):
        return read_her2st(path)
    raise MeasuredDataError(
        path, "not a HER2ST counts file/folder, a Visium folder or an .h5ad file"
    )


def read_her2st(counts_path: Path) -> MeasuredExpression:
    """A HER2ST section from its counts file; spots and image are found beside it."""
    section = counts_path.name.split(".")[0]
    root = counts_path.parent.parent
    spots_path = root / "spots" / f"{section}_selection.tsv"
    if not spots_path.exists():
        raise MeasuredDataError(counts_path, f"spot table {spots_path} is missing")
    genes, ids, counts = _read_counts_tsv(counts_path)
    positions: dict[str, tuple[float, float, int, int]] = {}
    with open(spots_path, newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row.get("selected", "1").strip() not in ("1", "1.0", "True", "true"):
                continue
            key = f"{int(float(row['x']))}x{int(float(row['y']))}"
            positions[key] = (
                float(row["pixel_x"]),
                float(row["pixel_y"]),
                int(float(row["x"])),
                int(float(row["y"])),
            )
    keep = [position for position, spot in enumerate(ids) if spot in positions]
    if not keep:
        raise MeasuredDataError(counts_path, "no spot in the counts matches the spot table")
    kept_ids = [ids[position] for position in keep]
    table = np.array([positions[spot] for spot in kept_ids])
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


def _read_counts_tsv(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt") as handle:
            header = handle.readline().rstrip("\n").split("\t")
            ids: list[str] = []
            rows: list[np.ndarray] = []
            for line in handle:
                parts = line.rstrip("\n").split("\t")
                if len(parts) != len(header):
                    raise MeasuredDataError(path, f"row {len(ids) + 2} has {len(parts)} fields")
                ids.append(parts[0])
                rows.append(np.asarray(parts[1:], dtype=np.float32))
    except (OSError, EOFError, ValueError) as exc:
        if isinstance(exc, MeasuredDataError):
            raise
        raise MeasuredDataError(path, f"cannot read counts table ({exc})") from exc
    if not rows:
        raise MeasuredDataError(path, "counts table has no spots")
    return header[1:], ids, np.vstack(rows)


def read_visium(folder: Path) -> MeasuredExpression:
    """A Space Ranger output folder (filtered matrix + spatial/)."""
    import h5py

    matrix = folder / "filtered_feature_bc_matrix.h5"
    if not matrix.exists():
        raise MeasuredDataError(folder, "filtered_feature_bc_matrix.h5 is missing")
    with h5py.File(matrix, "r") as h5:
        group = h5["matrix"]
        barcodes = [b.decode() for b in group["barcodes"][:]]
        names = [n.decode() for n in group["features"]["name"][:]]
        n_genes, n_cells = (int(v) for v in group["shape"][:])
        data = group["data"][:]
        indices = group["indices"][:]
        indptr = group["indptr"][:]
    counts = np.zeros((n_cells, n_genes), dtype=np.float32)
    for cell in range(n_cells):
        start, stop = indptr[cell], indptr[cell + 1]
        counts[cell, indices[start:stop]] = data[start:stop]
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
    positions: dict[str, tuple[float, float, int, int]] = {}
    with open(positions_file, newline="") as handle:
        for row in csv.reader(handle):
            if not row or row[0] == "barcode":
                continue
            barcode, _, array_row, array_col, pixel_row, pixel_col = row[:6]
            positions[barcode] = (
                float(pixel_col),
                float(pixel_row),
                int(array_col),
                int(array_row),
            )
    keep = [position for position, code in enumerate(barcodes) if code in positions]
    table = np.array([positions[barcodes[position]] for position in keep])
    diameter = None
    scalefactors = spatial / "scalefactors_json.json"
    notes: dict[str, Any] = {}
    if scalefactors.exists():
        factors = json.loads(scalefactors.read_text())
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


def read_anndata(path: Path) -> MeasuredExpression:
    """An .h5ad with obsm['spatial'] in image pixels (HEST, squidpy)."""
    try:
        import anndata
    except ImportError as exc:  # pragma: no cover - anndata is a dependency
        raise MeasuredDataError(path, "reading .h5ad needs the anndata package") from exc
    adata = anndata.read_h5ad(path)
    if "spatial" not in adata.obsm:
        raise MeasuredDataError(path, "AnnData has no obsm['spatial'] spot positions")
    matrix = adata.layers.get("counts", adata.X)
    counts = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    spatial = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    return MeasuredExpression(
        spot_ids=[str(v) for v in adata.obs_names],
        x=spatial[:, 0],
        y=spatial[:, 1],
        genes=[str(v) for v in adata.var_names],
        counts=counts.astype(np.float32),
        source=f"AnnData {path.name}",
    )


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
