"""Notifications are one short line naming the file; the rest is under Details."""

from __future__ import annotations

from pathlib import Path

from omicslens._napari.notify import SUMMARY_CHARS, problem_from_error, summarise
from omicslens.core.errors import SlideError


def test_the_summary_names_the_file_not_its_folder_and_is_short() -> None:
    path = Path("/data/cohort/2026/patient-17/C6.svs")
    problem = "not a TIFF file (it starts with b'not a'); OmicsLens reads " + "x " * 100
    error = SlideError(path, problem)
    shown = problem_from_error("could not open", error, path)
    assert shown.summary.startswith("C6.svs: OmicsLens could not open it: not a TIFF file")
    assert "/data/cohort" not in shown.summary
    assert len(shown.summary) <= SUMMARY_CHARS and shown.summary.endswith("…")
    assert f"File: {path}" in shown.details
    assert problem.strip() in shown.details  # nothing is lost, only moved
    assert "Kind: SlideError" in shown.details


def test_the_cause_is_in_the_details() -> None:
    try:
        try:
            raise ValueError("bad JSON at line 3")
        except ValueError as inner:
            raise SlideError("s.omicslens.json", "not a session") from inner
    except SlideError as error:
        shown = problem_from_error("could not open the session", error)
    assert "Cause: ValueError: bad JSON at line 3" in shown.details


def test_summarise_keeps_short_first_lines_whole() -> None:
    assert summarise("one line\nsecond") == "one line"
    assert summarise("") == ""
    long = "word " * 40
    assert summarise(long, 30).endswith("…") and len(summarise(long, 30)) <= 30
