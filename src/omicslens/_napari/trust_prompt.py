"""Ask before running a TorchScript model whose code touches files or processes.

Why: a TorchScript archive is code (issue 13). OmicsLens refuses one that calls file,
process or network ops; the command line runs it only with ``--trust-code``. The dock
asks the same question in words, naming the calls it found, and defaults to *No*.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QMessageBox, QWidget

#: how many of the forbidden calls are listed in the question
SHOWN_FINDINGS = 6


def trust_question(error: Any) -> str:
    """The question's text for an ``UntrustedCodeError``."""
    findings = list(getattr(error, "findings", []))
    calls = "\n".join(f"  • {finding.describe()}" for finding in findings[:SHOWN_FINDINGS])
    more = (
        f"\n  … and {len(findings) - SHOWN_FINDINGS} more" if len(findings) > SHOWN_FINDINGS else ""
    )
    path = getattr(error, "path", "this model")
    return (
        f"{path} is a TorchScript model whose code calls operations that can read or write "
        f"files or start processes:\n{calls}{more}\n\n"
        "Nothing has been loaded or run. Run it only if you trust the person who made it. "
        "The prediction layer and the status line say that its code was trusted."
    )


def ask_to_trust(parent: QWidget, error: Any) -> bool:
    """True when the user chose to run the model anyway (default: No)."""
    answer = QMessageBox.warning(
        parent,
        "Run this model's code?",
        trust_question(error),
        QMessageBox.Yes | QMessageBox.No,
        QMessageBox.No,
    )
    return bool(answer == QMessageBox.Yes)
