"""The CI subsets of the fuzz families: a spread of cases plus the ones that must run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omicslens.bench import fuzz

DATA = Path(__file__).resolve().parents[1] / "data"


def subset_cases(
    folder: Path, families: list[str], count: int, must_have: Sequence[str]
) -> list[fuzz.Case]:
    """``count`` cases spread over ``families`` (sources built in ``folder``), plus every
    case named in ``must_have`` (the regressions of fixed bugs)."""
    every = fuzz.generate_cases(fuzz.build_all_sources(folder, families, DATA))
    picked = fuzz.spread(every, count)
    names = {c.name for c in picked}
    return picked + [c for c in every if c.name in must_have and c.name not in names]


def failures(results: list[fuzz.Result]) -> list[str]:
    """One line per result that is not ``ok`` or a typed refusal, with each run's output."""
    return [
        f"{r.case}: {r.outcome}: "
        + "; ".join(f"{n}={o[0]} {o[1][:160]!r}" for n, o in r.runs.items())
        for r in results
        if r.outcome in fuzz.FAILURES
    ]
