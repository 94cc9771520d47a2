"""Every ``omicslens bench KIND --help`` shows that benchmark's own options."""

from __future__ import annotations

import pytest

from omicslens.cli.main import main

KINDS = ("io", "inference", "decode", "peer", "first-screen", "cohort", "fuzz",
         "crop-review", "gpu", "wholeslide-memory")  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_bench_help_is_the_benchmarks_own(kind: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", kind, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: omicslens bench {kind} [-h] ")  # options follow -h
