"""The viewer's "tiles in view" job, driven without a viewer (it is an app job)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from omicslens.app.domain import ExampleSlide, fit_domain
from omicslens.app.progress import run_job
from omicslens.app.tiles import predict_tiles
from omicslens.app.view_progress import follow_view
from omicslens.core import open_slide
from omicslens.core.domain import DomainVerdict
from omicslens.models.session import InferenceSession


@pytest.fixture(scope="module")
def with_domain(tmp_path_factory, level0_bundle, he_slide) -> Path:
    folder = tmp_path_factory.mktemp("view-domain") / "bundle"
    shutil.copytree(level0_bundle, folder)
    run_job(fit_domain(folder, [ExampleSlide(he_slide)], tiles_per_slide=40)).save(folder)
    return folder


def test_it_counts_the_view_and_gives_a_verdict_only_when_more_tiles_are_done(
    with_domain: Path, he_slide: Path
) -> None:
    verdicts: list[DomainVerdict] = []
    with open_slide(he_slide) as slide:
        session = InferenceSession.open(slide, with_domain, cache=False)
        tissue = np.flatnonzero(session.tissue_tiles.ravel())
        view = tissue[:6]
        job = follow_view(
            session, lambda: view, verdicts.append, poll_seconds=0.0, domain_every_s=0.0
        )
        first = next(job)
        assert (first.stage, first.done, first.total) == ("tiles in view", 0, 6)
        assert verdicts == []  # nothing predicted: nothing to judge

        run_job(predict_tiles(session, view[:4]))
        step = next(job)
        assert (step.done, step.total) == (4, 6)
        assert len(verdicts) == 1 and verdicts[0].tiles_checked == 4
        next(job)
        assert len(verdicts) == 1  # no new tiles: the verdict is not recomputed

        run_job(predict_tiles(session, view))
        assert next(job).done == 6 and len(verdicts) == 2
        job.close()
        session.close()
