"""The Predict dock's answer to "is this slide inside what the model has seen?".

A coloured line under the model controls, fed by the live prediction's domain verdict
(computed off the main thread from the tissue tiles predicted so far): green when the
slide is in domain, amber when uncertain, red when out of domain, with the plain warning
of :class:`~omicslens.core.domain.DomainVerdict`. A bundle without a domain reference
says so, rather than staying silent.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QLabel

from omicslens.core.domain import DomainVerdict

STYLES = {
    "in-domain": "background:#1e5631; color:white; padding:4px; border-radius:3px;",
    "uncertain": "background:#8a6d00; color:white; padding:4px; border-radius:3px;",
    "out-of-domain": "background:#9b1c1c; color:white; padding:4px; border-radius:3px;"
    " font-weight:bold;",
    "none": "color:#bbbbbb; padding:4px;",
}


class DomainBanner(QLabel):
    def __init__(self) -> None:
        super().__init__("")
        self.setWordWrap(True)
        self.verdict: DomainVerdict | None = None
        self.hide()

    def reset(self, bundle: Any) -> None:
        """A new model: no verdict yet (or none possible)."""
        self.verdict = None
        if bundle is None:
            self.hide()
            return
        if bundle.domain is None:
            self._show(
                "none",
                "This model carries no domain reference: OmicsLens cannot tell whether this "
                "slide is like its training data (add one with `omicslens model add-domain`).",
            )
        else:
            self._show("none", "Domain check: waiting for the first tissue tiles…")

    def show_verdict(self, verdict: DomainVerdict) -> None:
        self.verdict = verdict
        share = (
            f"{verdict.in_domain_fraction:.0%} of {verdict.tiles_checked} predicted tissue tiles"
        )
        if verdict.verdict == "in-domain":
            text = f"In domain: {share} look like the model's training data."
        else:
            text = f"⚠ {verdict.warning}"
        self._show(verdict.verdict, text)
        self.setToolTip(
            "Each tile's domain_distance compares its colour, texture and the model's outputs "
            "with the training tiles (1 = the edge of what 95 % of held-out training tiles "
            "reach). Show 'Domain distance' in the output list to see where."
        )

    def _show(self, style: str, text: str) -> None:
        self.setStyleSheet(STYLES[style])
        self.setText(text)
        self.show()
