"""Slides that must be refused without blocking or a traceback."""

from __future__ import annotations

import pytest


def test_a_fifo_named_svs_is_refused_without_blocking(tmp_path) -> None:
    import os

    from omicslens.core import UnsupportedSlideError, open_slide

    fifo = tmp_path / "slide.svs"
    os.mkfifo(fifo)  # opening it for reading would block for ever
    with pytest.raises(UnsupportedSlideError, match="not a regular file") as raised:
        open_slide(fifo)
    assert str(fifo) in str(raised.value)


def test_a_symlink_loop_is_a_typed_error(tmp_path) -> None:
    from omicslens.core import OmicsLensError, open_slide

    a, b = tmp_path / "a.svs", tmp_path / "b.svs"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(OmicsLensError, match="cannot be read"):
        open_slide(a)
