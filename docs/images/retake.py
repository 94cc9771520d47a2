"""Retake the user guide's screenshots from the real app (issue 16: no mock-ups).

Run from the repository root, under a virtual display the size of a laptop screen:

    xvfb-run -a -s "-screen 0 1366x768x24" python docs/images/retake.py [NAME ...]

Each picture drives the OmicsLens panel as a user would (bundled samples and models,
nothing downloaded), waits until the predictions on screen are complete, and saves the
whole window to ``docs/images/NAME.png``. Look at every picture before committing it.
The HER2ST measured spots come from ``../shared/data/her2st`` (see docs/data.md); that
picture is skipped when the data are not there.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
HER2ST = ROOT.parent / "shared" / "data" / "her2st"
WINDOW = (1366, 768)


def _pump(seconds: float) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.03)


def _until(condition: Callable[[], bool], timeout: float = 600.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        _pump(0.2)
    raise TimeoutError("the app did not get there in time")


def _viewer_and_panel(sample: str, copy: bool = False) -> tuple[object, object]:
    """A viewer at laptop size with the sample open and the panel docked; ``copy`` opens
    a temporary copy (regions autosave beside the slide, not in the repository)."""
    import shutil
    import tempfile

    import napari

    from omicslens._napari.launch import _quiet_backend_notice
    from omicslens.core.samples import sample_path

    _quiet_backend_notice()
    viewer = napari.Viewer(title="OmicsLens")
    window = viewer.window._qt_window
    window.showNormal()
    window.resize(*WINDOW)
    path = Path(sample_path(sample))
    if copy:
        path = Path(shutil.copy(path, Path(tempfile.mkdtemp(prefix="omicslens-shot-"))))
    viewer.open(str(path), plugin="omicslens")
    _, panel = viewer.window.add_plugin_dock_widget("omicslens", "OmicsLens")
    _pump(2.0)
    return viewer, panel


def _predict(panel: object, model: str, output: str | None = None) -> None:
    from omicslens._napari.launch import _model_folder, _predictions_settled

    panel.show_tab("Predict")
    panel.predict.add_model_folder(_model_folder(model))
    if output:
        panel.predict.initial_output = output
    panel.predict.load_model()
    _until(lambda: panel.predict.live is not None)
    if output:
        _until(lambda: panel.predict.live.output.label.startswith(output))
    _until(lambda: _predictions_settled(panel.viewer))
    _pump(2.0)


def _save(viewer: object, name: str) -> None:
    target = IMAGES / f"{name}.png"
    viewer.screenshot(str(target), canvas_only=False)
    print(f"wrote {target}")
    viewer.close()


def viewer_cmu1() -> None:
    viewer, panel = _viewer_and_panel("cmu1")
    panel.show_tab("Slide")
    _pump(1.0)
    _save(viewer, "viewer-cmu1")


def predict_her2st() -> None:
    viewer, panel = _viewer_and_panel("her2st-c6")
    _predict(panel, "her2st-expression", "B and plasma cells (immunoglobulins) [10/13 genes]")
    _save(viewer, "predict-her2st")


def panel_predict() -> None:
    viewer, panel = _viewer_and_panel("her2st-c6")
    _predict(panel, "her2st-expression-wide", "ERBB2")
    _save(viewer, "panel-predict")


def domain_out_of_domain() -> None:
    viewer, panel = _viewer_and_panel("cmu1")
    _predict(panel, "her2st-expression")
    _save(viewer, "domain-out-of-domain")


def predict_measured() -> None:
    if not (HER2ST / "spots").exists():
        print("skipped predict-measured: no HER2ST data beside the repository")
        return
    viewer, panel = _viewer_and_panel("her2st-c6")
    _predict(panel, "her2st-expression", "CD74")
    measured = panel.predict.measured
    measured.path_edit.setText(str(HER2ST))
    measured.section_edit.setText("C6")
    measured.scale_spin.setValue(0.5)  # the bundled sample is a half-resolution copy
    measured.load()
    _until(lambda: "r =" in measured.result.text(), timeout=120)
    _pump(2.0)
    _save(viewer, "predict-measured")


def regions() -> None:
    viewer, panel = _viewer_and_panel("her2st-c6", copy=True)
    _predict(panel, "her2st-expression", "CD74")
    widget = panel.regions
    panel.show_tab("Regions")
    shapes = widget.new_layer()
    # (y, x) level-0 pixels of the half-resolution C6 sample: tumour and stroma-rich parts
    shapes.add_rectangles(np.array([[1900.0, 1700.0], [2700.0, 2500.0]]))
    shapes.add_polygons(np.array([[2450.0, 100.0], [2900.0, 100.0], [2700.0, 900.0]]))
    widget._debounce.stop()
    widget.refresh()
    _until(lambda: widget.table.rowCount() == 2 and not widget.busy)
    widget.predict_missing()
    _until(lambda: widget.predict_job.finished.is_set())
    _until(lambda: bool(widget.summaries) and not widget.busy)
    widget.rename_region(0, "tumour")
    widget.rename_region(1, "stroma")
    _pump(1.0)
    _until(lambda: not widget.busy)
    widget.a_combo.setCurrentText("tumour")
    widget.b_combo.setCurrentText("stroma")
    widget.run_comparison()
    _until(lambda: widget.comparison is not None)
    _pump(2.0)
    _save(viewer, "regions")


def smear_review() -> None:
    import os
    import tempfile

    # the corrections autosave goes to a throwaway config folder, not the user's
    os.environ["OMICSLENS_CONFIG_DIR"] = tempfile.mkdtemp(prefix="omicslens-shot-config-")
    viewer, panel = _viewer_and_panel("bccd-fields")
    panel.show_tab("Blood smear")
    smear = panel.smear
    smear.run()
    _until(lambda: smear.analysis is not None)
    analysis = smear.analysis
    # the reviewer re-classes the first lymphocyte as a monocyte (shown as corrected)
    first = next(i for i in range(len(analysis.cells)) if analysis.label(i) == "Lymphocyte")
    smear.correct([analysis.cells[first].id], "Monocyte")
    viewer.reset_view()
    _pump(3.0)
    _save(viewer, "smear-review")


def crops_gallery() -> None:
    """A folder of 26 crops, as a CellaVision export mixes them: 16 white cells, 5
    platelets and 5 red cells, cut from the BCCD validation fields by
    ``omicslens bench crop-review --voc ../shared/data/bccd --out $OMICSLENS_CROPS``."""
    import os
    import shutil
    import tempfile

    source = Path(os.environ.get("OMICSLENS_CROPS", "/tmp/crops"))
    if not (source / "white-cells").is_dir():
        print(f"skipped crops-gallery: no crops in {source} (run bench crop-review first)")
        return
    folder = Path(tempfile.mkdtemp(prefix="omicslens-crops-"))
    for kind, count in (("white-cells", 16), ("platelets", 5), ("red-cells", 5)):
        for crop in sorted((source / kind).glob("*.png"))[:count]:
            shutil.copy(crop, folder / f"{kind}-{crop.name}")
    viewer, panel = _viewer_and_panel("bccd-fields")
    panel.show_tab("Blood smear")
    panel.smear.open_crops(folder)
    _until(lambda: panel.smear.crops)
    _pump(3.0)
    _save(viewer, "crops-gallery")


PICTURES: dict[str, Callable[[], None]] = {
    "viewer-cmu1": viewer_cmu1,
    "panel-predict": panel_predict,
    "predict-her2st": predict_her2st,
    "domain-out-of-domain": domain_out_of_domain,
    "predict-measured": predict_measured,
    "regions": regions,
    "smear-review": smear_review,
    "crops-gallery": crops_gallery,
}


def main(names: list[str]) -> int:
    for name in names or list(PICTURES):
        PICTURES[name]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
