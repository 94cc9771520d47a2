"""A fast CI subset of ``omicslens bench fuzz --only bundles regions`` (issue 13).

Mutations of a tiny model bundle (config.json and weights, in safetensors, TorchScript and
state-dict form) and of GeoJSON that QuPath itself wrote, each in a child forked from a
preloaded forkserver with a wall-time and an address-space limit. A bundle case runs
``model inspect``, ``model validate`` and ``predict`` on a small slide; a region case runs
the import used by ``predict --regions`` and the viewer, and some run ``predict --regions``.
No case may end in a traceback, hang, memory blow-up, crash, unnamed refusal, invalid
output or an executed pickle.
"""

from __future__ import annotations

import pytest

from omicslens.bench import fuzz
from omicslens.cli.main import main as cli_main
from tests.fuzz.subsets import failures, subset_cases

SUBSET = 40
TIMEOUT_S = 20.0

#: the cases behind each root fix: always in the subset
MUST_HAVE = (
    "bundle-safetensors/transform/resize-1e6",
    "bundle-safetensors/architecture-args/width-1e9",
    "bundle-safetensors/architecture-args/depth-1e6",
    "bundle-state-dict/weights-flip/body-2",
    "bundle-state-dict/weights-pickle/torch-save",
    "bundle-safetensors/weights-pickle/model-pt-only",
    "regions-qupath-fc/geometry/0-point",
    "regions-qupath-fc/geometry/1-nested-1000",
    "regions-qupath-fc/properties/0-name-nul",
    "regions-qupath-fc/properties/2-name-surrogate",
    "regions-qupath-fc/document/only-points",
    "regions-qupath-fc/file/nested-100k",
)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[fuzz.Case]:
    return subset_cases(
        tmp_path_factory.mktemp("fuzz-bundles-regions"), ["bundles", "regions"], SUBSET, MUST_HAVE
    )


@pytest.fixture(scope="module")
def results(cases: list[fuzz.Case]) -> list[fuzz.Result]:
    return fuzz.run_fuzz(cases, cli_main, timeout=TIMEOUT_S, memory_gib=3.0, jobs=2)


def test_subset_covers_bundles_weights_and_regions(cases: list[fuzz.Case]) -> None:
    assert set(MUST_HAVE) <= {c.name for c in cases}
    assert {c.check for c in cases} == {"bundle", "regions"}
    sources = {c.source for c in cases}
    assert {"bundle-safetensors", "bundle-torchscript", "bundle-state-dict"} <= sources
    assert any(c.options.get("predict") for c in cases if c.check == "regions")


def test_no_bundle_or_region_case_fails(results: list[fuzz.Result]) -> None:
    bad = failures(results)
    assert not bad, "\n".join(bad)


def test_refusals_and_valid_results_both_occur(results: list[fuzz.Result]) -> None:
    assert sum(r.outcome == "typed" for r in results) > len(results) // 2
    assert any(r.outcome == "ok" for r in results)  # harmless mutations still work
    predicted = [r for r in results if r.runs.get("predict", ("", ""))[0] == "ok"]
    assert predicted  # and some wrote outputs that were checked


def test_pickled_weights_are_never_executed(
    cases: list[fuzz.Case], results: list[fuzz.Result]
) -> None:
    pickles = [r for r in results if r.kind == "weights-pickle"]
    assert pickles
    assert all(r.outcome == "typed" for r in pickles), pickles
