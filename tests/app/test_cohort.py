"""Cohorts on a real dask.distributed cluster: a worker killed mid-task loses nothing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anndata
import distributed
import numpy as np
import pytest

from omicslens.app.cohort import CohortSettings, predict_cohort
from omicslens.app.predict import PredictOptions, predict_slide
from omicslens.app.progress import run_job
from omicslens.app.tiles import load_predictor
from omicslens.core import open_slide
from tests.conftest import CMU1
from tests.helpers.layouts import write_svs

FORMATS = ("csv", "h5ad")


@pytest.fixture(scope="module")
def cohort_slides(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four different slides of real CMU-1 pixels (the sample and its mirror images)."""
    folder = tmp_path_factory.mktemp("cohort")
    with open_slide(CMU1) as slide:
        pixels = slide.read_region(0, 0, *slide.dimensions)[..., :3]
    variants = [pixels, pixels[:, ::-1], pixels[::-1], pixels[::-1, ::-1]]
    return [
        write_svs(folder / f"patient-{i}.svs", np.ascontiguousarray(v), 0.5)
        for i, v in enumerate(variants)
    ]


def _same_outputs(reference: Path, candidate: Path) -> None:
    assert (reference / "tiles.csv").read_bytes() == (candidate / "tiles.csv").read_bytes()
    ref, got = (
        anndata.read_h5ad(reference / "tiles.h5ad"),
        anndata.read_h5ad(candidate / "tiles.h5ad"),
    )
    np.testing.assert_array_equal(ref.X, got.X)
    np.testing.assert_array_equal(ref.obsm["spatial"], got.obsm["spatial"])
    assert list(ref.var_names) == list(got.var_names)


@pytest.mark.slow
def test_a_killed_worker_loses_and_duplicates_nothing(
    cohort_slides: list[Path], level0_bundle: Path, tmp_path: Path
) -> None:
    # single-process reference
    predictor = load_predictor(level0_bundle)
    for slide in cohort_slides:
        report = run_job(
            predict_slide(slide, predictor, tmp_path / "single", PredictOptions(formats=FORMATS))
        )
        assert report.status == "done"

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster)
    killed: dict[str, object] = {}
    try:
        pids = client.run(os.getpid)
        out = tmp_path / "cluster"
        job = predict_cohort(
            cohort_slides,
            level0_bundle,
            out,
            PredictOptions(formats=FORMATS),
            CohortSettings(poll_seconds=0.2),
            client=client,
        )
        deadline = time.monotonic() + 300
        busy_polls = 0
        while True:
            try:
                step = next(job)
            except StopIteration as finished:
                report = finished.value
                break
            assert time.monotonic() < deadline, "cohort did not finish in 300 s"
            if killed:
                continue
            busy = {w: keys for w, keys in client.processing().items() if keys}
            # kill mid-slide when a slide's tiles are seen running; a slide can also finish
            # between two polls (CI, 2 busy cores), so after a few busy polls kill anyway
            running_tiles = "(0/" not in step.message
            busy_polls += bool(busy)
            if busy and (running_tiles or busy_polls >= 3):
                worker = sorted(busy)[0]
                position = int(str(busy[worker][0]).split("-")[-2])  # from the task key
                killed.update(
                    worker=worker, pid=pids[worker], slides_done=step.done, slide=position
                )
                os.kill(pids[worker], signal.SIGKILL)
        assert killed, "no worker was busy: the test never killed one"
        assert killed["slides_done"] < len(cohort_slides)  # killed while work was left
        assert killed["pid"] not in client.run(os.getpid).values()
    finally:
        client.close()
        cluster.close()

    assert report.ok, report.describe()
    assert [r.slide for r in report.slides] == [s.resolve() for s in cohort_slides]
    assert all(r.status in ("done", "skipped") for r in report.slides)
    # the slide whose worker died was predicted again elsewhere, completely
    lost = report.slides[int(killed["slide"])]  # type: ignore[call-overload]
    assert lost.status == "done" and lost.tiles_cached + lost.tiles_predicted == lost.tiles_wanted
    for slide in cohort_slides:
        _same_outputs(tmp_path / "single" / slide.name, out / slide.name)
    rows = (out / "cohort.csv").read_text().splitlines()
    assert rows[0].startswith("slide,status,tiles,cached,predicted,failed,seconds,worker")
    assert len(rows) == 1 + len(cohort_slides)  # one row per slide, none twice


def test_cluster_setting_is_parsed() -> None:
    assert CohortSettings.parse(cluster="local:3").local_workers == 3
    assert CohortSettings.parse(scheduler="tcp://a:8786").scheduler == "tcp://a:8786"
    assert CohortSettings.parse(cluster="local:1", device="cuda").needs_gpu
    for bad in ("local", "local:0", "slurm:4", "local:x"):
        with pytest.raises(ValueError, match="local:N"):
            CohortSettings.parse(cluster=bad)


def test_cli_scheduler_address_reports_each_slide(
    he_slide: Path, level0_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--scheduler ADDRESS``: a bad slide is reported in its row; the good one finishes."""
    import csv

    from omicslens.cli.main import main

    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    )
    try:
        out = tmp_path / "out"
        missing = tmp_path / "nowhere.svs"
        code = main(
            [
                "predict",
                str(he_slide),
                str(missing),
                "--model",
                str(level0_bundle),
                "--out",
                str(out),
                "--format",
                "csv",
                "--scheduler",
                cluster.scheduler_address,
            ]
        )
    finally:
        cluster.close()
    assert code == 1
    rows = list(csv.DictReader((out / "cohort.csv").open()))
    assert [r["status"] for r in rows] == ["done", "error"]
    assert "no such file" in rows[1]["error"]
    assert int(rows[0]["tiles"]) == int(rows[0]["predicted"]) > 0
    assert (out / he_slide.name / "tiles.csv").exists()
    assert "nowhere.svs" in capsys.readouterr().err
    # the CLI's client is closed and never became this process's dask scheduler
    with pytest.raises(ValueError, match="No global client found"):
        distributed.get_client()
