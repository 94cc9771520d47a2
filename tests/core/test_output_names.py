"""Asking for an output by name: exact, any case, gene-set labels, or a clear error."""

from __future__ import annotations

import pytest

from omicslens.core.output_names import UnknownOutputError, match_output, resolve_output

NAMES = ["CD74", "ERBB2", "GRB7", "KRT19", "ensemble_sd", "HER2 amplicon [2/4 genes]"]


def test_exact_any_case_and_gene_set_without_its_suffix() -> None:
    assert match_output("ERBB2", NAMES) == "ERBB2"
    assert match_output("erbb2", NAMES) == "ERBB2"
    assert match_output("her2 amplicon", NAMES) == "HER2 amplicon [2/4 genes]"
    assert match_output("ESR1", NAMES) is None


def test_an_absent_name_lists_close_names_and_the_model() -> None:
    with pytest.raises(UnknownOutputError) as raised:
        resolve_output("ERBB3", NAMES, "her2st-expression")
    message = str(raised.value)
    assert "her2st-expression does not predict 'ERBB3'" in message
    assert "ERBB2" in raised.value.close
    with pytest.raises(UnknownOutputError) as raised:
        resolve_output("zzzz", NAMES, "m")
    assert raised.value.close == [] and "closest" not in str(raised.value)
