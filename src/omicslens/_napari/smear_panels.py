"""The text panels of the Blood smear dock: the differential count and the patient line."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem

from omicslens.app.smear import similar_patient_text
from omicslens.hemato.cell_reference import REVIEW_CLASS

if TYPE_CHECKING:
    from omicslens.app.crops import CropTypingReport
    from omicslens.hemato.smear import SmearAnalysis

NO_GENETIC_MODEL = (
    "No genetic model loaded. OmicsLens ships none: no genetically labelled smears were "
    "available to train one. Load an aggregator bundle (SCEMILA-style attention MIL or a "
    "GenBloom-G checkpoint in its published layout; see docs/hematology.md) to see "
    "patient-level AML subtype probabilities and the cells that drove them."
)


#: counted apart, as a hematologist's differential does: "Unknown" (typed below the model's
#: confidence threshold) and "Review" (unlike every trained class, perhaps no white cell)
APART = ("Unknown", REVIEW_CLASS)
TYPED_TOTAL = "Total"
APART_MARK = "apart"


def fill_differential(table: QTableWidget, counts: dict[str, int]) -> None:
    """One row per class with cells: count and % of the typed white cells; then their
    total; then the cells counted apart (Unknown, Review), with no percentage, so that
    platelets or debris flagged for review never dilute the differential."""
    shown = {name: count for name, count in counts.items() if count}
    typed = {name: count for name, count in shown.items() if name not in APART}
    apart = [(name, shown[name]) for name in APART if name in shown]
    total = sum(typed.values())
    rows = [*typed.items(), (TYPED_TOTAL, total), *apart]
    table.setRowCount(len(rows))
    for row, (name, count) in enumerate(rows):
        share = f"{100 * count / total:.1f}" if total else "-"
        percent = APART_MARK if name in APART else share
        for column, text in enumerate((name, str(count), percent)):
            item = QTableWidgetItem(text)
            if name in APART:
                item.setToolTip(
                    "Counted apart: not a typed white cell, not in the percentages. "
                    "Re-class it to count it."
                )
            table.setItem(row, column, item)


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
