"""The unfinished-run marker: which outputs a rerun may replace without --force."""

from __future__ import annotations

from pathlib import Path

from omicslens.core.run_marker import (
    RUNNING_FILE,
    begin_run,
    clean_stale_temporaries,
    end_run,
    unfinished_run,
)


def test_marker_lifecycle_and_done_file(tmp_path: Path) -> None:
    assert not unfinished_run(tmp_path)
    begin_run(tmp_path, {"slide": "a.svs"})
    assert unfinished_run(tmp_path) and unfinished_run(tmp_path, "done.json")
    (tmp_path / "done.json").write_text("{}")
    assert not unfinished_run(tmp_path, "done.json")  # the completion record wins
    end_run(tmp_path)
    assert not (tmp_path / RUNNING_FILE).exists() and not unfinished_run(tmp_path)


def test_only_our_temporaries_are_removed(tmp_path: Path) -> None:
    ours = [tmp_path / ".cells.csv.ab12.tmp", tmp_path / f".{RUNNING_FILE}.x9.tmp"]
    for path in ours:
        path.write_text("half")
    (tmp_path / ".predictions.ome.zarr.q1").mkdir()
    theirs = [tmp_path / "cells.csv", tmp_path / ".my-notes.txt", tmp_path / "x.cells.csv.tmp"]
    for path in theirs:
        path.write_text("keep")
    assert clean_stale_temporaries(tmp_path, ["cells.csv", "predictions.ome.zarr"]) == 3
    assert all(not path.exists() for path in ours)
    assert not (tmp_path / ".predictions.ome.zarr.q1").exists()
    assert all(path.read_text() == "keep" for path in theirs)
