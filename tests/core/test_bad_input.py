"""Bad input gets a typed error that names the file, never a traceback from deep inside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from omicslens.core import (
    CorruptSlideError,
    InvalidResolutionError,
    SlideNotFoundError,
    UnsupportedSlideError,
    open_slide,
)
from tests.conftest import CMU1
from tests.helpers import layouts


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.svs"
    with pytest.raises(SlideNotFoundError) as caught:
        open_slide(path)
    assert isinstance(caught.value, FileNotFoundError)
    assert str(path) in str(caught.value)


def test_text_file_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not an image")
    with pytest.raises(UnsupportedSlideError, match=r"notes\.txt"):
        open_slide(path)


def test_text_with_slide_extension_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "fake.svs"
    path.write_text("<html>404 not found</html>")
    with pytest.raises(CorruptSlideError, match=r"fake\.svs"):
        open_slide(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.ndpi"
    path.write_bytes(b"")
    with pytest.raises(CorruptSlideError, match="empty"):
        open_slide(path)


@pytest.mark.parametrize("keep", [0.0005, 0.3, 0.9])
def test_truncated_svs_is_caught_at_open(tmp_path: Path, keep: float) -> None:
    path = layouts.truncate(CMU1, tmp_path / "cut.svs", keep)
    with pytest.raises(CorruptSlideError) as caught:
        open_slide(path)
    assert "cut.svs" in str(caught.value)


def test_truncated_ome_tiff_says_truncated(tmp_path: Path, he_pixels: np.ndarray) -> None:
    whole = layouts.write_ome_subifd(tmp_path / "w.ome.tif", he_pixels, mpp=0.5, levels=2)
    # cut inside the pixel data, after the first IFD
    path = layouts.truncate(whole, tmp_path / "t.ome.tif", 0.5)
    with pytest.raises(CorruptSlideError, match=r"truncated|broken|readable"):
        open_slide(path)


def test_garbage_tile_data_is_reported_with_the_region(
    tmp_path: Path, he_pixels: np.ndarray
) -> None:
    import tifffile

    path = layouts.write_generic_pyramid(tmp_path / "bad.tif", he_pixels, mpp=0.5, levels=2)
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[0].dataoffsets[5]
        count = tif.pages[0].databytecounts[5]
    data = bytearray(path.read_bytes())
    data[offset : offset + count] = b"\x00" * count  # destroy one zlib tile of level 0
    path.write_bytes(bytes(data))
    from omicslens.core import SlideReadError

    # the smallest level (checked at open) is intact; level 0 is not
    with open_slide(path) as slide, pytest.raises(SlideReadError, match=r"bad\.tif.*level 0"):
        slide.read_region(0, 0, 1200, 1000)


def test_truncated_jpeg(tmp_path: Path, he_pixels: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(he_pixels).save(tmp_path / "whole.jpg")
    path = layouts.truncate(tmp_path / "whole.jpg", tmp_path / "cut.jpg", 0.6)
    with pytest.raises(CorruptSlideError, match=r"cut\.jpg.*truncated"):
        open_slide(path, mpp=0.5)


def test_directory_that_is_not_ome_zarr(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedSlideError, match="OME-Zarr"):
        open_slide(tmp_path)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "abc"])
def test_invalid_override(bad: object) -> None:
    with pytest.raises(InvalidResolutionError):
        open_slide(CMU1, mpp=bad)  # type: ignore[arg-type]
