"""Every prediction map reads on its own: colour bar with a key (output, unit, colour
range), a layer name that says the output, and hover text with name, value and unit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from omicslens._napari.inference_widget import InferenceWidget
from omicslens._napari.legend import (
    DOMAIN_UNIT,
    EXPRESSION_UNIT,
    GENE_SET_UNIT,
    PROBABILITY_UNIT,
    UNCERTAINTY_UNIT,
    output_unit,
)
from omicslens.core.genesets import gene_set_score, single_output
from tests.conftest import CMU1
from tests.helpers.bundles import make_bundle, rewrite_config

GENES = ("ERBB2", "CD74", "HLA-DRA")


@pytest.fixture
def predicting(make_napari_viewer, qtbot, tmp_path: Path, cache: Path):
    viewer = make_napari_viewer(show=True)
    viewer.open(str(CMU1), plugin="omicslens")
    outputs = [{"name": g, "kind": "gene", "train_mean": 0.5, "train_std": 2.0} for g in GENES]
    bundle = make_bundle(tmp_path / "bundle", outputs=GENES, patch_size=32, spacing=2.0)
    rewrite_config(bundle, {"outputs": outputs})
    viewer.scene.camera.center = (700, 550)
    viewer.scene.camera.zoom = 2.0
    widget = InferenceWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.add_model_folder(bundle)
    widget.load_model()
    qtbot.waitUntil(lambda: widget.live is not None, timeout=30000)
    live = widget.live
    qtbot.waitUntil(lambda: live.scheduler.idle and live.stats().done > 0, timeout=30000)
    live.drain()
    yield viewer, widget
    widget.close_live()
    live.wait_closed()


def _choose(widget: InferenceWidget, qtbot, prefix: str) -> None:
    row = next(i for i, c in enumerate(widget._choices) if c.label.startswith(prefix))
    widget.output_list.setCurrentRow(row)
    qtbot.waitUntil(lambda: widget.live.output.label.startswith(prefix), timeout=10000)


def test_colour_bar_and_key_name_the_output_its_unit_and_the_contrast(predicting, qtbot) -> None:
    viewer, widget = predicting
    overlay = widget.live.overlay
    layer, legend = overlay.layer, overlay.legend
    assert layer.colorbar.visible
    assert viewer.canvas.overlays[legend.key] is legend.text
    assert legend.text.visible
    low, high = layer.contrast_limits
    expected = ["ERBB2", EXPRESSION_UNIT, f"colours {low:.3g} to {high:.3g}"]
    # while tiles stream in the key follows the contrast at most once a second
    qtbot.waitUntil(lambda: legend.text.text.splitlines() == expected, timeout=3000)
    overlay.set_fixed_contrast(0.25, 1.5)
    qtbot.waitUntil(lambda: "colours 0.25 to 1.5" in legend.text.text, timeout=3000)
    overlay.use_auto_contrast()
    qtbot.waitUntil(lambda: "colours 0.25 to 1.5" not in legend.text.text, timeout=3000)
    low, high = layer.contrast_limits
    assert legend.text.text.endswith(f"colours {low:.3g} to {high:.3g}")
    # the key is drawn: napari made a canvas visual for it
    visuals = viewer.window._qt_viewer.canvas._viewer_overlay_to_visual[legend.text]
    assert visuals and visuals[0].node.text == legend.text.text
    layer.visible = False
    assert not legend.text.visible
    layer.visible = True
    assert legend.text.visible


def test_switching_output_renames_the_layer_and_rewrites_the_key(predicting, qtbot) -> None:
    viewer, widget = predicting
    live = widget.live
    layer = live.overlay.layer
    base = f"{live.session.bundle.name} (CMU-1-Small-Region.svs)"
    assert layer.name == f"ERBB2 · {base}"
    _choose(widget, qtbot, "CD74")
    assert layer.name == f"CD74 · {base}"
    assert live.overlay.legend.text.text.startswith(f"CD74\n{EXPRESSION_UNIT}\n")
    _choose(widget, qtbot, "Antigen presentation")
    assert layer.name.startswith("Antigen presentation (MHC class II) [2/7 genes] · ")
    assert f"[2/7 genes]\n{GENE_SET_UNIT}\n" in live.overlay.legend.text.text
    low, high = layer.contrast_limits
    assert f"{low:.3g} to {high:.3g}" in live.overlay.legend.text.text
    # what finds layers by name still finds the slide, and the overlay is still ours
    assert widget._slide_layer() is live.slide_layer
    assert layer in viewer.layers
    assert layer.metadata["omicslens_prediction"]["slide"] == "CMU-1-Small-Region.svs"


def test_hover_says_output_value_and_unit(predicting, qtbot) -> None:
    viewer, widget = predicting
    overlay = widget.live.overlay
    raster = overlay.raster
    rows, cols = np.nonzero(np.isfinite(raster))
    r, c = int(rows[0]), int(cols[0])
    value = float(raster[r, c])
    position = np.asarray(overlay.layer.translate) + np.asarray(overlay.layer.scale) * (r, c)
    viewer.layers.selection.active = overlay.layer
    viewer.mouse_over_canvas = True
    viewer.cursor.position = tuple(position)
    status, _tooltip = viewer._calc_status_from_cursor()
    assert status["coordinates"] == f"ERBB2: {value:.3g} {EXPRESSION_UNIT}"
    assert "[" not in status["coordinates"]
    _choose(widget, qtbot, "CD74")
    status, _ = viewer._calc_status_from_cursor()
    expected = float(overlay.raster[r, c])
    assert status["coordinates"] == f"CD74: {expected:.3g} {EXPRESSION_UNIT}"
    # a tile not predicted yet says so instead of "nan"
    empty = np.argwhere(~np.isfinite(overlay.raster))[0]
    viewer.cursor.position = tuple(
        np.asarray(overlay.layer.translate) + np.asarray(overlay.layer.scale) * empty
    )
    status, _ = viewer._calc_status_from_cursor()
    assert status["coordinates"] == "CD74: not predicted here"


def test_removing_the_layer_removes_its_key(predicting) -> None:
    viewer, widget = predicting
    legend = widget.live.overlay.legend
    viewer.layers.remove(legend.layer)
    assert legend.key not in viewer.canvas.overlays


def test_two_maps_shown_together_keep_each_key_beside_its_own_colour_bar(
    make_napari_viewer,
) -> None:
    from omicslens._napari.legend import MapLegend

    viewer = make_napari_viewer()
    first = viewer.add_image(np.random.default_rng(0).random((8, 8)), colormap="inferno")
    second = viewer.add_image(np.random.default_rng(1).random((8, 8)), colormap="viridis")
    one = MapLegend(viewer, first, "model A", "ERBB2", EXPRESSION_UNIT)
    two = MapLegend(viewer, second, "model B", "ensemble_sd", UNCERTAINTY_UNIT)
    assert one.corner != two.corner
    for legend, layer in ((one, first), (two, second)):
        assert str(legend.text.position) == legend.corner
        assert str(layer.colorbar.position) == legend.corner
    # once a map is gone its corner is free for the next one
    viewer.layers.remove(second)
    third = viewer.add_image(np.zeros((8, 8)))
    assert MapLegend(viewer, third, "model C", "CD74", EXPRESSION_UNIT).corner == two.corner


def test_units_follow_the_output_kind_and_task() -> None:
    names = ["ERBB2", "CD74", "ensemble_sd", "domain_distance"]
    meta = [
        {"kind": "gene", "train_mean": 0.5, "train_std": 2.0},
        {"kind": "gene", "train_mean": 0.5, "train_std": 2.0},
        {"kind": "uncertainty"},
        {"kind": "domain"},
    ]
    assert output_unit(single_output(names, 0), names, meta, "regression") == EXPRESSION_UNIT
    assert output_unit(single_output(names, 2), names, meta, "regression") == UNCERTAINTY_UNIT
    assert output_unit(single_output(names, 3), names, meta, "regression") == DOMAIN_UNIT
    classes = ["tumour", "stroma"]
    assert output_unit(single_output(classes, 1), classes, None, "classification") == (
        PROBABILITY_UNIT
    )
    score = gene_set_score("set", ("ERBB2", "CD74"), names, meta)
    assert score is not None
    assert output_unit(score, names, meta, "regression") == GENE_SET_UNIT


BCCD = Path(__file__).resolve().parents[1] / "data" / "bccd" / "JPEGImages"
BCCD_MPP = 0.0721


def test_typed_cells_have_a_class_key_in_their_colours(
    make_napari_viewer, qtbot, tmp_path: Path
) -> None:
    import tifffile
    from PIL import Image

    from omicslens._napari.smear_widget import SmearWidget
    from omicslens.hemato.typing import class_colour

    fields = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(BCCD.glob("*.jpg"))]
    path = tmp_path / "fields.tif"
    tifffile.imwrite(
        path,
        np.concatenate(fields, axis=1),
        photometric="rgb",
        resolution=(1e4 / BCCD_MPP, 1e4 / BCCD_MPP),
        resolutionunit="CENTIMETER",
    )
    viewer = make_napari_viewer(show=True)
    viewer.open(str(path), plugin="omicslens")
    widget = SmearWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.run()
    qtbot.waitUntil(lambda: widget.analysis is not None, timeout=120000)
    labels = widget.analysis.labels()
    legend = widget.class_legend
    assert legend is not None and legend.layer is widget.points
    assert sum(int(line.rsplit("(", 1)[1].rstrip(")")) for line in legend.lines) == len(labels)
    for name, overlay in legend.entries.items():
        assert overlay.text == f"● {name} ({labels.count(name)})"
        assert overlay.visible
        expected = [c / 255 for c in class_colour(name)]
        np.testing.assert_allclose(np.asarray(overlay.color)[:3], expected, atol=1e-6)
        assert any(v is overlay for v in viewer.canvas.overlays.values())
    # coloured by a score, the class key would lie: it is hidden; back to class, it returns
    widget.colour_combo.setCurrentText("P(Neutrophil)")
    assert not any(o.visible for o in legend.entries.values())
    widget.colour_combo.setCurrentText("class")
    fresh = widget.class_legend
    assert fresh is not legend and all(o.visible for o in fresh.entries.values())
    # the old cells layer is gone, and so is its key
    assert not any(
        any(v is o for v in viewer.canvas.overlays.values()) for o in legend.entries.values()
    )
