"""The AnnData export in its real consumers: ``scanpy.pl.spatial`` and
``squidpy.pl.spatial_scatter`` draw the predictions over the slide with no arguments,
from the Visium/HEST ``uns['spatial']`` the writer adds (image from the real CMU-1)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from omicslens.core.exports import TileTable, write_h5ad
from omicslens.core.grid import TileGrid
from tests.conftest import CMU1

NAMES = ["ERBB2", "CD74"]

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def slide_table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TileTable, float]:
    from omicslens.core import open_slide

    with open_slide(CMU1) as slide:
        grid = TileGrid.for_slide(slide, patch_px=100, spacing_um=1.0)  # ~200 px tiles
        level = slide.level_count - 1
        h, w = slide.level_shapes[level]
        overview = slide.read_region(0, 0, w, h, level=level)
        scale = 1.0 / slide.downsamples[level]
    indices = np.arange(grid.size)
    rows, cols = grid.row_col(indices)
    values = np.stack([rows * 1.0, cols * 2.0 + 1], axis=1).astype(np.float32)
    table = TileTable(grid, indices, values, NAMES, slide_id="CMU-1-Small-Region")
    path = write_h5ad(
        table,
        tmp_path_factory.mktemp("h5ad") / "tiles.h5ad",
        overview=overview,
        overview_scale=scale,
    )
    return path, table, scale


def _figure_pixels(fig) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float64)


def _axes_pixels(fig, ax) -> np.ndarray:
    pixels = _figure_pixels(fig)
    height = pixels.shape[0]
    box = ax.get_window_extent().transformed(fig.dpi_scale_trans.inverted())
    x0, y0, x1, y1 = (round(v * 80) for v in (box.x0, box.y0, box.x1, box.y1))
    return pixels[height - y1 : height - y0, x0:x1]


def test_uns_spatial_follows_visium_and_hest(slide_table: tuple[Path, TileTable, float]) -> None:
    import anndata

    path, table, _ = slide_table
    adata = anndata.read_h5ad(path)
    (library,) = adata.uns["spatial"]
    assert library == "CMU-1-Small-Region"
    spatial = adata.uns["spatial"][library]
    hires, lowres = spatial["images"]["hires"], spatial["images"]["lowres"]
    assert hires.dtype == np.uint8 and hires.ndim == 3 and hires.shape[2] == 3
    assert max(hires.shape[:2]) <= 2000 and max(lowres.shape[:2]) <= 600
    assert max(lowres.shape[:2]) < max(hires.shape[:2])
    factors = spatial["scalefactors"]
    grid = table.grid
    assert factors["spot_diameter_fullres"] == pytest.approx(grid.tile_w)
    # the scale factors map level-0 pixels onto each image
    assert hires.shape[1] == pytest.approx(grid.width * factors["tissue_hires_scalef"], abs=2)
    assert lowres.shape[0] == pytest.approx(grid.height * factors["tissue_lowres_scalef"], abs=2)
    assert "software" in spatial["metadata"]
    np.testing.assert_allclose(adata.obsm["spatial"], grid.centres(table.indices))
    assert hires.std() > 10  # the real slide, not a blank image


def test_scanpy_spatial_draws_over_the_slide(slide_table: tuple[Path, TileTable, float]) -> None:
    import anndata
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scanpy as sc

    path, _, _ = slide_table
    adata = anndata.read_h5ad(path)
    result = sc.pl.spatial(adata, color="ERBB2", show=False)
    ax = result[0] if isinstance(result, list) else result
    assert ax.images, "no slide image drawn"
    assert ax.collections, "no tiles drawn"
    # the tiles land on the image: their (hires-pixel) centres lie inside its extent
    left, right, bottom, top = ax.images[0].get_extent()
    offsets = np.asarray(ax.collections[0].get_offsets())
    assert offsets[:, 0].min() >= left and offsets[:, 0].max() <= right
    assert offsets[:, 1].min() >= min(top, bottom) and offsets[:, 1].max() <= max(top, bottom)
    region = _axes_pixels(ax.figure, ax)
    assert region.std() > 10
    assert np.unique(region.reshape(-1, 3), axis=0).shape[0] > 100
    plt.close("all")


def test_squidpy_spatial_scatter_draws_over_the_slide(
    slide_table: tuple[Path, TileTable, float],
) -> None:
    import anndata
    import matplotlib
    import squidpy as sq  # a testing dependency: the consumer itself, never skipped

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path, _, _ = slide_table
    adata = anndata.read_h5ad(path)
    sq.pl.spatial_scatter(adata, color="CD74")
    fig = plt.gcf()
    axes = [ax for ax in fig.axes if ax.images or ax.collections]
    assert axes, "squidpy drew nothing"
    ax = axes[0]
    assert ax.images and ax.collections
    region = _axes_pixels(fig, ax)
    assert region.std() > 10
    assert np.unique(region.reshape(-1, 3), axis=0).shape[0] > 100
    plt.close("all")


def test_without_an_overview_the_scale_factors_are_still_written(tmp_path: Path) -> None:
    import anndata
    import scanpy as sc

    grid = TileGrid(width=1000, height=700, mpp_x=0.5, mpp_y=0.5, patch_px=100, spacing_um=1.0)
    indices = np.arange(grid.size)
    table = TileTable(grid, indices, np.ones((grid.size, 2), np.float32), NAMES)
    path = write_h5ad(table, tmp_path / "t.h5ad", False)  # the old positional call
    adata = anndata.read_h5ad(path)
    spatial = adata.uns["spatial"]["slide"]
    assert spatial["scalefactors"]["spot_diameter_fullres"] == pytest.approx(200.0)
    assert not spatial.get("images")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = sc.pl.spatial(adata, color="ERBB2", img_key=None, show=False)[0]  # tiles, no image
    assert ax.collections and not ax.images
    plt.close("all")


def test_slide_overview_matches_the_slide() -> None:
    from omicslens.core import open_slide
    from omicslens.core.exports.tables import slide_overview

    with open_slide(CMU1) as slide:
        image, scale = slide_overview(slide, max_side=1000)
        width, height = slide.dimensions
        assert image.dtype == np.uint8 and image.shape[2] == 3
        assert max(image.shape[:2]) <= 1000
        assert image.shape[1] == pytest.approx(width * scale, abs=1)
        assert image.shape[0] == pytest.approx(height * scale, abs=1)
        # a pixel of the overview is the slide's pixel at level-0 position / scale
        expected = slide.read_region(round(300 / scale), round(400 / scale), 1, 1)
        assert np.abs(image[400, 300].astype(int) - expected[0, 0, :3].astype(int)).max() < 40
