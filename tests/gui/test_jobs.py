"""Job progress bars: moved rarely enough that they cost the GUI thread little."""

from __future__ import annotations

import threading

from napari.utils import progress

from omicslens._napari import jobs
from omicslens._napari.state import ViewerState
from omicslens.app.progress import Progress


def test_a_job_relabels_its_bar_only_when_the_label_changes(qtbot, monkeypatch) -> None:
    labels: list[str] = []
    real = progress.set_description
    monkeypatch.setattr(
        progress, "set_description", lambda self, desc: (labels.append(desc), real(self, desc))
    )
    release = threading.Event()

    def job():
        for done in range(40):
            yield Progress("tiles", done, 40)
        release.wait(5)
        yield Progress("writing", 40, 40)
        return "report"

    reports: list[str] = []
    handle = jobs.start_job(ViewerState(), job(), "whole slide", on_done=reports.append)
    qtbot.wait(300)
    release.set()
    qtbot.waitUntil(lambda: reports == ["report"], timeout=10000)
    # one label for the 40 "tiles" steps and one for "writing"; before, tqdm's ": " suffix
    # on bar.desc made every step a new label and a redraw
    assert labels == ["OmicsLens: whole slide (tiles)", "OmicsLens: whole slide (writing)"]
    assert handle.bar.n == 40  # the last step always shows, however fast they came
