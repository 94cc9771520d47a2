"""Every container layout, generated from real H&E pixels, opens with the exact geometry
and resolution that was written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from omicslens.core import MissingResolutionError, open_slide
from omicslens.core.pyramid import halve
from tests.helpers import layouts
from tests.helpers.ndpi import write_ndpi


def _close(a: np.ndarray, b: np.ndarray, tolerance: float = 4.0) -> None:
    """Same pixels up to lossy-codec error."""
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).mean() < tolerance


def test_ome_subifd_pyramid(tmp_path: Path, he_pixels: np.ndarray) -> None:
    path = layouts.write_ome_subifd(tmp_path / "s.ome.tif", he_pixels, mpp=0.25, levels=3)
    with open_slide(path) as slide:
        assert slide.format == "ome-tiff"
        assert slide.level_shapes == [(1000, 1200), (500, 600), (250, 300)]
        assert slide.mpp_x == pytest.approx(0.25)
        assert slide.level_mpp(2)[0] == pytest.approx(1.0)
        _close(slide.read_region(0, 0, 600, 500, level=1), halve(he_pixels))


@pytest.mark.parametrize(("unit", "expected"), [("nm", 0.25), ("mm", 0.25), ("µm", 0.25)])
def test_ome_physical_size_units_are_converted(
    tmp_path: Path, he_pixels: np.ndarray, unit: str, expected: float
) -> None:
    path = layouts.write_ome_subifd(
        tmp_path / "u.ome.tif", he_pixels, mpp=0.25, levels=1, unit=unit
    )
    with open_slide(path) as slide:
        assert slide.mpp_x == pytest.approx(expected)


def test_ome_multiseries_pyramid_is_merged_into_levels(
    tmp_path: Path, he_pixels: np.ndarray
) -> None:
    path = layouts.write_ome_multiseries(tmp_path / "m.ome.tif", he_pixels, mpp=0.5, levels=3)
    with open_slide(path) as slide:
        assert slide.level_count == 3
        assert slide.level_shapes[2] == (250, 300)
        assert slide.mpp_x == pytest.approx(0.5)
        np.testing.assert_array_equal(
            slide.read_region(0, 0, 300, 250, level=2), halve(halve(he_pixels))
        )


def test_svs_like_levels_and_associated(tmp_path: Path, he_pixels: np.ndarray) -> None:
    label = np.full((120, 160, 3), 200, np.uint8)
    path = layouts.write_svs(tmp_path / "a.svs", he_pixels, mpp=0.2525, levels=2, label=label)
    with open_slide(path) as slide:
        assert slide.format == "aperio-svs"
        assert slide.mpp_x == pytest.approx(0.2525)
        assert slide.level_shapes == [(1000, 1200), (500, 600)]
        assert set(slide.associated_images) == {"label", "macro", "thumbnail"}
        np.testing.assert_array_equal(slide.associated_image("label"), label)  # LZW: lossless


def test_svs_without_mpp_mentions_magnification(tmp_path: Path, he_pixels: np.ndarray) -> None:
    path = layouts.write_svs(tmp_path / "nompp.svs", he_pixels, mpp=None)
    with pytest.raises(MissingResolutionError, match="AppMag = 20"):
        open_slide(path)


def test_ndpi_layout(tmp_path: Path, he_pixels: np.ndarray) -> None:
    small = halve(he_pixels)
    path = write_ndpi(
        tmp_path / "h.ndpi",
        [(he_pixels, 20.0), (small, 5.0), (he_pixels[:200, :300], -1.0)],
        mpp=0.4545,
    )
    with open_slide(path) as slide:
        assert slide.format == "hamamatsu-ndpi"
        assert slide.level_shapes == [(1000, 1200), (500, 600)]
        assert slide.mpp_x == pytest.approx(0.4545, rel=1e-4)
        assert slide.objective_power == 20
        assert slide.associated_images == ["macro"]
        _close(slide.read_region(0, 0, 1200, 1000), he_pixels)


@pytest.mark.parametrize("subifds", [False, True])
def test_generic_pyramidal_tiff(tmp_path: Path, he_pixels: np.ndarray, subifds: bool) -> None:
    path = layouts.write_generic_pyramid(
        tmp_path / "g.tif", he_pixels, mpp=0.5, levels=3, subifds=subifds
    )
    with open_slide(path) as slide:
        assert slide.format == "tiff"
        assert slide.level_count == 3
        assert slide.mpp_x == pytest.approx(0.5)
        assert slide.resolution.source == "TIFF resolution tags (per centimetre)"
        np.testing.assert_array_equal(slide.read_region(0, 0, 1200, 1000), he_pixels)  # zlib


def test_generic_tiff_inch_unit(tmp_path: Path, he_pixels: np.ndarray) -> None:
    path = layouts.write_generic_pyramid(
        tmp_path / "i.tif", he_pixels, mpp=0.5, levels=1, resolution_unit="INCH"
    )
    with open_slide(path) as slide:
        assert slide.mpp_x == pytest.approx(0.5)


def test_tiff_at_72_dpi_is_not_taken_as_microscope_resolution(
    tmp_path: Path, he_pixels: np.ndarray
) -> None:
    path = layouts.write_plain_tiff(tmp_path / "screen.tif", he_pixels, dpi=72)
    with pytest.raises(MissingResolutionError, match="72 pixels per inch"):
        open_slide(path)
    with open_slide(path, mpp=0.5) as slide:
        assert slide.mpp == 0.5


def test_tiff_without_resolution_tags(tmp_path: Path, he_pixels: np.ndarray) -> None:
    path = layouts.write_plain_tiff(tmp_path / "none.tif", he_pixels)
    with pytest.raises(MissingResolutionError):
        open_slide(path)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_ome_zarr(tmp_path: Path, he_pixels: np.ndarray, zarr_format: int) -> None:
    path = layouts.write_ome_zarr(
        tmp_path / "z.ome.zarr", he_pixels, mpp=0.5, levels=3, zarr_format=zarr_format
    )
    with open_slide(path) as slide:
        assert slide.format == "ome-zarr"
        assert slide.level_shapes == [(1000, 1200), (500, 600), (250, 300)]
        assert slide.channels == 3 and slide.is_rgb
        assert slide.mpp_x == pytest.approx(0.5)
        np.testing.assert_array_equal(
            slide.read_region(10, 20, 300, 200), he_pixels[20:220, 10:310]
        )
        np.testing.assert_array_equal(slide.levels[1].compute(), halve(he_pixels))


def test_ome_zarr_without_units_needs_resolution(tmp_path: Path, he_pixels: np.ndarray) -> None:
    path = layouts.write_ome_zarr(tmp_path / "nounit.zarr", he_pixels, mpp=0.5, levels=1, unit=None)
    with pytest.raises(MissingResolutionError, match="no unit"):
        open_slide(path)


def test_plain_jpeg_and_png(tmp_path: Path, he_pixels: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(he_pixels).save(tmp_path / "f.png")
    Image.fromarray(he_pixels).save(tmp_path / "f.jpg", quality=95)
    for name in ("f.png", "f.jpg"):
        with pytest.raises(MissingResolutionError):
            open_slide(tmp_path / name)
        with open_slide(tmp_path / name, mpp=0.3) as slide:
            assert slide.dimensions == (1200, 1000)
            _close(slide.read_region(0, 0, 1200, 1000), he_pixels)


def test_large_single_level_image_gets_lazy_pyramid(tmp_path: Path, he_pixels: np.ndarray) -> None:
    big = np.tile(he_pixels, (5, 4, 1))  # 5000 x 4800, one level
    path = tmp_path / "big.tif"
    import tifffile

    tifffile.imwrite(
        path,
        big,
        tile=(256, 256),
        compression="zlib",
        photometric="rgb",
        resolution=(1e4 / 0.5, 1e4 / 0.5),
        resolutionunit="CENTIMETER",
        metadata=None,
    )
    with open_slide(path) as slide:
        assert slide.level_count >= 3
        assert max(slide.level_shapes[-1]) <= 1024
        np.testing.assert_array_equal(
            slide.read_region(0, 0, 600, 500, level=1), halve(big)[:500, :600]
        )
        np.testing.assert_array_equal(
            slide.levels[2][:100, :100].compute(), halve(halve(big))[:100, :100]
        )


def test_read_region_outside_the_image_is_filled_white(
    tmp_path: Path, he_pixels: np.ndarray
) -> None:
    path = layouts.write_generic_pyramid(tmp_path / "e.tif", he_pixels, mpp=0.5, levels=1)
    with open_slide(path) as slide:
        edge = slide.read_region(1100, 900, 256, 256)
        assert edge.shape == (256, 256, 3)
        np.testing.assert_array_equal(edge[:100, :100], he_pixels[900:1000, 1100:1200])
        assert (edge[100:, :] == 255).all() and (edge[:, 100:] == 255).all()
        with pytest.raises(IndexError):
            slide.read_region(0, 0, 10, 10, level=5)
