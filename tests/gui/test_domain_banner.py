"""The Predict dock tells the user when a slide is outside what the model has seen,
shows robustness grades next to validation r, and names absent outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from omicslens._napari.inference_widget import InferenceWidget
from omicslens._napari.layers import slide_layer_data
from omicslens.core import open_slide
from omicslens.core.samples import bundled_models, sample_path
from tests.helpers.bundles import make_bundle


def _dock(make_napari_viewer, qtbot, slide_path: Path, bundle: Path):
    slide = open_slide(slide_path)
    viewer = make_napari_viewer(show=True)
    data, kwargs, _ = slide_layer_data(slide)
    viewer.add_image(data, **kwargs)
    widget = InferenceWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.add_model_folder(bundle)
    widget.load_model()
    qtbot.waitUntil(lambda: widget.live is not None, timeout=60000)
    return viewer, widget, slide


@pytest.fixture
def skin_with_breast_model(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("OMICSLENS_CACHE_DIR", str(tmp_path / "cache"))
    viewer, widget, slide = _dock(
        make_napari_viewer, qtbot, sample_path("cmu1"), bundled_models()["her2st-expression"]
    )
    yield viewer, widget
    widget.close_live()
    slide.close()


def test_out_of_domain_slide_gets_a_red_banner(skin_with_breast_model, qtbot) -> None:
    viewer, widget = skin_with_breast_model
    banner = widget.domain_banner
    qtbot.waitUntil(lambda: banner.verdict is not None, timeout=120000)
    qtbot.waitUntil(lambda: widget.live.scheduler.idle, timeout=120000)
    qtbot.wait(1000)  # the next verdict, over every predicted tile
    assert banner.isVisible()
    assert banner.verdict.verdict == "out-of-domain"
    assert "outside what the model has seen" in banner.text()
    assert "#9b1c1c" in banner.styleSheet()  # red
    labels = [choice.label for choice in widget._choices]
    assert any(label.startswith("Domain distance") for label in labels)
    first = widget.output_list.item(0).text()
    assert "robustness " in first and "r = " in first
    shot = viewer.screenshot(canvas_only=False)
    assert shot.shape[0] > 0


def test_a_name_the_model_lacks_is_said_with_close_names(skin_with_breast_model) -> None:
    _, widget = skin_with_breast_model
    assert widget.select_output("cd74")  # any case
    assert widget._choices[widget.output_list.currentRow()].label == "CD74"
    assert not widget.select_output("ERBB2")
    assert "does not predict 'ERBB2'" in widget.status.text()
    widget.filter_edit.setText("ESR1")
    assert "does not predict 'ESR1'" in widget.status.text()


def test_a_bundle_without_reference_says_it_cannot_tell(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("OMICSLENS_CACHE_DIR", str(tmp_path / "cache"))
    bundle = make_bundle(tmp_path / "b", patch_size=64, spacing=2.0)
    _, widget, slide = _dock(make_napari_viewer, qtbot, sample_path("cmu1"), bundle)
    try:
        assert widget.domain_banner.isVisible()
        assert "no domain reference" in widget.domain_banner.text()
    finally:
        widget.close_live()
        slide.close()
