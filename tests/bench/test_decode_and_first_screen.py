"""``bench decode`` and ``bench first-screen`` run end to end on small inputs, and their
reports say what they measured (the figures themselves belong in docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from omicslens.bench import decode, first_screen
from tests.conftest import CMU1, SAMPLES
from tests.helpers.bundles import make_bundle


def test_bench_decode_compares_both_modes_on_the_same_pixels(tmp_path: Path) -> None:
    out = tmp_path / "decode.json"
    md = tmp_path / "decode.md"
    code = decode.main(["--slides", str(CMU1), "--tiles", "12", "--rounds", "1", "--json",
                        str(out), "--markdown", str(md)])  # fmt: skip
    assert code == 0  # 0 only when both modes gave bit-identical patches
    (result,) = json.loads(out.read_text())["results"]
    assert result["identical"] is True and result["patches"] == 12
    assert set(result["cpu_ms_per_patch"]) == set(decode.MODES)
    assert all(value > 0 for value in result["cpu_ms_per_patch"].values())
    assert result["cpu_ratio"] == pytest.approx(
        result["cpu_ms_per_patch"][decode.FINAL] / result["cpu_ms_per_patch"][decode.BASELINE],
        abs=2e-3,
    )
    assert "CMU-1-Small-Region.svs" in md.read_text() and "| yes |" in md.read_text()


def test_bench_decode_slide_argument_takes_a_resolution() -> None:
    assert decode._slide_argument("/x/a.jpg:0.6878") == (Path("/x/a.jpg"), 0.6878)
    assert decode._slide_argument("/x/a.svs") == (Path("/x/a.svs"), None)


@pytest.mark.gui
@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display: run under xvfb-run")
def test_bench_first_screen_waits_for_every_visible_tile(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OMICSLENS_CACHE_DIR", str(tmp_path / "cache"))
    bundle = make_bundle(tmp_path / "bundle", patch_size=32, spacing=8.0)
    out, md = tmp_path / "fs.json", tmp_path / "fs.md"
    code = first_screen.main(["--slide", str(SAMPLES / "CMU-1-Small-Region.svs"), "--model",
                              str(bundle), "--pacing", "both", "--rounds", "1", "--json",
                              str(out), "--markdown", str(md)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    rows = result["rounds"]
    assert [row["pacing"] for row in rows] == ["measured", "fixed"]  # both, one round
    for row in rows:
        assert row["tiles"] > 0
        assert 0 < row["first_tile_s"] <= row["all_tiles_s"]
        assert row["frames_drawn"] > 0  # the pacer saw the canvas's frames
        assert row["longest_frame_ms"] > 0 and row["max_gap_ms"] > 0  # the loop was timed
        assert row["gaps_over_50ms"] >= 0
    fixed = rows[1]
    assert fixed["draw_interval_ms"] == 100.0  # 'fixed' is the old 10 Hz rule
    assert result["all_tiles_median_s"] == rows[0]["all_tiles_s"]
    assert set(result["variants"]) == {row["variant"] for row in rows}
    text = md.read_text()
    assert text.count("median first full screen") == 2
