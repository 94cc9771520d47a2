"""The Blood smear dock's side of the corrections autosave (:mod:`omicslens.hemato.
review_store`): save after every correction, restore after every new analysis, and put
what happened in one status line. Nothing here raises: a store that cannot be read or
written is reported and the review goes on in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omicslens.core.errors import OmicsLensError
from omicslens.hemato.review_store import apply_corrections, load_corrections, save_corrections

if TYPE_CHECKING:
    from omicslens.hemato.smear import SmearAnalysis


def autosave(analysis: SmearAnalysis) -> str | None:
    """Save the corrections of ``analysis`` now; None when saved, else why not."""
    try:
        save_corrections(analysis)
    except (OmicsLensError, OSError) as error:
        return f"Corrections NOT autosaved (kept in memory, export to keep them): {error}"
    return None


def restore(analysis: SmearAnalysis) -> str | None:
    """Apply the stored corrections of this image to ``analysis``; the status line to
    show, or None when nothing was stored."""
    try:
        stored = load_corrections(analysis.path)
    except (OmicsLensError, OSError) as error:
        return f"Saved corrections could not be read, none restored: {error}"
    if stored is None or not stored.corrections:
        return None
    result = apply_corrections(analysis, stored)
    if result.applied == 0:
        return f"{result.stored} saved correction(s) in {stored.file} not applied: {result.reason}."
    line = f"Restored {result.applied} corrections from {stored.file}."
    if result.skipped:
        line += f" {result.skipped} not applied: {result.reason}."
    return line
