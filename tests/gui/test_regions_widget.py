"""Region queries in a real viewer: a drawn rectangle's table matches a direct numpy
computation on the tile grid; comparison, predict-the-missing, and a GeoJSON round trip."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from omicslens._napari.inference_widget import InferenceWidget
from omicslens._napari.regions_widget import REST, RegionsWidget
from omicslens.core.regions import read_regions
from tests.conftest import CMU1
from tests.helpers.bundles import make_bundle


def test_region_table_compare_and_round_trip(
    make_napari_viewer, qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMICSLENS_CACHE_DIR", str(tmp_path / "cache"))
    slide = tmp_path / "slides" / CMU1.name  # a writable folder: regions autosave beside it
    slide.parent.mkdir()
    shutil.copy(CMU1, slide)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(slide), plugin="omicslens")
    predict = InferenceWidget(viewer)
    viewer.window.add_dock_widget(predict)
    predict.add_model_folder(make_bundle(tmp_path / "b", patch_size=32, spacing=4.0))
    predict.follow_check.setChecked(False)
    predict.load_model()
    qtbot.waitUntil(lambda: predict.live is not None, timeout=30000)
    live = predict.live
    widget = RegionsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    shapes = widget.new_layer()
    # data coordinates are level-0 pixels, (y, x)
    shapes.add_rectangles(np.array([[300.0, 400.0], [1500.0, 1600.0]]))
    shapes.add_polygons(np.array([[1800.0, 500.0], [2900.0, 500.0], [2900.0, 1700.0]]))
    widget.refresh()  # statistics are computed in a worker thread
    qtbot.waitUntil(lambda: widget.table.rowCount() == 2 and not widget.busy, timeout=30000)
    first = widget.summaries[0]
    assert first.predicted == 0 and first.unpredicted == first.tissue_tiles > 0

    # fill the missing tiles, then check the numbers against the store directly
    widget.predict_missing()  # a job: refreshes the table when its tiles are in
    qtbot.waitUntil(lambda: widget.predict_job.finished.is_set(), timeout=60000)
    qtbot.waitUntil(lambda: widget.summaries[0].unpredicted == 0 and not widget.busy, timeout=30000)
    grid, store = live.session.grid, live.session.store
    centres = grid.centres(np.arange(grid.size))
    inside = np.flatnonzero(
        (centres[:, 0] > 400)
        & (centres[:, 0] < 1600)
        & (centres[:, 1] > 300)
        & (centres[:, 1] < 1500)
    )
    tissue = inside[live.session.tissue_tiles.ravel()[inside]]
    first = widget.summaries[0]
    assert first.tiles == len(inside) and first.unpredicted == 0
    np.testing.assert_allclose(first.mean, store.get(tissue).mean(0), rtol=1e-5)
    assert first.area_mm2 == pytest.approx(1200 * 1200 * 0.499**2 / 1e6, rel=1e-6)
    # the plot shows the same tiles: one box per region, bar heights = region means
    values = widget.plot_values()
    np.testing.assert_allclose(values["region 1"], store.get(tissue)[:, 0], rtol=1e-5)
    assert len(widget.region_plot.figure.axes[0].lines) > 0  # box plot drawn
    widget.region_plot.plot_combo.setCurrentText("bar (mean ± SD)")
    heights = [bar.get_height() for bar in widget.region_plot.figure.axes[0].patches]
    assert heights[0] == pytest.approx(float(store.get(tissue)[:, 0].mean()), rel=1e-5)
    column = {
        widget.table.horizontalHeaderItem(c).text(): c for c in range(widget.table.columnCount())
    }
    row = next(r for r in range(2) if widget.table.item(r, 0).text() == "region 1")
    shown = store.get(tissue)[:, 0]  # ERBB2 is shown
    assert float(widget.table.item(row, column["median"]).text()) == pytest.approx(
        float(np.median(shown)), abs=1e-3
    )
    assert float(widget.table.item(row, column["SD"]).text()) == pytest.approx(
        float(shown.std(ddof=1)), abs=1e-3
    )
    text = RegionsWidget.copy(widget.table)
    assert text.splitlines()[0].startswith("region\tarea mm²")

    widget.compare.a_combo.setCurrentText("region 1")
    widget.compare.b_combo.setCurrentText(REST)
    assert widget.run_comparison() is not None  # runs in a worker thread
    qtbot.waitUntil(lambda: widget.comparison is not None, timeout=30000)
    result = widget.comparison
    assert result.n_a == len(tissue)
    assert widget.compare_table.rowCount() == 3

    # autosaved beside the slide, and restored by a new regions layer
    saved = slide.with_name(slide.name + ".omicslens-regions.geojson")
    assert len(read_regions(saved)) == 2
    restored = RegionsWidget(viewer)
    restored.new_layer()
    assert [r.name for r in restored.regions()] == ["region 1", "region 2"]

    path = widget.export_regions(tmp_path / "regions.geojson")
    back = read_regions(path)
    # the same measurements `omicslens predict --regions` writes (one code path)
    from omicslens.app.regions import region_measurements

    expected = region_measurements(widget.report.regions[0], ["ERBB2", "CD74", "MKI67"])
    assert set(back[0].measurements) == set(expected)
    assert back[0].measurements["Mean CD74"] == pytest.approx(expected["Mean CD74"], rel=1e-6)
    assert [r.shape_type for r in back] == ["rectangle", "polygon"]
    np.testing.assert_allclose(back[1].vertices, [[500, 1800], [500, 2900], [1700, 2900]])
    other = RegionsWidget(viewer)
    # the 2 regions are restored from the autosave already: importing them is no duplicate
    assert other.import_regions(path) == 0 and len(other.regions()) == 2
    np.testing.assert_allclose(other.regions()[-1].vertices, back[1].vertices)
    # the region as OME-TIFF (H&E + overlays) and a PNG snapshot with the colour bar
    import tifffile

    worker = widget.export_crop("region 1", tmp_path / "crop.ome.tif")
    qtbot.waitUntil(lambda: (tmp_path / "crop.ome.tif").exists(), timeout=30000)
    qtbot.waitUntil(lambda: worker.is_running is False, timeout=30000)
    with tifffile.TiffFile(tmp_path / "crop.ome.tif") as tif:
        assert len(tif.series) == 2 and tif.series[1].shape[0] == 3
    shot = predict.snapshot(tmp_path / "snap.png")
    assert predict.live.overlay.layer.colorbar.visible
    from PIL import Image

    assert np.asarray(Image.open(shot)).std() > 5
    with pytest.raises(FileExistsError):
        predict.snapshot(shot)
    for regions_widget in (widget, other, restored):
        regions_widget._debounce.stop()
    predict.close_live()


def test_shapes_writer_saves_qupath_geojson(make_napari_viewer, tmp_path: Path) -> None:
    viewer = make_napari_viewer(show=False)
    layer = viewer.add_shapes(
        [
            np.array([[10.0, 20.0], [10.0, 80.0], [60.0, 80.0], [60.0, 20.0]]),
            np.array([[100.0, 100.0], [150.0, 130.0], [120.0, 180.0]]),
        ],
        shape_type=["rectangle", "polygon"],
        features={"name": ["box", "tri"]},
    )
    written = layer.save(str(tmp_path / "regions.geojson"), plugin="omicslens")
    back = read_regions(written[0])
    assert [(r.name, r.shape_type) for r in back] == [("box", "rectangle"), ("tri", "polygon")]
    np.testing.assert_allclose(back[1].vertices, [[100, 100], [130, 150], [180, 120]])


def test_cell_counts_per_region_follow_corrections() -> None:
    from types import SimpleNamespace

    from omicslens._napari.regions_widget import cell_counts
    from omicslens.core.regions import Region

    cells = [SimpleNamespace(centre_x=x, centre_y=y) for x, y in [(5, 5), (6, 6), (50, 50)]]
    labels = ["Neutrophil", "Lymphocyte", "Neutrophil"]
    analysis = SimpleNamespace(cells=cells, labels=lambda: labels)
    square = Region("s", np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float))
    assert cell_counts(analysis, square) == {"Neutrophil": 1, "Lymphocyte": 1}
    labels[1] = "Monocyte"  # a reviewer's correction
    assert cell_counts(analysis, square) == {"Neutrophil": 1, "Monocyte": 1}
    assert cell_counts(None, square) == {}


def test_shapes_writer_maps_micrometres_to_slide_pixels(make_napari_viewer, tmp_path: Path) -> None:
    """A Shapes layer made with napari's own button over a slide shown in um is in um."""
    viewer = make_napari_viewer(show=False)
    viewer.open(str(CMU1), plugin="omicslens")  # 0.499 um/px
    mpp = viewer.layers[0].scale[-1]
    um = viewer.add_shapes(
        [np.array([[100.0, 200.0], [100.0, 400.0], [300.0, 400.0], [300.0, 200.0]])],
        shape_type=["rectangle"],
    )  # scale 1: data are micrometres
    back = read_regions(um.save(str(tmp_path / "um.geojson"), plugin="omicslens")[0])
    np.testing.assert_allclose(back[0].vertices.min(0), [200 / mpp, 100 / mpp], rtol=1e-9)
    np.testing.assert_allclose(back[0].vertices.max(0), [400 / mpp, 300 / mpp], rtol=1e-9)
    px = viewer.add_shapes(  # the Regions dock's kind: level-0 pixels with the slide's scale
        [np.array([[100.0, 200.0], [100.0, 400.0], [300.0, 400.0], [300.0, 200.0]])],
        shape_type=["rectangle"],
        scale=(mpp, mpp),
    )
    back = read_regions(px.save(str(tmp_path / "px.geojson"), plugin="omicslens")[0])
    np.testing.assert_allclose(back[0].vertices.max(0), [400, 300], rtol=1e-9)


def test_an_ellipse_drawn_in_the_dock_is_an_ellipse(make_napari_viewer, tmp_path: Path) -> None:
    slide = tmp_path / CMU1.name
    shutil.copy(CMU1, slide)
    viewer = make_napari_viewer(show=False)
    viewer.open(str(slide), plugin="omicslens")
    widget = RegionsWidget(viewer)
    shapes = widget.new_layer()  # works before any model is loaded
    shapes.add_ellipses(np.array([[500.0, 500.0], [200.0, 300.0]]))  # centre (y, x), radii
    (region,) = widget.regions()
    assert region.shape_type == "ellipse"
    assert region.area_px() == pytest.approx(np.pi * 200 * 300, rel=2e-3)  # not the box
    inside = region.contains(np.array([500.0, 500 + 290, 500 + 299]), np.array([500.0, 500, 500]))
    assert inside.tolist() == [True, True, True]
    assert not region.contains(np.array([500 + 290.0]), np.array([500 + 190.0]))[0]  # a corner
    written = widget.export_regions(tmp_path / "e.geojson")
    assert read_regions(written)[0].area_px() == pytest.approx(region.area_px(), rel=1e-3)
    widget._debounce.stop()
