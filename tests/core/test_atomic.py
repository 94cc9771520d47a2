"""Atomic writers: a full disk or a read-only folder is a typed error naming the file,
never a half-written file, and an earlier complete file is kept."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from omicslens.core import atomic
from omicslens.core.atomic import write_text_atomic
from omicslens.core.errors import OmicsLensError, OutputWriteError


def _full_disk(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_keeps_the_earlier_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = write_text_atomic(tmp_path / "cells.csv", "complete\n")
    monkeypatch.setattr(atomic.os, "fsync", _full_disk)
    with pytest.raises(OutputWriteError) as caught:
        write_text_atomic(target, "new and longer\n")
    assert isinstance(caught.value, OmicsLensError) and caught.value.errno == errno.ENOSPC
    assert str(caught.value) == f"{target}: cannot write: No space left on device"
    assert target.read_text() == "complete\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cells.csv"]


def test_a_folder_that_cannot_be_written_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    with pytest.raises(OutputWriteError, match=r"cells\.csv: cannot write: Read-only file system"):
        write_text_atomic(tmp_path / "out" / "cells.csv", "x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_a_real_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputWriteError, match="Permission denied"):
            write_text_atomic(folder / "a.txt", "x")
    finally:
        folder.chmod(0o700)


def test_exports_raise_the_typed_error_and_keep_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omicslens.core.exports import zarr_raster
    from omicslens.core.grid import TileGrid

    grid = TileGrid(width=512, height=256, mpp_x=0.5, mpp_y=0.5, patch_px=64, spacing_um=1.0)
    rasters = np.ones((1, grid.rows, grid.cols), np.float32)
    monkeypatch.setattr(zarr_raster.os, "replace", _full_disk)
    target = tmp_path / "predictions.ome.zarr"
    with pytest.raises(OutputWriteError, match=r"predictions\.ome\.zarr: cannot write"):
        zarr_raster.write_ome_zarr(rasters, grid, ["ERBB2"], target)
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_folder_refilled_while_it_is_removed_is_still_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from omicslens.core import atomic

    folder = tmp_path / ".predictions.ome.zarr.abc"
    (folder / "0").mkdir(parents=True)
    real = shutil.rmtree
    calls = [0]

    def refilled(path, ignore_errors=False):  # a chunk write still in flight lands after
        real(path, ignore_errors=ignore_errors)
        calls[0] += 1
        if calls[0] == 1:
            Path(path).mkdir()
            (Path(path) / "c.0.partial").write_bytes(b"x")

    monkeypatch.setattr(atomic.shutil, "rmtree", refilled)
    assert atomic.remove_temporary_folder(folder, pause_s=0.0)
    assert not folder.exists() and calls[0] == 2
