"""``predict_slide``: failures per tile are reported, never written, and retried."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from omicslens.app.predict import PredictOptions, SlideReport, predict_slide
from omicslens.app.progress import Progress, run_job
from omicslens.app.tiles import load_predictor
from omicslens.models.session import InferenceSession


def _run(slide: Path, bundle: Path, out: Path, **options: object) -> tuple[SlideReport, list]:
    steps: list[Progress] = []
    report = run_job(
        predict_slide(slide, load_predictor(bundle), out, PredictOptions(**options)), steps.append
    )
    return report, steps


def test_unreadable_tiles_are_reported_not_written(
    damaged_slide: Path, level0_bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    report, steps = _run(damaged_slide, level0_bundle, out)
    folder = out / damaged_slide.name
    assert report.status == "failed" and not report.ok
    assert report.tiles_failed > 0
    assert report.tiles_predicted + report.tiles_failed == report.tiles_wanted
    assert all("SlideReadError" in f.reason and "JPEG" in f.reason for f in report.failures)
    # every failed tile touches a zeroed 240 px source tile (tiles 6 and 11: x 240..480,
    # y 240..720)
    for f in report.failures:
        assert f.x < 480 and f.x + f.width > 240 and f.y < 720 and f.y + f.height > 240
    # progress never claimed the failed tiles as done
    last = [s for s in steps if s.stage == "tiles"][-1]
    assert last.done == report.tiles_predicted and last.failed == report.tiles_failed
    # nothing but the failure record: no data rows, no done.json
    assert sorted(p.name for p in folder.iterdir()) == ["failed.json"]
    record = json.loads((folder / "failed.json").read_text())
    assert [t["index"] for t in record["failed"]] == [f.index for f in report.failures]

    # a rerun retries exactly the failed tiles (the rest come from the cache)
    again, _ = _run(damaged_slide, level0_bundle, out)
    assert again.tiles_cached == report.tiles_predicted
    assert again.tiles_predicted == 0
    assert [f.index for f in again.failures] == [f.index for f in report.failures]
    assert not (folder / "done.json").exists()


def test_transient_failures_are_retried_then_done(
    he_slide: Path, level0_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    from omicslens.core import open_slide

    with open_slide(he_slide) as slide:
        tissue = np.flatnonzero(
            InferenceSession.open(slide, level0_bundle, cache=False).tissue_tiles
        )
    flaky = {int(tissue[3]), int(tissue[len(tissue) // 2]), int(tissue[-1])}
    real_read = InferenceSession.read_patch
    attempts: list[int] = []

    def failing_read(self: InferenceSession, index: int) -> np.ndarray:
        attempts.append(index)
        if index in flaky:
            raise OSError(f"network share dropped while reading tile {index}")
        return real_read(self, index)

    monkeypatch.setattr(InferenceSession, "read_patch", failing_read)
    first, _ = _run(he_slide, level0_bundle, out, formats=("csv",))
    wanted = first.tiles_wanted
    assert sorted(f.index for f in first.failures) == sorted(flaky)
    assert all("OSError: network share dropped" in f.reason for f in first.failures)

    attempts.clear()
    monkeypatch.setattr(
        InferenceSession,
        "read_patch",
        lambda self, index: attempts.append(index) or real_read(self, index),
    )
    second, _ = _run(he_slide, level0_bundle, out, formats=("csv",))
    assert sorted(attempts) == sorted(flaky)  # only the failed tiles were read again
    assert second.status == "done" and second.tiles_predicted == len(flaky)
    folder = out / he_slide.name
    assert not (folder / "failed.json").exists()
    done = json.loads((folder / "done.json").read_text())
    assert done["tiles"] == wanted and done["outputs"] == ["tiles.csv"]
    table = pd.read_csv(folder / "tiles.csv")
    assert len(table) == wanted and not table.isna().any().any()

    # and a third run skips the finished slide without touching its files
    before = (folder / "tiles.csv").stat().st_mtime_ns
    third, _ = _run(he_slide, level0_bundle, out, formats=("csv",))
    assert third.status == "skipped"
    assert (folder / "tiles.csv").stat().st_mtime_ns == before


def test_a_model_that_returns_nan_fails_those_tiles(
    he_slide: Path, level0_bundle: Path, tmp_path: Path
) -> None:
    predictor = load_predictor(level0_bundle)
    real = predictor.predict

    def half_nan(patches: np.ndarray) -> np.ndarray:
        values = real(patches)
        values[::2] = np.nan
        return values

    predictor.predict = half_nan  # type: ignore[method-assign]
    report = run_job(predict_slide(he_slide, predictor, tmp_path, PredictOptions(formats=("csv",))))
    assert report.status == "failed"
    assert report.tiles_failed > 0
    assert report.tiles_predicted + report.tiles_failed == report.tiles_wanted
    assert all("NaN" in f.reason for f in report.failures)


def test_outputs_in_the_way_are_refused_before_any_work(
    he_slide: Path, level0_bundle: Path, tmp_path: Path
) -> None:
    folder = tmp_path / he_slide.name
    folder.mkdir()
    (folder / "tiles.h5ad").write_text("someone's analysis")
    job = predict_slide(he_slide, load_predictor(level0_bundle), tmp_path)
    with pytest.raises(FileExistsError, match=r"tiles\.h5ad exists"):
        next(job)
    assert (folder / "tiles.h5ad").read_text() == "someone's analysis"
    assert not (tmp_path / ".cache").exists()


def test_a_run_killed_while_writing_is_finished_by_a_rerun_without_force(
    he_slide: Path, level0_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after tiles.csv, before tiles.h5ad: the rerun (no --force) replaces the
    unfinished run's files, cleans its temporaries, and matches an uninterrupted run."""
    import omicslens.core.exports as exports
    from omicslens.core.run_marker import RUNNING_FILE

    formats = ("csv", "h5ad")
    clean, _ = _run(he_slide, level0_bundle, tmp_path / "clean", formats=formats)
    assert clean.status == "done"

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # stands in for SIGKILL / Ctrl-C in the middle of export

    out = tmp_path / "killed"
    with monkeypatch.context() as patch:
        patch.setattr(exports, "write_h5ad", killed)
        with pytest.raises(KeyboardInterrupt):
            _run(he_slide, level0_bundle, out, formats=formats)
    folder = out / he_slide.name
    assert (folder / "tiles.csv").exists() and not (folder / "done.json").exists()
    assert (folder / RUNNING_FILE).exists()
    (folder / ".tiles.h5ad.x1y2z3.tmp").write_bytes(b"half a file")  # a killed writer's

    again, _ = _run(he_slide, level0_bundle, out, formats=formats)
    assert again.status == "done" and again.tiles_predicted == 0  # all from the cache
    assert not (folder / RUNNING_FILE).exists()
    assert not list(folder.glob(".tiles.h5ad.*"))
    clean_csv = (tmp_path / "clean" / he_slide.name / "tiles.csv").read_text()
    assert (folder / "tiles.csv").read_text() == clean_csv

    # a finished run's outputs are not ours to replace
    (folder / "done.json").unlink()
    with pytest.raises(FileExistsError):
        next(predict_slide(he_slide, load_predictor(level0_bundle), out, PredictOptions()))


