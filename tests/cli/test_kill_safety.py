"""SIGKILL at random moments: outputs are complete or absent, and a rerun finishes the job.

The real ``omicslens predict`` (every format, region statistics) and ``omicslens smear``
run in child processes forked from a fork server that has already imported OmicsLens (so
a kill lands in the work, not in ``import torch``) and are killed with SIGKILL after a
random delay drawn over the whole length of an uninterrupted run. After every kill:

- each output that exists is complete and equal to an uninterrupted run's;
- ``done.json`` never exists without every output beside it.

Then a rerun **without --force** finishes the folder: its outputs equal the uninterrupted
run's (tile values bit for bit: predictions do not depend on batch composition), no
temporary file is left and the unfinished-run marker is gone. A finished run is then
left alone (a rerun without --force changes nothing).
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import random
import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from omicslens.core.run_marker import RUNNING_FILE
from tests.conftest import CMU1, DATA, SAMPLES
from tests.helpers.bundles import make_bundle

pytestmark = pytest.mark.slow

REGIONS = DATA / "qupath" / "qupath-written-fc.geojson"
SMEAR = SAMPLES / "bccd-BloodImage_00001.tif"
PREDICT_KILLS = 50
SMEAR_KILLS = 12


LOG = "omicslens-child.log"


def _cli_child(argv: Sequence[str], log: str) -> None:
    """Runs in the forked child: the real CLI entry point, output into ``log``."""
    import torch

    torch.set_num_threads(1)
    stream = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(stream, 1)
    os.dup2(stream, 2)
    from omicslens.cli.main import main

    os._exit(main(list(argv)))


def _context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["omicslens.cli.main", "omicslens.app.predict", "torch"])
    return context


def _idle() -> None:
    pass


def _warm_fork_server() -> None:
    """Start the fork server (it imports torch and OmicsLens once) before anything is
    timed, so the kill delays are drawn over the work and not over that import."""
    child = _context().Process(target=_idle)
    child.start()
    child.join(600)


def _run(argv: Sequence[str], kill_after: float | None = None) -> tuple[int | None, float]:
    """Run the CLI in a child; kill it with SIGKILL after ``kill_after`` seconds.

    Returns (exit code, or None when it was killed; seconds it ran)."""
    log = Path(argv[argv.index("--out") + 1]).parent / LOG
    child = _context().Process(target=_cli_child, args=(list(argv), str(log)))
    started = time.monotonic()
    child.start()
    child.join(kill_after if kill_after is not None else 600)
    if child.is_alive():
        if kill_after is None:
            child.kill()
            child.join()
            raise AssertionError(f"{argv} did not finish in 600 s")
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join()
        return None, time.monotonic() - started
    return child.exitcode, time.monotonic() - started


# -- what "complete and equal" means per output ----------------------------------------
def _content(path: Path) -> object:
    """A comparable form of one output (bytes where the format is deterministic)."""
    if path.name.endswith(".gz"):
        return gzip.decompress(path.read_bytes())
    if path.suffix == ".h5ad":
        import anndata

        table = anndata.read_h5ad(path)
        return (table.X.tobytes(), table.obs.to_csv(), table.var.to_csv())
    if path.suffix == ".zarr":
        import zarr

        root = zarr.open_group(str(path), mode="r")
        arrays = sorted((name, np.asarray(array).tobytes()) for name, array in root.arrays())
        return (json.dumps(dict(root.attrs), sort_keys=True), arrays)
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    return path.read_bytes()


def _outputs(folder: Path) -> dict[str, Path]:
    return {
        path.name: path
        for path in folder.iterdir()
        if not path.name.startswith(".") and path.name != "failed.json"
    }


def _assert_complete_or_absent(folder: Path, reference: dict[str, object]) -> None:
    if not folder.exists():
        return
    present = _outputs(folder)
    assert set(present) <= set(reference), f"unexpected files {set(present) - set(reference)}"
    for name, path in present.items():
        assert _content(path) == reference[name], f"{name} is not the complete output"
    if "done.json" in present:
        assert set(present) == set(reference), "done.json written before every output"


def _assert_finished(folder: Path, reference: dict[str, object]) -> None:
    present = _outputs(folder)
    assert set(present) == set(reference)
    for name, path in present.items():
        assert _content(path) == reference[name], name
    leftovers = [path.name for path in folder.iterdir() if path.name.startswith(".")]
    assert leftovers == [], f"temporaries or marker left: {leftovers}"


def _log(out: Path) -> str:
    path = out.parent / LOG
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"


def _kill_campaign(
    argv: Sequence[str],
    out: Path,
    folder: Path,
    reference: dict[str, object],
    duration: float,
    kills: int,
    seed: int,
) -> dict[str, int]:
    """Kill ``kills`` runs at random moments; finish each folder with a plain rerun."""
    rng = random.Random(seed)
    counts = {"killed": 0, "finished_by_rerun": 0, "ran_to_end": 0}
    while counts["killed"] < kills:
        code, _ = _run(argv, kill_after=rng.uniform(0.0, duration))
        if code is None:
            counts["killed"] += 1
            _assert_complete_or_absent(folder, reference)
            # half the time kill the rerun as well, so kills pile up in one folder
            if rng.random() < 0.5 and counts["killed"] < kills:
                continue
            code, _ = _run(argv)  # no --force
            assert code == 0, f"the rerun after a kill failed with {code}: {_log(out)}"
            counts["finished_by_rerun"] += 1
        else:
            assert code == 0, f"a run after a kill failed with {code}: {_log(out)}"
            counts["ran_to_end"] += 1
        _assert_finished(folder, reference)
        assert not (folder / RUNNING_FILE).exists()
        shutil.rmtree(out)  # the next campaign starts from nothing
    return counts


def test_predict_survives_50_random_sigkills(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle", patch_size=32, spacing=4.0)
    out = tmp_path / "out"

    def argv(target: Path) -> list[str]:
        return [
            "predict",
            str(CMU1),
            "--model",
            str(bundle),
            "--out",
            str(target),
            "--regions",
            str(REGIONS),
        ]

    _warm_fork_server()
    code, duration = _run(argv(tmp_path / "reference"))
    assert code == 0
    reference_folder = tmp_path / "reference" / CMU1.name
    reference = {name: _content(path) for name, path in _outputs(reference_folder).items()}
    assert {"tiles.csv", "tiles.h5ad", "predictions.ome.zarr", "regions.csv"} <= set(reference)

    counts = _kill_campaign(
        argv(out), out, out / CMU1.name, reference, duration, PREDICT_KILLS, seed=13
    )
    assert counts["killed"] == PREDICT_KILLS
    assert counts["finished_by_rerun"] > 0
    print(f"predict kill campaign (reference run {duration:.1f} s): {counts}")

    # a finished run is never replaced without --force
    assert _run(argv(tmp_path / "reference"))[0] == 0
    assert {name: _content(path) for name, path in _outputs(reference_folder).items()} == (
        reference
    )


def test_smear_survives_random_sigkills(tmp_path: Path) -> None:
    out = tmp_path / "out"

    def argv(target: Path) -> list[str]:
        return ["smear", str(SMEAR), "--out", str(target)]

    code, duration = _run(argv(tmp_path / "reference"))
    assert code == 0
    reference = {name: _content(path) for name, path in _outputs(tmp_path / "reference").items()}
    assert {"cells.csv", "cells.geojson", "features.h5", "smear.json"} <= set(reference)
    reference.pop("features.h5")  # HDF5 bytes hold no timestamps we control: compared below

    def complete(folder: Path) -> None:
        import h5py

        features = folder / "features.h5"
        if features.exists():
            with h5py.File(features, "r") as handle:
                assert len(handle.keys()) > 0

    rng = random.Random(29)
    killed = 0
    while killed < SMEAR_KILLS:
        code, _ = _run(argv(out), kill_after=rng.uniform(0.0, duration))
        if code is not None:
            assert code == 0
        else:
            killed += 1
        present = {
            name: path
            for name, path in (_outputs(out).items() if out.exists() else [])
            if name != "features.h5"
        }
        for name, path in present.items():
            assert _content(path) == reference[name], name
        if out.exists():
            complete(out)
        if code is None:
            assert _run(argv(out))[0] == 0  # no --force
        finished = {n: p for n, p in _outputs(out).items() if n != "features.h5"}
        assert {name: _content(path) for name, path in finished.items()} == reference
        assert [path.name for path in out.iterdir() if path.name.startswith(".")] == []
        shutil.rmtree(out)
