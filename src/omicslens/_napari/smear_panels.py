"""The text panels of the Blood smear dock: the differential count and the patient line."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem

from omicslens.app.smear import similar_patient_text

if TYPE_CHECKING:
    from omicslens.app.crops import CropTypingReport
    from omicslens.hemato.smear import SmearAnalysis

NO_GENETIC_MODEL = (
    "No genetic model loaded. OmicsLens ships none: no genetically labelled smears were "
    "available to train one. Load an aggregator bundle (SCEMILA-style attention MIL or a "
    "GenBloom-G checkpoint in its published layout; see docs/hematology.md) to see "
    "patient-level AML subtype probabilities and the cells that drove them."
)


def fill_differential(table: QTableWidget, counts: dict[str, int]) -> None:
    """One row per class with cells (count, %), then the total."""
    shown = {name: count for name, count in counts.items() if count}
    total = sum(shown.values())
    table.setRowCount(len(shown) + 1)
    for row, (name, count) in enumerate([*shown.items(), ("Total", total)]):
        percent = f"{100 * count / total:.1f}" if total else "-"
        for column, text in enumerate((name, str(count), percent)):
            table.setItem(row, column, QTableWidgetItem(text))


def read_differential(table: QTableWidget) -> dict[str, int]:
    counts = {}
    for row in range(table.rowCount()):
        name, count = table.item(row, 0), table.item(row, 1)
        if name is not None and count is not None:
            counts[name.text()] = int(count.text())
    return counts


def collection_patient_text(report: CropTypingReport) -> str:
    patients = report.patients
    if not patients:
        return NO_GENETIC_MODEL
    return f"{report.genetic_model} (research use, not for diagnosis): " + "; ".join(
        f"{p.group}: {p.scores.predicted} ({p.cells} cells)" for p in patients
    )


def smear_patient_text(analysis: SmearAnalysis) -> str:
    scores = analysis.patient
    if scores is None:
        return NO_GENETIC_MODEL
    ranked = sorted(
        zip(scores.class_names, scores.probabilities, strict=True),
        key=lambda item: -float(item[1]),
    )
    top = np.argsort(-scores.attention)[:5]
    ids = [analysis.cells[int(i)].id for i in top]
    similar = ", ".join(similar_patient_text(patient) for patient in analysis.similar_patients[:5])
    return (
        f"{analysis.genetic_model} (research use, not for diagnosis): "
        + ", ".join(f"{name} {float(p):.2f}" for name, p in ranked)
        + f". Cells that weighed most: {', '.join(f'#{i}' for i in ids)}."
        + (f" Most similar reference patients: {similar}." if similar else "")
    )
