"""Undo/redo history: sequences, redo cleared by a new edit, limit, equal states."""

from __future__ import annotations

import pytest

from omicslens.core.history import EditHistory


def test_initial_state_has_nothing_to_undo_or_redo() -> None:
    history = EditHistory(("a",))
    assert history.current == ("a",)
    assert not history.can_undo
    assert not history.can_redo
    assert history.undo() is None
    assert history.redo() is None
    assert history.current == ("a",)


def test_undo_redo_sequence() -> None:
    history = EditHistory(0)
    for state in (1, 2, 3):
        assert history.record(state)
    assert history.current == 3
    assert history.undo() == 2
    assert history.undo() == 1
    assert history.can_undo and history.can_redo
    assert history.redo() == 2
    assert history.undo() == 1
    assert history.undo() == 0
    assert not history.can_undo
    assert history.undo() is None
    assert history.current == 0
    assert [history.redo(), history.redo(), history.redo()] == [1, 2, 3]
    assert not history.can_redo
    assert history.redo() is None
    assert history.current == 3


def test_new_record_clears_redo() -> None:
    history = EditHistory("a")
    history.record("b")
    history.record("c")
    history.undo()
    assert history.can_redo
    assert history.record("d")
    assert not history.can_redo
    assert history.redo() is None
    assert history.undo() == "b"
    assert history.undo() == "a"


def test_equal_state_not_recorded() -> None:
    history: EditHistory[tuple[int, ...]] = EditHistory((1, 2))
    assert not history.record((1, 2))  # equal, though a different object
    assert not history.can_undo
    assert history.record((1, 2, 3))
    history.undo()
    assert not history.record((1, 2))  # equal to current: redo is kept
    assert history.can_redo


def test_limit_drops_oldest() -> None:
    history = EditHistory(0, limit=3)
    for state in range(1, 6):
        history.record(state)
    undone = []
    while (previous := history.undo()) is not None:
        undone.append(previous)
    assert undone == [4, 3, 2]  # 0 and 1 fell off the bottom
    assert history.current == 2
    with pytest.raises(ValueError):
        EditHistory(0, limit=0)


def test_reset_clears_both_stacks() -> None:
    history = EditHistory(0)
    history.record(1)
    history.record(2)
    history.undo()
    history.reset(10)
    assert history.current == 10
    assert not history.can_undo
    assert not history.can_redo
    assert history.record(11)
    assert history.undo() == 10
