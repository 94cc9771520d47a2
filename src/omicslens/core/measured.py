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
import math
import warnings
import zlib
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


class MeasuredDataWarning(UserWarning):
    """Spots listed in one table of a measured section but not the other were skipped."""


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
    path: Path | None = None  # the file or folder it was read from (named in errors)

    @property
    def n_spots(self) -> int:
        return len(self.spot_ids)

    def gene_index(self, genes: list[str]) -> np.ndarray:
        """Column positions of ``genes``; -1 for genes this section did not measure."""
        lookup = {gene: position for position, gene in enumerate(self.genes)}
        return np.array([lookup.get(gene, -1) for gene in genes], dtype=np.int64)

    def inside(self, width: int, height: int, image: str | Path) -> MeasuredExpression:
        """The spots whose centre lies on the ``width`` x ``height`` px ``image``; the
        others are skipped with a warning, and none on it is a typed error."""
        on = (self.x >= 0) & (self.x < width) & (self.y >= 0) & (self.y < height)
        if on.all():
            return self
        where = self.path or self.source
        size = f"{image} ({width} x {height} px)"
        if not on.any():
            raise MeasuredDataError(
                where, f"no spot lies on {size}: the spot positions are not pixels of this image"
            )
        dropped = [self.spot_ids[i] for i in np.flatnonzero(~on)]
        _drop_warning(Path(where), dropped, f"the image {size}", "lie outside")
        keep = np.flatnonzero(on)
        return replace(
            self,
            spot_ids=[self.spot_ids[i] for i in keep],
            x=self.x[keep],
            y=self.y[keep],
            counts=self.counts[keep],
            array_xy=None if self.array_xy is None else self.array_xy[keep],
        )

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
        if not (math.isfinite(pitch) and pitch > 0):
            return None  # every spot on one array row or column: no pitch to measure
        # one spot far from where its array coordinates put it spoils the fit (and the
        # window every spot is predicted from): refuse rather than measure nonsense
        off = np.hypot(self.x - design @ fx, self.y - design @ fy)
        worst = int(np.argmax(off))
        if off[worst] > pitch / 2:
            raise MeasuredDataError(
                self.path or self.source,
                f"spot {self.spot_ids[worst]} lies {off[worst]:.0f} px from where its array "
                f"coordinates put it (pitch {pitch:.0f} px): the pixel positions do not "
                "follow the array, so the pitch cannot be measured",
            )
        return ST_PITCH_UM / float(pitch)


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


def _number(path: Path, where: str, text: str, integer: bool = False) -> float:
    """A finite number from a table cell (an integer where ``integer``), else a typed error."""
    try:
        value = float(text)
    except ValueError:
        raise MeasuredDataError(path, f"{where}: {text[:40]!r} is not a number") from None
    if not math.isfinite(value) or (integer and (value != int(value) or abs(value) >= 2**31)):
        kind = "a whole number (array coordinate)" if integer else "a finite number"
        raise MeasuredDataError(path, f"{where}: {text[:40]!r} is not {kind}")
    return value


def _text_name(path: Path, where: str, value: Any) -> str:
    """A gene name or spot id: printable text (bytes must be UTF-8), surrounding blanks cut."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise MeasuredDataError(path, f"{where}: {value[:40]!r} is not UTF-8 text") from None
    if not isinstance(value, str):
        raise MeasuredDataError(path, f"{where}: {value!r} is not text")
    name = value.strip().lstrip("\ufeff")
    if not name or not name.isprintable():
        raise MeasuredDataError(path, f"{where}: {value[:40]!r} is not a printable name")
    return name


def _unique(path: Path, what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise MeasuredDataError(path, f"{what} {name!r} appears twice")
        seen.add(name)


def _checked_counts(path: Path, field: str, counts: Any, shape: tuple[int, int]) -> np.ndarray:
    """(spots, genes) counts as float32: numeric, of ``shape``, finite and non-negative."""
    array = np.asarray(counts)
    if array.dtype.kind not in "biuf":
        raise MeasuredDataError(path, f"{field} holds {array.dtype} values, not numbers")
    if array.shape != shape:
        raise MeasuredDataError(path, f"{field} has shape {array.shape}, expected {shape}")
    with np.errstate(over="ignore"):
        values = array.astype(np.float32)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        spot, gene = (int(v) for v in np.argwhere(bad)[0])
        raise MeasuredDataError(
            path,
            f"{field}: {int(bad.sum())} counts are negative, NaN or beyond float32 "
            f"(first at spot {spot}, gene {gene}: {array[spot, gene]!r})",
        )
    return values


def _checked_positions(path: Path, field: str, xy: Any, spots: int) -> np.ndarray:
    try:
        array = np.asarray(xy, dtype=np.float64)
    except (TypeError, ValueError):
        raise MeasuredDataError(path, f"{field} holds values that are not numbers") from None
    if array.ndim != 2 or array.shape[0] != spots or array.shape[1] < 2:
        raise MeasuredDataError(
            path, f"{field} has shape {array.shape}, expected ({spots}, 2) pixel positions"
        )
    if not np.isfinite(array[:, :2]).all():
        spot = int(np.flatnonzero(~np.isfinite(array[:, :2]).all(axis=1))[0])
        raise MeasuredDataError(path, f"{field}: spot {spot} has a NaN or infinite position")
    return array[:, :2]


def _drop_warning(
    path: Path, dropped: list[str], other: Path | str, verb: str = "are not in"
) -> None:
    if dropped:
        shown = ", ".join(dropped[:5]) + (", ..." if len(dropped) > 5 else "")
        warnings.warn(
            f"{path}: {len(dropped)} spot(s) {verb} {other} and were skipped ({shown})",
            MeasuredDataWarning,
            stacklevel=3,
        )


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


#: a dense spots x genes matrix larger than this is refused (4 GiB of float32)
MAX_DENSE_VALUES = 2**30


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
