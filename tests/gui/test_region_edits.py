"""Regions without a model, renamed in the table, undone, autosaved with backups, and
imported twice without duplicates (issue 16, item 3), in a real viewer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from omicslens._napari.regions_widget import RegionsWidget
from omicslens.core.backups import backup_paths
from omicslens.core.regions import read_regions
from tests.conftest import CMU1

MPP = 0.499  # CMU-1's Aperio MPP


@pytest.fixture
def widget(make_napari_viewer, tmp_path: Path, cache: Path) -> RegionsWidget:
    slide = tmp_path / "slides" / CMU1.name  # regions autosave beside the slide
    slide.parent.mkdir()
    shutil.copy(CMU1, slide)
    viewer = make_napari_viewer(show=False)
    viewer.open(str(slide), plugin="omicslens")
    regions = RegionsWidget(viewer)
    assert regions.new_layer() is not None
    return regions


def _settle(widget: RegionsWidget) -> None:
    """What the 300 ms debounce does after an edit."""
    widget._debounce.stop()
    widget.refresh()


def _column(widget: RegionsWidget, name: str) -> list[str]:
    headers = [widget.table.horizontalHeaderItem(c).text() for c in range(12)]
    column = headers.index(name)
    return [widget.table.item(r, column).text() for r in range(widget.table.rowCount())]


def test_regions_are_measured_without_a_model(widget: RegionsWidget) -> None:
    assert widget.state.live is None
    widget.shapes.add_rectangles(np.array([[300.0, 400.0], [1500.0, 1600.0]]))  # (y, x)
    _settle(widget)
    assert _column(widget, "region") == ["region 1"]
    expected = 1200 * 1200 * MPP * MPP / 1e6  # a direct computation, mm²
    assert float(_column(widget, "area mm²")[0]) == pytest.approx(expected, abs=1e-3)
    assert _column(widget, "mean") == [""]  # unknown without a model, not 0
    assert "Load a model" in widget.status.text()
    assert widget.shapes.text.values.tolist() == ["region 1"]  # the name on the canvas


def test_a_name_edited_in_the_table_reaches_the_shape_and_the_file(widget) -> None:
    widget.shapes.add_rectangles(np.array([[300.0, 400.0], [1500.0, 1600.0]]))
    _settle(widget)
    widget.table.item(0, 0).setText("tumour core")  # what a double-click edit does
    _settle(widget)
    assert [r.name for r in widget.regions()] == ["tumour core"]
    assert widget.shapes.text.values.tolist() == ["tumour core"]
    assert [r.name for r in read_regions(widget.edits.autosave)] == ["tumour core"]


def test_undo_restores_a_deleted_region_and_the_backup_keeps_it(widget) -> None:
    widget.shapes.add_rectangles(np.array([[300.0, 400.0], [1500.0, 1600.0]]))
    _settle(widget)
    widget.shapes.add_polygons(np.array([[1800.0, 500.0], [2900.0, 500.0], [2900.0, 1700.0]]))
    _settle(widget)
    before = widget.regions()
    widget.shapes.selected_data = {0, 1}
    widget.shapes.remove_selected()  # every region deleted
    _settle(widget)
    autosave = widget.edits.autosave
    assert json.loads(autosave.read_text())["features"] == []
    backup = backup_paths(autosave)[0]  # the regions the empty file replaced
    assert len(read_regions(backup)) == 2
    assert widget.table.rowCount() == 0 and widget.compare.a_combo.count() == 0  # nothing stale

    assert widget.undo()
    after = widget.regions()
    assert [r.name for r in after] == [r.name for r in before]
    for a, b in zip(after, before, strict=True):
        np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-3)
    assert widget.table.rowCount() == 2
    assert len(read_regions(autosave)) == 2
    assert widget.redo() and len(widget.shapes.data) == 0
    assert widget.undo() and widget.undo()  # back to one region
    assert [r.name for r in widget.regions()] == ["region 1"]


def test_importing_a_file_twice_adds_its_regions_once(widget, tmp_path: Path) -> None:
    widget.shapes.add_rectangles(np.array([[300.0, 400.0], [1500.0, 1600.0]]))
    _settle(widget)
    exported = widget.export_regions(tmp_path / "out.geojson")
    assert widget.import_regions(exported) == 0  # the layer holds it already
    assert "1 already present" in widget.status.text()
    assert len(widget.shapes.data) == 1
