"""A fast CI subset of ``omicslens bench fuzz --only measured references`` (issue 13).

Mutations of measured expression written from the real HER2ST cut (HER2ST counts and spot
tables, a Visium folder, an ``.h5ad``) run through ``load_measured`` and ``omicslens
evaluate-expression --json``; mutations of the bundled models' reference banks
(``domain.json``, ``robustness.json``, ``cell_reference.json``) run through ``model
validate`` and what reads each bank (``model inspect``, ``check-domain``, ``predict``,
``smear``). Each case runs in a child forked from a preloaded forkserver with a wall-time
and an address-space limit. No case may end in a traceback, hang, memory blow-up, crash,
unnamed refusal or invalid output.
"""

from __future__ import annotations

import pytest

from omicslens.bench import fuzz
from omicslens.cli.main import main as cli_main
from tests.fuzz.subsets import failures, subset_cases

SUBSET = 36
TIMEOUT_S = 30.0

#: the cases behind each root fix: always in the subset
MUST_HAVE = (
    "measured-her2st/counts-value/count=NaN",
    "measured-her2st/spots-value/x=NaN",
    "measured-her2st/spots-outside/one-far",
    "measured-her2st/counts-rows/no-header",
    "measured-her2st/counts-rows/crlf",
    "measured-her2st/counts-ids/malformed",
    "measured-visium/positions-value/pixel_row=1e39",
    "measured-visium/h5-value/shape-huge",
    "measured-visium/positions-value/array_row=1e39",
    "measured-visium/scalefactors/zero",
    "measured-h5ad/h5ad-value/counts-negative",
    "measured-h5ad/h5ad-value/spatial-nan",
    "measured-h5ad/h5ad-file/truncate-8",
    "measured-h5ad/h5ad-sparse/valid",
    "references-domain/file/fifo",
    "references-robustness/file/fifo",
    "references-cell/file/list",
)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[fuzz.Case]:
    return subset_cases(
        tmp_path_factory.mktemp("fuzz-measured-references"),
        ["measured", "references"],
        SUBSET,
        MUST_HAVE,
    )


@pytest.fixture(scope="module")
def results(cases: list[fuzz.Case]) -> list[fuzz.Result]:
    return fuzz.run_fuzz(cases, cli_main, timeout=TIMEOUT_S, memory_gib=3.0, jobs=1)


def test_subset_covers_every_layout_and_bank(cases: list[fuzz.Case]) -> None:
    assert set(MUST_HAVE) <= {c.name for c in cases}
    assert {c.check for c in cases} == {"measured", "references"}
    expected = {"measured-her2st", "measured-visium", "measured-h5ad"}
    expected |= {"references-domain", "references-robustness", "references-cell"}
    assert expected <= {c.source for c in cases}


def test_no_measured_or_reference_case_fails(results: list[fuzz.Result]) -> None:
    bad = failures(results)
    assert not bad, "\n".join(bad)


def test_refusals_and_valid_results_both_occur(results: list[fuzz.Result]) -> None:
    assert sum(r.outcome == "typed" for r in results) > len(results) // 2
    evaluated = [r for r in results if r.runs.get("evaluate", ("", ""))[0] == "ok"]
    assert evaluated  # harmless mutations still evaluate, and their JSON was checked