def test_tissue_found_ahead_is_the_mask_predict_would_find_and_is_used(
    he_slide: Path, level0_bundle: Path, tmp_path: Path
) -> None:
    """``omicslens predict`` finds the first slide's tissue while torch loads; the run
    must use that mask (not find it again) and it must be the one it would have found."""
    from omicslens.app.predict import find_tissue
    from omicslens.core import open_slide
    from omicslens.core.tissue import TissueMask, TissueSettings, detect_tissue

    ahead = find_tissue(he_slide)
    assert ahead is not None
    with open_slide(he_slide) as slide:
        again = detect_tissue(slide, TissueSettings())
    assert np.array_equal(ahead.mask, again.mask) and ahead.mask.any()
    assert (ahead.scale_x, ahead.scale_y) == (again.scale_x, again.scale_y)

    predictor = load_predictor(level0_bundle)
    usual = run_job(predict_slide(he_slide, predictor, tmp_path / "a", PredictOptions()))
    given = run_job(
        predict_slide(he_slide, predictor, tmp_path / "b", PredictOptions(), tissue=ahead)
    )
    assert given.tiles_wanted == usual.tiles_wanted > 0
    name = he_slide.name
    assert (tmp_path / "a" / name / "tiles.csv").read_bytes() == (
        tmp_path / "b" / name / "tiles.csv"
    ).read_bytes()
    # an empty mask handed in is obeyed: the session did not look for tissue itself
    empty = TissueMask(np.zeros_like(ahead.mask), ahead.scale_x, ahead.scale_y, ahead.threshold)
    none = run_job(
        predict_slide(he_slide, predictor, tmp_path / "c", PredictOptions(), tissue=empty)
    )
    assert none.tiles_wanted == 0


def test_tissue_ahead_of_an_unreadable_slide_is_none_not_an_error(tmp_path: Path) -> None:
    from omicslens.app.predict import find_tissue

    broken = tmp_path / "broken.svs"
    broken.write_bytes(b"not a tiff")
    assert find_tissue(broken) is None
    assert find_tissue(tmp_path / "missing.svs") is None
