"""`omicslens predict` on a real slide: every format, re-read; a killed run resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from omicslens.cli.main import main
from omicslens.core import open_slide
from omicslens.models.session import InferenceSession
from tests.conftest import CMU1
from tests.helpers.bundles import make_bundle


def test_predict_writes_every_format_and_resumes(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle", patch_size=32, spacing=2.0)  # 64 um tiles
    out = tmp_path / "out"
    # a "killed" earlier run: some tiles already in the output folder's cache
    with open_slide(CMU1) as slide:
        session = InferenceSession.open(slide, bundle, cache=out / ".cache")
        tissue = np.flatnonzero(session.tissue_tiles.ravel())
        scheduler = session.scheduler()
        scheduler.request_tiles(tissue[:40])
        assert scheduler.wait_idle(60)
        scheduler.stop()
        first_values = session.store.get(tissue[:40])
    assert main(["predict", str(CMU1), "--model", str(bundle), "--out", str(out)]) == 0
    folder = out / CMU1.name
    table = pd.read_csv(folder / "tiles.csv")
    assert len(table) == len(tissue)  # every tissue tile exactly once
    assert not table.duplicated(["minx", "miny"]).any()
    assert list(table.columns[4:]) == ["pred_ERBB2", "pred_CD74", "pred_MKI67"]
    cached = table.iloc[:40][["pred_ERBB2", "pred_CD74", "pred_MKI67"]].to_numpy()
    np.testing.assert_allclose(cached, first_values, rtol=1e-5)
    for name in ("tiles.geojson.gz", "tiles.h5ad", "predictions.ome.zarr", "done.json"):
        assert (folder / name).exists()
    # a rerun skips the finished slide and keeps its files
    before = (folder / "tiles.csv").stat().st_mtime_ns
    assert main(["predict", str(CMU1), "--model", str(bundle), "--out", str(out)]) == 0
    assert (folder / "tiles.csv").stat().st_mtime_ns == before


def test_predict_refuses_to_overwrite_without_force(tmp_path: Path, capsys) -> None:
    bundle = make_bundle(tmp_path / "bundle", patch_size=32, spacing=4.0)
    out = tmp_path / "out"
    (out / CMU1.name).mkdir(parents=True)
    (out / CMU1.name / "tiles.csv").write_text("my own analysis\n")
    code = main(
        ["predict", str(CMU1), "--model", str(bundle), "--out", str(out), "--format", "csv"]
    )
    assert code == 1
    assert "exists" in capsys.readouterr().err
    assert (out / CMU1.name / "tiles.csv").read_text() == "my own analysis\n"


def test_predict_with_regions_adds_region_statistics(tmp_path: Path) -> None:
    import anndata

    from omicslens.core.regions import Region, read_regions, write_regions

    bundle = make_bundle(tmp_path / "bundle", patch_size=32, spacing=4.0)  # 128 um tiles
    regions = write_regions(
        [Region("upper", np.array([[0, 0], [2220, 0], [2220, 1400], [0, 1400]], float))],
        tmp_path / "regions.geojson",
    )
    out = tmp_path / "out"
    code = main(
        ["predict", str(CMU1), "--model", str(bundle), "--out", str(out), "--regions", str(regions)]
    )
    assert code == 0
    folder = out / CMU1.name
    summary = pd.read_csv(folder / "regions.csv")
    tiles = pd.read_csv(folder / "tiles.csv")
    adata = anndata.read_h5ad(folder / "tiles.h5ad")
    upper = adata.obs["region"] == "upper"
    assert summary.loc[0, "predicted"] == upper.sum() > 0
    np.testing.assert_allclose(
        summary.loc[0, "mean_ERBB2"], tiles.loc[upper.to_numpy(), "pred_ERBB2"].mean(), rtol=1e-4
    )
    back = read_regions(folder / "regions.geojson")
    assert back[0].measurements["Predicted tiles"] == upper.sum()


def test_h5ad_export_works_in_scanpy(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import scanpy as sc

    bundle = make_bundle(tmp_path / "bundle", patch_size=32, spacing=4.0)
    out = tmp_path / "out"
    assert (
        main(["predict", str(CMU1), "--model", str(bundle), "--out", str(out), "--format", "h5ad"])
        == 0
    )
    adata = sc.read_h5ad(out / CMU1.name / "tiles.h5ad")
    sc.pp.pca(adata, n_comps=2)
    assert adata.obsm["X_pca"].shape == (adata.n_obs, 2)
    figure = sc.pl.spatial(
        adata, color="ERBB2", spot_size=256, img_key=None, show=False, return_fig=True
    )
    assert figure is not None


def test_a_full_disk_is_one_line_naming_the_file(tmp_path: Path, capsys, monkeypatch) -> None:
    import errno
    import os

    from omicslens.core import atomic

    def full_disk(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    bundle = make_bundle(tmp_path / "bundle", patch_size=32, spacing=8.0)
    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    out = tmp_path / "out"
    code = main(["predict", str(CMU1), "--model", str(bundle), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{out / CMU1.name}" in err and "cannot write: No space left on device" in err
    assert "Traceback" not in err
    assert not [path for path in (out / CMU1.name).glob(".*.tmp")]


def _csv_run(tmp_path: Path) -> tuple[list[str], Path]:
    """``omicslens predict`` arguments for CMU-1 to CSV with a tiny bundle, and the out dir."""
    bundle = make_bundle(tmp_path / "bundle", patch_size=32, spacing=2.0)
    out = tmp_path / "out"
    return ["predict", str(CMU1), "--model", str(bundle), "--out", str(out), "--format", "csv"], out


def test_done_json_says_how_many_readers_fed_the_model_and_why(tmp_path: Path, capsys) -> None:
    import json

    args, out = _csv_run(tmp_path)
    assert main([*args, "--device", "cpu"]) == 0
    done = json.loads((out / CMU1.name / "done.json").read_text())
    assert done["readers"]["readers"] == 2 and "CPU" in done["readers"]["reason"]
    assert main([*args, "--device", "cpu", "--readers", "3", "--force"]) == 0
    done = json.loads((out / CMU1.name / "done.json").read_text())
    assert done["readers"] == {"readers": 3, "reason": "set by the caller"}
    assert main([*args, "--readers", "0", "--force"]) == 2
    assert "--readers must be at least 1" in capsys.readouterr().err


def test_done_json_says_which_decoder_read_the_tiles(tmp_path: Path, capsys) -> None:
    import json

    args, out = _csv_run(tmp_path)
    assert main([*args, "--device", "cpu"]) == 0
    done = json.loads((out / CMU1.name / "done.json").read_text())
    assert done["decode"]["decoder"] == "tifffile (CPU)"
    assert "the model runs on the CPU" in done["decode"]["levels"][0]["reason"]
    assert done["decode"]["usage"]["tiles_decoded"] == 0  # no stream decoder on a CPU
    capsys.readouterr()
    assert main([*args, "--device", "cpu", "--decode", "gpu", "--force"]) == 1
    err = capsys.readouterr().err
    assert "CMU-1-Small-Region.svs: GPU JPEG decoding asked for" in err
    assert "Traceback" not in err
