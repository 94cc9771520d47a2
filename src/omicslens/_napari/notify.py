"""Short notifications, with the details one click away.

A toast has room for one line: which file, and what is wrong with it. Everything else a
user (or the person they send it to) may need, the full message, the full path, the kind
of error and what caused it, goes behind a "Details" button that opens a dialog with the
text selectable for copying. No Python traceback is shown: our errors are raised on
purpose and their messages say what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: longest summary line in a toast; the rest of the message is in the details
SUMMARY_CHARS = 110
DETAILS_BUTTON = "Details"


@dataclass(frozen=True)
class Problem:
    """What a notification says (``summary``) and what its Details dialog adds."""

    summary: str
    details: str


def summarise(text: str, limit: int = SUMMARY_CHARS) -> str:
    """The first line of ``text``, cut at a word before ``limit`` characters."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    if len(first) <= limit:
        return first
    cut = first[: limit - 1].rsplit(" ", 1)[0]
    return f"{cut}…"


def problem_from_error(action: str, error: BaseException, path: Path | None = None) -> Problem:
    """``action`` ("could not open") and ``error`` as a short line naming the file, and a
    longer text with everything the error knows."""
    message = str(error) or type(error).__name__
    name = path.name if path is not None else None
    if name is not None:
        # our slide errors start with the whole path: the toast names the file only, first
        # (napari's collapsed toast shows about 40 characters)
        problem = message.removeprefix(f"{path}: ")
        summary = f"{name}: OmicsLens {action} it: {problem}"
    else:
        summary = f"OmicsLens {action}: {message}"
    lines = [f"OmicsLens {action}{f' {name}' if name else ''}.", ""]
    if path is not None:
        lines.append(f"File: {path}")
    lines.append(f"Problem: {message}")
    lines.append(f"Kind: {type(error).__name__}")
    cause = error.__cause__ or error.__context__
    if cause is not None and str(cause) not in message:
        lines.append(f"Cause: {type(cause).__name__}: {cause}")
    return Problem(summarise(summary), "\n".join(lines))


def notify(problem: Problem, severity: str = "error") -> Any:
    """Dispatch ``problem`` to napari's notifications with a Details button."""
    from napari.utils.notifications import Notification, notification_manager

    class OmicsLensNotification(Notification):
        @property
        def source(self) -> str:
            # a toast with buttons prints its source: the emitter's repr otherwise
            return "OmicsLens"

    def details(_widget: Any = None) -> None:
        show_details(problem)

    notification = OmicsLensNotification(
        problem.summary, severity=severity, actions=[(DETAILS_BUTTON, details)]
    )
    notification.details = problem.details  # for the console and for tests
    notification_manager.dispatch(notification)
    return notification


def details_dialog(problem: Problem) -> Any:
    """The Details dialog: the summary, and the details as selectable, copyable text."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QMessageBox

    box = QMessageBox()
    box.setIcon(QMessageBox.Warning)
    box.setWindowTitle("OmicsLens")
    box.setText(problem.summary)
    box.setInformativeText(problem.details)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.setStandardButtons(QMessageBox.Close)
    return box


def show_details(problem: Problem) -> None:
    details_dialog(problem).exec_()
