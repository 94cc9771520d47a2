"""The real slides the issue names open with the right dimensions and resolution."""

from __future__ import annotations

import numpy as np
import pytest

from omicslens.core import MissingResolutionError, open_slide
from tests.conftest import CMU1, OS1, TCGA


def test_cmu1_svs_dimensions_resolution_and_associated_images() -> None:
    with open_slide(CMU1) as slide:
        assert slide.format == "aperio-svs"
        assert slide.dimensions == (2220, 2967)
        assert slide.mpp_x == pytest.approx(0.499) and slide.mpp_y == pytest.approx(0.499)
        assert slide.resolution.source == "Aperio MPP field"
        assert slide.objective_power == 20
        assert slide.tile_sizes[0] == (240, 240)
        assert slide.associated_images == ["label", "macro", "thumbnail"]
        label = slide.associated_image("label")
        assert label.shape == (463, 387, 3)
        macro = slide.associated_image("macro")
        assert macro.shape == (431, 1280, 3)


def test_cmu1_pixels_are_tissue_not_blank() -> None:
    with open_slide(CMU1) as slide:
        region = slide.read_region(1000, 1400, 512, 512)
        assert region.shape == (512, 512, 3) and region.dtype == np.uint8
        # H&E tissue: clearly non-white, with eosin (red > green) dominating
        assert region.mean() < 220
        assert region[..., 0].mean() > region[..., 1].mean()


def test_os1_ome_tiff_resolution() -> None:
    with open_slide(OS1) as slide:
        assert slide.format == "ome-tiff"
        assert slide.dimensions == (1101, 1101)
        assert slide.mpp_x == pytest.approx(0.227, abs=5e-4)
        assert slide.resolution.source == "OME-XML PhysicalSizeX/Y"


def test_tcga_svs_without_mpp_raises_typed_error_naming_the_file() -> None:
    with pytest.raises(MissingResolutionError) as caught:
        open_slide(TCGA)
    assert caught.value.path == TCGA
    assert str(TCGA) in str(caught.value)
    assert "MPP" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_tcga_svs_opens_with_override_and_keeps_both_levels() -> None:
    with open_slide(TCGA, mpp=0.25) as slide:
        assert slide.resolution.source == "given by the user"
        assert slide.level_shapes == [(3567, 4443), (1783, 2221)]
        assert slide.downsamples[1] == pytest.approx(2.0, abs=0.01)
        assert slide.level_mpp(1)[0] == pytest.approx(0.5, abs=0.001)
        # JPEG 2000 tiles decode (imagecodecs): real pixels, not fill
        region = slide.read_region(2000, 1500, 256, 256)
        assert region.std() > 5


def test_dask_levels_match_direct_reads() -> None:
    with open_slide(CMU1) as slide:
        lazy = slide.levels[0][300:812, 200:712].compute()
        direct = slide.read_region(200, 300, 512, 512)
        np.testing.assert_array_equal(lazy, direct)
