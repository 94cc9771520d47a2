"""The Predict dock asks before running TorchScript that touches files (issue 13, item 4).

The test model reads a file when it runs; the dock must not run it unless the user says
yes, and when they do, the session and its layer say the code was trusted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from omicslens._napari.inference_widget import InferenceWidget
from omicslens._napari.overlay import META_KEY
from omicslens._napari.trust_prompt import trust_question
from tests.conftest import CMU1
from tests.helpers.bundles import make_bundle
from tests.models.test_untrusted_code import ReadsAFile


def _untrusted_bundle(folder: Path, target: Path) -> Path:
    bundle = make_bundle(folder, outputs=("A", "B", "C"), patch_size=32, spacing=4.0)
    torch.jit.script(ReadsAFile(str(target))).save(str(bundle / "torchscript_model.pt"))
    return bundle


def _dock(viewer, bundle: Path, answer: bool, asked: list[str]) -> InferenceWidget:
    widget = InferenceWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.add_model_folder(bundle)

    def confirm(parent, error) -> bool:
        asked.append(trust_question(error))
        return answer

    widget.confirm_trust = confirm
    return widget


def test_saying_no_runs_nothing(make_napari_viewer, qtbot, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OMICSLENS_CACHE_DIR", str(tmp_path / "cache"))
    viewer = make_napari_viewer()
    viewer.open(str(CMU1), plugin="omicslens")
    target = tmp_path / "touched-by-the-model.bin"
    asked: list[str] = []
    widget = _dock(viewer, _untrusted_bundle(tmp_path / "m", target), False, asked)
    widget.load_model()
    qtbot.waitUntil(lambda: "Could not load the model" in widget.status.text(), timeout=30000)
    assert len(asked) == 1 and "torch.from_file" in asked[0]
    assert "refused to run this TorchScript model" in widget.status.text()
    assert widget.live is None and not target.exists()


def test_saying_yes_runs_it_and_says_so(make_napari_viewer, qtbot, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OMICSLENS_CACHE_DIR", str(tmp_path / "cache"))
    viewer = make_napari_viewer()
    viewer.open(str(CMU1), plugin="omicslens")
    target = tmp_path / "touched-by-the-model.bin"
    target.write_bytes(bytes(4))
    asked: list[str] = []
    widget = _dock(viewer, _untrusted_bundle(tmp_path / "m", target), True, asked)
    widget.load_model()
    qtbot.waitUntil(lambda: widget.live is not None, timeout=30000)
    live = widget.live
    assert len(asked) == 1
    assert live.session.predictor.trust_code
    assert live.overlay.layer.metadata[META_KEY]["trusted_code"] is True
    assert "code you chose to trust" in widget.status.text()
    widget.predict_whole_slide()
    qtbot.waitUntil(lambda: live.stats().done > 0, timeout=30000)
    assert np.isfinite(live.session.store.get(np.flatnonzero(live.session.store.done_mask()))).all()
    widget.close_live()
    live.wait_closed()
