"""Measured-expression readers: HER2ST (real cut), and Visium / AnnData layouts written
here in the published formats from the real HER2ST counts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omicslens.core.measured import MeasuredDataError, load_measured

CUT = Path(__file__).resolve().parents[1] / "data" / "her2st-cut"


@pytest.fixture(scope="module")
def her2st():
    return load_measured(CUT, section="C5")


def _write_visium(folder: Path, measured) -> None:
    import h5py

    folder.mkdir(parents=True)
    barcodes = [f"BC{i:04d}-1" for i in range(measured.n_spots)]
    counts = measured.counts.T  # genes x cells, CSC by cell
    data, indices, indptr = [], [], [0]
    for cell in range(counts.shape[1]):
        nz = np.flatnonzero(counts[:, cell])
        data += counts[nz, cell].tolist()
        indices += nz.tolist()
        indptr.append(len(data))
    with h5py.File(folder / "filtered_feature_bc_matrix.h5", "w") as h5:
        group = h5.create_group("matrix")
        group["barcodes"] = np.array(barcodes, dtype="S")
        group["data"] = np.array(data, dtype=np.int32)
        group["indices"] = np.array(indices, dtype=np.int64)
        group["indptr"] = np.array(indptr, dtype=np.int64)
        group["shape"] = np.array(counts.shape, dtype=np.int32)
        features = group.create_group("features")
        features["name"] = np.array(measured.genes, dtype="S")
    spatial = folder / "spatial"
    spatial.mkdir()
    with open(spatial / "tissue_positions_list.csv", "w") as handle:
        for i, code in enumerate(barcodes):
            row, col = measured.array_xy[i][1], measured.array_xy[i][0]
            handle.write(
                f"{code},1,{int(row)},{int(col)},{measured.y[i]:.2f},{measured.x[i]:.2f}\n"
            )
        handle.write("BC_NOT_IN_MATRIX-1,0,0,0,1,1\n")
    (spatial / "scalefactors_json.json").write_text(json.dumps({"spot_diameter_fullres": 89.4}))


def test_her2st_cut(her2st) -> None:
    assert her2st.n_spots == 25 and "ERBB2" in her2st.genes
    assert her2st.spot_diameter_um == 100.0
    normalised = her2st.normalised(["ERBB2", "NOT_A_GENE"])
    assert normalised.shape == (25, 2) and (normalised[:, 1] == 0).all()


def test_visium_folder_round_trip(her2st, tmp_path: Path) -> None:
    _write_visium(tmp_path / "visium", her2st)
    visium = load_measured(tmp_path / "visium")
    assert visium.n_spots == 25  # the extra barcode without counts is ignored
    np.testing.assert_array_equal(visium.counts, her2st.counts)
    np.testing.assert_allclose(visium.x, her2st.x, atol=0.01)
    assert visium.notes["mpp_from_spot_diameter"] == pytest.approx(55 / 89.4)


def test_anndata_round_trip(her2st, tmp_path: Path) -> None:
    import anndata

    adata = anndata.AnnData(X=her2st.counts.copy())
    adata.var_names = her2st.genes
    adata.obsm["spatial"] = np.c_[her2st.x, her2st.y]
    adata.write_h5ad(tmp_path / "s.h5ad")
    loaded = load_measured(tmp_path / "s.h5ad")
    np.testing.assert_array_equal(loaded.counts, her2st.counts)
    np.testing.assert_allclose(loaded.normalised(["ERBB2"]), her2st.normalised(["ERBB2"]))


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(MeasuredDataError, match="does not exist"):
        load_measured(tmp_path / "missing")
    with pytest.raises(MeasuredDataError, match="name a section"):
        load_measured(CUT)
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(MeasuredDataError, match=r"x\.txt"):
        load_measured(tmp_path / "x.txt")
