"""Trust in the Predict dock: validation r in the picker, low genes flagged, gene-set
scores, and measured spots compared with predictions on a real HER2ST cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from omicslens._napari.inference_widget import InferenceWidget
from omicslens._napari.layers import slide_layer_data
from omicslens.core import open_slide
from omicslens.core.measured import load_measured, pearson_per_column
from omicslens.models import Predictor
from omicslens.models.expression.evaluate import predict_at_spots
from tests.helpers.bundles import make_bundle, rewrite_config

CUT = Path(__file__).resolve().parents[1] / "data" / "her2st-cut"
GENES = ("ERBB2", "CD74", "KRT19")


@pytest.fixture
def setup(make_napari_viewer, qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OMICSLENS_CACHE_DIR", str(tmp_path / "cache"))
    outputs = [
        {"name": g, "kind": "gene", "pearson": r, "train_mean": 0.5, "train_std": 2.0}
        for g, r in zip(GENES, (0.1, 0.2, 0.3), strict=True)
    ]
    bundle = make_bundle(tmp_path / "bundle", outputs=GENES, patch_size=32, spacing=4.0)
    rewrite_config(bundle, {"outputs": outputs})
    mpp = load_measured(CUT, section="C5").pitch_mpp()
    slide = open_slide(CUT / "images" / "C5.jpg", mpp=mpp)
    viewer = make_napari_viewer(show=True)
    data, kwargs, _ = slide_layer_data(slide)
    viewer.add_image(data, **kwargs)
    widget = InferenceWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.add_model_folder(bundle)
    widget.load_model()
    qtbot.waitUntil(lambda: widget.live is not None, timeout=30000)
    qtbot.waitUntil(
        lambda: widget.live.scheduler.idle and widget.live.stats().done > 0, timeout=30000
    )
    yield viewer, widget, bundle, slide, mpp
    widget.close_live()
    slide.close()


def test_picker_shows_validation_r_and_flags_low_genes(setup) -> None:
    _, widget, *_ = setup
    texts = [widget.output_list.item(r).text() for r in range(widget.output_list.count())]
    assert texts[0] == "⚠ ERBB2  (r = 0.10)"
    assert texts[2] == "KRT19  (r = 0.30)"
    assert widget.flagged_genes() == ["ERBB2"]
    widget.flag_spin.setValue(0.25)
    assert widget.flagged_genes() == ["ERBB2", "CD74"]
    widget.filter_edit.setText("krt")
    visible = [
        r for r in range(widget.output_list.count()) if not widget.output_list.item(r).isHidden()
    ]
    assert next(widget.output_list.item(r).text() for r in visible).startswith("KRT19")


def test_gene_set_score_overlay_is_the_standardised_mean(setup, qtbot) -> None:
    _, widget, *_ = setup
    labels = [c.label for c in widget._choices]
    row = next(i for i, label in enumerate(labels) if label.startswith("Antigen presentation"))
    widget.output_list.setCurrentRow(row)
    qtbot.waitUntil(lambda: widget.live.output.label.startswith("Antigen"), timeout=10000)
    store = widget.live.session.store
    cd74 = store.raster(GENES.index("CD74"))
    expected = (cd74 - 0.5) / 2.0
    np.testing.assert_allclose(widget.live.overlay.raster, expected, rtol=1e-5, equal_nan=True)


def test_measured_spots_are_shown_and_compared(setup, qtbot) -> None:
    _viewer, widget, bundle, slide, _mpp = setup
    panel = widget.measured
    panel.path_edit.setText(str(CUT))
    panel.section_edit.setText("C5")
    panel.load()
    qtbot.waitUntil(lambda: panel.layer is not None and "r =" in panel.result.text(), timeout=60000)
    assert len(panel.layer.data) == 25
    measured = load_measured(CUT, section="C5")
    predicted = predict_at_spots(slide, measured, Predictor(bundle))
    truth = measured.normalised(list(GENES))
    expected = pearson_per_column(predicted[:, :1], truth[:, :1])[0]  # ERBB2 is shown
    assert panel.last_pearson == pytest.approx(float(expected), abs=1e-4)
    np.testing.assert_allclose(panel.layer.features["value"], truth[:, 0], rtol=1e-5)
    assert "Mean r over 3 measured outputs" in panel.result.text()
