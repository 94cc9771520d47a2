"""Undo and redo for region edits, as a plain stack of whole states.

Region lists are small (tens to hundreds of polygons), so keeping whole snapshots is
simpler and safer than recording reversible operations: undo can never drift out of
step with what napari shows. The class is generic and knows nothing of regions; a
caller records an immutable snapshot (for example a tuple) after each edit. Equal
states are not recorded, so a refresh that changes nothing leaves no empty undo step.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")

#: default number of undo steps kept
DEFAULT_LIMIT = 200


class EditHistory(Generic[T]):
    """The current state with the states before it (undo) and after it (redo)."""

    def __init__(self, initial: T, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"limit must be 1 or more, not {limit}")
        self._limit = limit
        self._current = initial
        self._undo: list[T] = []
        self._redo: list[T] = []

    @property
    def current(self) -> T:
        return self._current

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def record(self, state: T) -> bool:
        """Make ``state`` current unless it equals the current one; a new edit clears
        the redo stack and the oldest steps beyond ``limit`` are dropped. Returns whether
        the state was recorded."""
        if state == self._current:
            return False
        self._undo.append(self._current)
        if len(self._undo) > self._limit:
            del self._undo[: len(self._undo) - self._limit]
        self._redo.clear()
        self._current = state
        return True

    def undo(self) -> T | None:
        """Step back; the new current state, or None when there is nothing to undo."""
        if not self._undo:
            return None
        self._redo.append(self._current)
        self._current = self._undo.pop()
        return self._current

    def redo(self) -> T | None:
        """Step forward again; the new current state, or None when there is nothing."""
        if not self._redo:
            return None
        self._undo.append(self._current)
        self._current = self._redo.pop()
        return self._current

    def reset(self, state: T) -> None:
        """Start over from ``state`` (a slide or session was opened): no undo, no redo."""
        self._current = state
        self._undo.clear()
        self._redo.clear()
