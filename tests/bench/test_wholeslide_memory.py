"""The whole-slide memory benchmark samples a real ``omicslens predict`` child process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omicslens.bench.wholeslide_memory import MemoryRun, main
from tests.conftest import CMU1
from tests.helpers.bundles import make_bundle


def test_quarters_and_growth_come_from_the_samples() -> None:
    run = MemoryRun("s", "m", 100.0, 10, [(0.0, 100.0), (30.0, 400.0), (60.0, 420.0)])
    assert run.peak_mib == 420.0
    assert run.at(0.25) == 100.0 and run.at(0.5) == 400.0 and run.at(1.0) == 420.0
    assert run.growth_after_first_quarter_mib == 320.0


@pytest.mark.slow
def test_a_run_on_a_real_slide_reports_tiles_and_rss(tmp_path: Path, capsys) -> None:
    bundle = make_bundle(tmp_path / "bundle", patch_size=32, spacing=4.0)
    report = tmp_path / "memory.json"
    code = main(
        ["--slide", str(CMU1), "--model", str(bundle), "--every", "0.1", "--json", str(report)]
    )
    assert code == 0
    data = json.loads(report.read_text())
    assert data["tiles"] > 0
    assert data["samples"] and data["peak_mib"] > 50  # python + torch are resident
    assert "growth 25 % -> end" in capsys.readouterr().out
