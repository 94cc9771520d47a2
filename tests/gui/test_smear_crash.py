"""A reviewer's smear correction survives a crash (issue 16, item 3).

A child process opens the six-field BCCD sample, analyses it, corrects one cell and is
killed (SIGKILL: no cleanup, no atexit, no Qt shutdown). Reopening the same image and
analysing it again in a new viewer must show that cell with the corrected class, marked
as corrected.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from omicslens._napari.cell_gallery import smear_entries
from omicslens._napari.smear_canvas import CORRECTED_SYMBOL
from omicslens._napari.smear_widget import SmearWidget
from tests.conftest import ROOT, SAMPLES

SIX_FIELDS = SAMPLES / "bccd-six-fields.tif"

CHILD = r"""
import json, os, signal, sys, time
import napari
from qtpy.QtWidgets import QApplication
from omicslens._napari.smear_widget import SmearWidget

viewer = napari.Viewer(show=False)
viewer.open(sys.argv[1], plugin="omicslens")
widget = SmearWidget(viewer)
widget.run()
deadline = time.monotonic() + 240
while widget.analysis is None and time.monotonic() < deadline:
    QApplication.processEvents()
    time.sleep(0.02)
analysis = widget.analysis
cell = analysis.cells[0]
model_class = analysis.label(0)
new_class = "Basophil" if model_class != "Basophil" else "Monocyte"
widget.correct([cell.id], new_class)
print(json.dumps({"id": cell.id, "class": new_class, "model_class": model_class}))
sys.stdout.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_a_correction_survives_a_crash(
    make_napari_viewer, qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    env = {**os.environ, "OMICSLENS_CONFIG_DIR": str(config)}
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(SIX_FIELDS)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -9, child.stderr[-3000:]
    made = json.loads(child.stdout.strip().splitlines()[-1])
    assert made["class"] != made["model_class"]

    monkeypatch.setenv("OMICSLENS_CONFIG_DIR", str(config))  # where the child saved
    viewer = make_napari_viewer(show=False)
    viewer.open(str(SIX_FIELDS), plugin="omicslens")
    widget = SmearWidget(viewer)
    widget.run()
    qtbot.waitUntil(lambda: widget.analysis is not None, timeout=120000)
    analysis = widget.analysis
    ids = [cell.id for cell in analysis.cells]
    index = ids.index(made["id"])
    assert analysis.label(index) == made["class"]
    assert analysis.corrections == {made["id"]: made["class"]}
    assert analysis.types.labels[index] == made["model_class"]  # the model's own call kept
    assert "Restored 1 corrections from" in widget.status.text()
    # shown as corrected: on the canvas, in the gallery and in the differential
    assert widget.points.features["class"][index] == made["class"]
    assert bool(widget.points.features["corrected"][index])
    assert str(widget.points.symbol[index].value) == CORRECTED_SYMBOL
    assert made["id"] in widget.gallery_groups()[made["class"]]
    assert smear_entries(analysis)[index].corrected
    captions = [widget.gallery.item(r).text() for r in range(widget.gallery.count())]
    assert f"✎ #{made['id']}" in captions
    assert widget.differential_counts()[made["class"]] >= 1
