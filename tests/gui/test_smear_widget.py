"""Blood-smear review in a real viewer: cells appear, the gallery groups them by class,
a correction changes the exported class, and the differential follows."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from omicslens._napari.smear_widget import NO_GENETIC_MODEL, SmearWidget

BCCD = Path(__file__).resolve().parents[1] / "data" / "bccd" / "JPEGImages"
MPP = 0.0721  # the BCCD sample's resolution, estimated from red cells (assets/samples)


@pytest.fixture
def smear(tmp_path: Path) -> Path:
    """Four real BCCD fields side by side in one TIFF that states its resolution."""
    fields = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(BCCD.glob("*.jpg"))]
    mosaic = np.concatenate(fields, axis=1)
    path = tmp_path / "four-fields.tif"
    tifffile.imwrite(
        path,
        mosaic,
        photometric="rgb",
        resolution=(1e4 / MPP, 1e4 / MPP),
        resolutionunit="CENTIMETER",
    )
    return path


def test_smear_review_workflow(make_napari_viewer, qtbot, smear: Path, tmp_path: Path) -> None:
    viewer = make_napari_viewer(show=True)
    viewer.open(str(smear), plugin="omicslens")
    widget = SmearWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.run()
    qtbot.waitUntil(lambda: widget.analysis is not None, timeout=120000)
    analysis = widget.analysis
    n = len(analysis.cells)
    assert n >= 4  # each BCCD field holds at least one annotated white cell
    assert len(widget.points.data) == n
    groups = widget.gallery_groups()
    assert sum(len(ids) for ids in groups.values()) == n
    for name, ids in groups.items():  # grouped by the class each cell has
        assert all(analysis.label([c.id for c in analysis.cells].index(i)) == name for i in ids)
    counts = widget.differential_counts()
    apart = counts.get("Unknown", 0) + counts.get("Review", 0)
    assert counts["Total"] == n - apart  # the typed white cells; Unknown and Review apart
    assert NO_GENETIC_MODEL in widget.patient.text()

    # colour by a score instead of the class
    widget.colour_combo.setCurrentText("P(Neutrophil)")
    np.testing.assert_allclose(widget.points.features["score"], analysis.types.probabilities[:, 0])
    widget.colour_combo.setCurrentText("class")

    # clicking a cell centres the viewer on it
    item = next(
        widget.gallery.item(r)
        for r in range(widget.gallery.count())
        if widget.gallery.item(r).data(256) is not None
    )
    widget._go_to_cell(item)
    cell = analysis.cells[int(item.data(256))]
    np.testing.assert_allclose(
        viewer.scene.camera.center[-2:], (cell.centre_y * MPP, cell.centre_x * MPP), rtol=1e-3
    )

    # a reviewer re-classes one cell as a monocyte
    target = analysis.cells[0]
    before = analysis.label(0)
    widget.correct([target.id], "Monocyte")
    after_counts = widget.differential_counts()
    assert after_counts.get("Monocyte", 0) == counts.get("Monocyte", 0) + (before != "Monocyte")
    assert target.id in widget.gallery_groups()["Monocyte"]
    assert widget.points.features["class"][0] == "Monocyte"
    captions = [widget.gallery.item(r).text() for r in range(widget.gallery.count())]
    assert f"✎ #{target.id}" in captions  # the corrected cell is marked
    assert sum(c.startswith("✎") for c in captions) == 1
    written = widget.export(tmp_path / "out")
    with open(tmp_path / "out" / "cells.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    row = next(r for r in rows if int(r["id"]) == target.id)
    assert row["class"] == "Monocyte" and row["model_class"] == before and row["corrected"] == "1"
    assert len(written) >= 4
    with pytest.raises(Exception, match="exist"):
        widget.export(tmp_path / "out")  # never overwrite a reviewer's export silently


def test_patient_panel_with_a_genetic_bundle(
    make_napari_viewer, qtbot, smear: Path, tmp_path: Path
) -> None:
    from tests.hemato.test_aggregators import random_gated

    bundle = random_gated(tmp_path, feature_dim=192)  # test fixture: random weights
    viewer = make_napari_viewer(show=False)
    viewer.open(str(smear), plugin="omicslens")
    widget = SmearWidget(viewer)
    widget.genetic_edit.setText(str(bundle))
    widget.run()
    qtbot.waitUntil(lambda: widget.analysis is not None, timeout=120000)
    scores = widget.analysis.patient
    assert scores is not None
    assert float(np.sum(scores.probabilities)) == pytest.approx(1.0, abs=1e-5)
    assert float(np.sum(scores.attention)) == pytest.approx(1.0, abs=1e-5)
    text = widget.patient.text()
    assert "AML-NPM1" in text and "Cells that weighed most" in text
    assert "not for diagnosis" in text


def test_patient_panel_names_the_reference_patients(
    make_napari_viewer, qtbot, smear: Path, tmp_path: Path
) -> None:
    """The dock shows the ``patient_id`` that retrieval returns (it used to show '?')."""
    import json

    from omicslens.hemato.aggregators import load_aggregator, write_reference_bank
    from tests.hemato.test_aggregators import random_gated

    bundle = random_gated(tmp_path, feature_dim=192)  # test fixture: random weights
    dim = load_aggregator(bundle).score(np.zeros((3, 192), np.float32)).embedding.shape[0]
    rng = np.random.default_rng(0)
    write_reference_bank(
        bundle / "bank.h5",
        rng.normal(size=(3, dim)).astype(np.float32),
        ["AML-NPM1", "SCD", "AML-PML-RARA"],
        ["P-07", "P-11", "P-23"],
    )
    config = json.loads((bundle / "config.json").read_text())
    config["reference_bank"] = "bank.h5"
    (bundle / "config.json").write_text(json.dumps(config))
    viewer = make_napari_viewer(show=False)
    viewer.open(str(smear), plugin="omicslens")
    widget = SmearWidget(viewer)
    widget.genetic_edit.setText(str(bundle))
    widget.run()
    qtbot.waitUntil(lambda: widget.analysis is not None, timeout=120000)
    text = widget.patient.text()
    assert "Most similar reference patients" in text
    for shown in ("P-07 (AML-NPM1)", "P-11 (SCD)", "P-23 (AML-PML-RARA)"):
        assert shown in text
    assert "?" not in text


def test_a_folder_of_crops_opens_as_a_gallery_with_a_review_row(
    make_napari_viewer, qtbot, tmp_path: Path
) -> None:
    import shutil

    crops = tmp_path / "patient-01"
    shutil.copytree(BCCD.parent / "crops", crops)
    Image.new("RGB", (150, 150), (236, 226, 230)).save(crops / "empty-glass.png")
    viewer = make_napari_viewer(show=True)
    widget = SmearWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.open_crops(crops)
    qtbot.waitUntil(lambda: widget.collection is not None, timeout=120000)
    report = widget.collection
    assert len(report.cells) == 14
    groups = widget.gallery_groups()
    assert sum(len(ids) for ids in groups.values()) == 14
    assert "Review" in groups and list(groups)[-1] == "Review"  # its own row, last
    glass = next(i for i, c in enumerate(report.cells) if c.crop.path.name == "empty-glass.png")
    assert glass in groups["Review"]
    counts = widget.differential_counts()
    assert counts["Review"] == len(groups["Review"])
    assert counts["Total"] == 14 - counts["Review"] - counts.get("Unknown", 0)
    # the percentages are of the typed white cells only: they add up to 100
    table = widget.differential
    percents = [table.item(r, 2).text() for r in range(table.rowCount())]
    typed = [
        float(p)
        for p, r in zip(percents, range(table.rowCount()), strict=True)
        if table.item(r, 0).text() not in ("Total", "Unknown", "Review")
    ]
    assert abs(sum(typed) - 100) < 0.5
    assert (
        percents[[table.item(r, 0).text() for r in range(table.rowCount())].index("Review")]
        == "apart"
    )
    screenshot = viewer.window.screenshot(canvas_only=False)
    Image.fromarray(screenshot).save(tmp_path / "crops-gallery.png")
    # a reviewer decides the empty crop is not a cell at all: keeps it in Review, and
    # re-classes another crop; the export records it
    other = next(i for i in range(14) if i != glass)
    before = report.labels[other]
    widget.correct([other], "Monocyte")
    assert other in widget.gallery_groups()["Monocyte"]
    written = widget.export(tmp_path / "out")
    with written[0].open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[other]["class"] == "Monocyte" and rows[other]["corrected"] == "1"
    assert rows[other]["model_class"] in (before, rows[other]["model_class"])
    with pytest.raises(Exception, match="exist"):
        widget.export(tmp_path / "out")


SIX_FIELDS = Path(__file__).resolve().parents[2] / "assets" / "samples" / "bccd-six-fields.tif"


def test_cells_stay_legible_and_corrections_show_on_the_canvas(make_napari_viewer, qtbot) -> None:
    """Issue 16, item 5: thin rings, a class key, corrected cells marked, headers apart."""
    from qtpy.QtWidgets import QLabel, QListWidget

    from omicslens._napari.smear_canvas import CORRECTED_KEY, CORRECTED_SYMBOL

    viewer = make_napari_viewer(show=True)
    viewer.open(str(SIX_FIELDS), plugin="omicslens")
    widget = SmearWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.run()
    qtbot.waitUntil(lambda: widget.analysis is not None, timeout=120000)
    analysis = widget.analysis
    points = widget.points
    assert len(set(analysis.labels())) >= 2  # the sample holds several classes
    # a transparent face and a ring 1-2 screen pixels wide, at any zoom
    assert not points.border_width_is_relative
    np.testing.assert_allclose(points.face_color[:, 3], 0)
    for zoom in (viewer.scene.camera.zoom, viewer.scene.camera.zoom * 8):
        viewer.scene.camera.zoom = zoom
        on_screen = points.border_width * points.scale[-1] * viewer.scene.camera.zoom
        assert np.all((on_screen >= 1) & (on_screen <= 2))
    # the class key is on the canvas, one line per class shown
    legend = widget.class_legend
    assert legend is not None
    assert all(overlay.visible for overlay in legend.entries.values())
    assert set(legend.entries) == set(analysis.labels())
    # gallery: class headers are labels between the grids, never items of a grid
    headers = [w for w in widget.gallery.findChildren(QLabel) if w.property("class_name")]
    assert [h.property("class_name") for h in headers] == list(widget.gallery_groups())
    grids = [g for _, g in widget.gallery.sections]
    assert all(isinstance(g, QListWidget) for g in grids)
    assert all(g.item(r).data(256) is not None for g in grids for r in range(g.count()))
    # a correction: a square ring labelled "corrected", a key line, ✎ in the gallery
    target = analysis.cells[0]
    previous_key = list(widget.class_legend.entries.values())
    widget.correct([target.id], "Basophil")
    # napari may keep drawing a removed overlay: the previous key must be hidden too
    assert not any(overlay.visible for overlay in previous_key)
    points = widget.points
    assert str(points.symbol[0].value) == CORRECTED_SYMBOL
    assert all(str(s.value) != CORRECTED_SYMBOL for s in points.symbol[1:])
    assert points.features["mark"][0] == "corrected"
    assert widget.cells_view.note is not None
    assert widget.cells_view.note.text.startswith(CORRECTED_KEY)
    captions = [widget.gallery.item(r).text() for r in range(widget.gallery.count())]
    assert f"✎ #{target.id}" in captions
    # only the new key: the previous one left the canvas with the previous layer
    keys = [k for k in viewer.canvas.overlays if k.startswith("omicslens_class_")]
    assert len(keys) == len(widget.class_legend.entries)
    # coloured by a score: the class key goes, a key naming the score and its range comes
    score = next(name for name in widget.scores() if name.startswith("P("))
    widget.colour_combo.setCurrentText(score)
    key = widget.cells_view.score_key
    assert key is not None and key.visible and score in key.text
    values = widget.scores()[score]
    assert f"{values.min():.3g}" in key.text and f"{values.max():.3g}" in key.text
    assert not any(overlay.visible for overlay in widget.class_legend.entries.values())
    widget.colour_combo.setCurrentText("class")
    assert widget.cells_view.score_key is None and not key.visible
    screenshot = viewer.screenshot(canvas_only=False)
    assert screenshot.shape[0] > 0


def test_a_damaged_corrections_file_is_reported_and_the_review_goes_on(
    make_napari_viewer, qtbot
) -> None:
    from omicslens.hemato.review_store import corrections_path, load_corrections

    store = corrections_path(SIX_FIELDS)
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text("{damaged")
    viewer = make_napari_viewer(show=False)
    viewer.open(str(SIX_FIELDS), plugin="omicslens")
    widget = SmearWidget(viewer)
    widget.run()
    qtbot.waitUntil(lambda: widget.analysis is not None, timeout=120000)
    text = widget.status.text()
    assert "could not be read" in text and str(store) in text
    assert widget.analysis.corrections == {}
    cell = widget.analysis.cells[0]
    widget.correct([cell.id], "Basophil")  # saving replaces it (the damaged one is a backup)
    stored = load_corrections(SIX_FIELDS)
    assert stored is not None and [c.cell_id for c in stored.corrections] == [cell.id]
