"""The smear job's pieces that the CLI and the dock share."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omicslens.app.smear import similar_patient_text
from omicslens.hemato.aggregators import retrieve_similar, write_reference_bank


def test_similar_patients_are_named_as_the_aggregator_writes_them(tmp_path: Path) -> None:
    bank = tmp_path / "bank.h5"
    embeddings = np.eye(3, 4)
    write_reference_bank(
        bank, embeddings, ["AML-NPM1", "SCD", "AML-RUNX1-RUNX1T1"], ["P-07", "P-11", "P-23"]
    )
    found = retrieve_similar(np.array([1.0, 0.1, 0.0, 0.0]), bank, top_k=2)
    assert similar_patient_text(found[0]) == "P-07 (AML-NPM1)"  # was "? (AML-NPM1)"
    assert similar_patient_text(found[1]) == "P-11 (SCD)"
