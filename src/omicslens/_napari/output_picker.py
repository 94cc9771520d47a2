"""The Predict dock's output list: a model's genes, uncertainty and gene sets to choose from.

Split out of :mod:`omicslens._napari.inference_widget` so that the dock keeps to loading
and running a model: this module owns what the list shows (labels, validation r and
robustness grade per gene, flags below a threshold), searching it, and finding an output
by name. It holds Qt widgets but no layer, session or job; the dock adds its widgets to
its layout and reacts to the list's ``currentRowChanged``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
)

from omicslens.core.genesets import OutputCombination, available_gene_sets, single_output

if TYPE_CHECKING:
    from omicslens.models.session import InferenceSession

#: Genes whose validation Pearson is below this are flagged in the picker.
DEFAULT_FLAG_BELOW = 0.2


class OutputPicker:
    """The search box, output list and flag threshold of the Predict dock.

    ``say`` shows a message in the dock's status line; ``model_name`` names the loaded
    model (None when there is none) for the "no such output" messages.
    """

    def __init__(self, say: Callable[[str], None], model_name: Callable[[], str | None]) -> None:
        self._say = say
        self._model_name = model_name
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Search outputs (genes, classes)…")
        self.filter_edit.setToolTip("Type part of a gene or output name to filter the list")
        self.output_list = QListWidget()
        self.flag_spin = QDoubleSpinBox()
        self.flag_spin.setRange(-1.0, 1.0)
        self.flag_spin.setSingleStep(0.05)
        self.flag_spin.setValue(DEFAULT_FLAG_BELOW)
        self.flag_spin.setToolTip("Genes whose validation Pearson r is below this are flagged")
        self.choices: list[OutputCombination] = []
        self._grades: dict[str, str] = {}
        self.filter_edit.textChanged.connect(self._filter_outputs)
        self.flag_spin.valueChanged.connect(self._reflag)

    def add_to(self, layout: QVBoxLayout) -> None:
        """The "Output" label, search box, list (stretching) and flag row, in that order."""
        layout.addWidget(QLabel("Output"))
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.output_list, 1)
        flag_row = QHBoxLayout()
        flag_row.addWidget(QLabel("Flag genes with validation r below"))
        flag_row.addWidget(self.flag_spin)
        layout.addLayout(flag_row)

    def choice_at(self, row: int) -> OutputCombination:
        """The output shown in list row ``row``."""
        return self.choices[int(self.output_list.item(row).data(Qt.UserRole))]

    def fill(self, session: InferenceSession) -> None:
        """Genes (with validation r, flagged when low), then uncertainty and gene sets."""
        names = list(session.bundle.output_names)
        meta = session.bundle.output_meta
        self._grades = session.bundle.robustness_grades
        self.choices = []
        self.output_list.blockSignals(True)
        self.output_list.clear()
        for position in range(len(names)):
            kind = meta[position].get("kind", "gene")
            choice = single_output(names, position)
            if kind == "uncertainty":
                choice = OutputCombination(
                    "Uncertainty (ensemble SD)", choice.weights, 0.0, choice.used
                )
            elif kind == "domain":
                choice = OutputCombination(
                    "Domain distance (1 = edge of training data)", choice.weights, 0.0, choice.used
                )
            self._add_choice(choice, meta[position].get("pearson"), kind)
        for gene_set in available_gene_sets(names, meta):
            self._add_choice(gene_set, None, "set")
        self.output_list.setCurrentRow(0)
        self.output_list.blockSignals(False)
        self._reflag()

    def select(self, name: str) -> bool:
        """Show the output called ``name`` (gene, class, gene set; any case). When the
        model has no such output, say so with the closest names and keep the current one."""
        from omicslens.core.output_names import UnknownOutputError, match_output, resolve_output

        labels = [choice.label for choice in self.choices]
        names = [
            choice.used[0] if len(choice.used) == 1 else choice.label for choice in self.choices
        ]
        found = match_output(name, labels) or match_output(name, names)
        if found is None:
            model = self._model_name()
            if model is None:
                model = "this model"
            try:
                resolve_output(name, names, model)
            except UnknownOutputError as error:
                self._say(f"{error}.")
            return False
        row = labels.index(found) if found in labels else names.index(found)
        self.output_list.setCurrentRow(row)
        self.output_list.scrollToItem(self.output_list.item(row))
        return True

    def _add_choice(self, choice: OutputCombination, pearson: Any, kind: str) -> None:
        item = QListWidgetItem()
        item.setData(Qt.UserRole, len(self.choices))
        item.setData(Qt.UserRole + 1, pearson if isinstance(pearson, (int, float)) else None)
        item.setData(Qt.UserRole + 2, kind)
        if kind == "set":
            item.setToolTip(
                f"Mean of standardised predictions of {', '.join(choice.used)}"
                + (
                    f"; not predicted by this model: {', '.join(choice.missing)}"
                    if choice.missing
                    else ""
                )
            )
        self.choices.append(choice)
        self.output_list.addItem(item)

    def _reflag(self, value: float = 0.0) -> None:
        threshold = self.flag_spin.value()
        for row in range(self.output_list.count()):
            item = self.output_list.item(row)
            choice = self.choices[int(item.data(Qt.UserRole))]
            pearson = item.data(Qt.UserRole + 1)
            kind = item.data(Qt.UserRole + 2)
            text = choice.label
            if kind == "set":
                text = f"Σ {text}"
            elif pearson is not None:
                low = pearson < threshold
                grade = self._grades.get(choice.used[0], "") if len(choice.used) == 1 else ""
                graded = f", robustness {grade}" if grade else ""
                text = f"{'⚠ ' if low else ''}{text}  (r = {pearson:.2f}{graded})"
                item.setToolTip(
                    f"Validation Pearson r = {pearson:.2f}"
                    + (f": below {threshold:.2f}, do not rely on this map" if low else "")
                    + (
                        f"\nRobustness grade {grade} (A best, D worst): how well this gene's "
                        "map survives stain, scanner colour, JPEG, blur and pixel-size changes "
                        "(robustness.json in the bundle; docs/expression.md)"
                        if grade
                        else ""
                    )
                )
            item.setText(text)

    def flagged_genes(self) -> list[str]:
        """Genes currently flagged as below the validation threshold."""
        return [
            self.choices[int(self.output_list.item(r).data(Qt.UserRole))].label
            for r in range(self.output_list.count())
            if self.output_list.item(r).text().startswith("⚠")
        ]

    def _filter_outputs(self, text: str) -> None:
        needle = text.strip().lower()
        shown = 0
        for row in range(self.output_list.count()):
            item = self.output_list.item(row)
            hidden = bool(needle) and needle not in item.text().lower()
            item.setHidden(hidden)
            shown += not hidden
        model = self._model_name()
        if needle and not shown and model is not None:
            from omicslens.core.output_names import UnknownOutputError, resolve_output

            try:
                resolve_output(text.strip(), [c.label for c in self.choices], model)
            except UnknownOutputError as error:
                self._say(f"{error}.")
