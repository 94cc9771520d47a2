"""Region summaries and exports of the app layer: what the CLI and the dock both write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from omicslens.app.progress import run_job
from omicslens.app.regions import (
    compare_regions,
    region_measurements,
    summarise_regions,
    write_region_outputs,
)
from omicslens.app.tiles import load_predictor, predict_tiles, wanted_tiles
from omicslens.core import open_slide
from omicslens.core.regions import Region, read_regions
from omicslens.models.session import InferenceSession

TRICKY = 'tumour "core", left\nedge'


@pytest.fixture
def predicted(he_slide: Path, level0_bundle: Path):
    with open_slide(he_slide) as slide:
        session = InferenceSession.open(
            slide, level0_bundle, cache=False, predictor=load_predictor(level0_bundle)
        )
        run_job(predict_tiles(session, wanted_tiles(session)))
        yield session


def test_summaries_exports_keep_names_and_input_measurements(predicted, tmp_path: Path) -> None:
    square = np.array([[100, 100], [700, 100], [700, 600], [100, 600]], float)
    region = Region(TRICKY, square, measurements={"Num Detections": 12.0})
    other = Region("stroma", square + 400)
    report = summarise_regions(predicted, [region, other])
    stats = report.regions[0]
    grid, store = predicted.grid, predicted.store
    centres = grid.centres(np.arange(grid.size))
    inside = np.flatnonzero(
        (centres[:, 0] > 100)
        & (centres[:, 0] < 700)
        & (centres[:, 1] > 100)
        & (centres[:, 1] < 600)
    )
    inside = inside[predicted.tissue_tiles.ravel()[inside]]
    np.testing.assert_array_equal(np.sort(stats.tiles), inside)
    np.testing.assert_allclose(stats.summary.mean, store.get(inside).mean(0), rtol=1e-5)

    written = write_region_outputs(report, tmp_path)
    table = pd.read_csv(written[0])
    assert table["region"].tolist() == [TRICKY, "stroma"]  # quotes, comma, newline survive
    assert table.loc[0, "input_Num Detections"] == 12
    assert table.loc[0, "mean_ERBB2"] == pytest.approx(float(stats.summary.mean[0]), rel=1e-5)
    back = read_regions(written[1])
    assert back[0].name == TRICKY
    assert back[0].measurements["Num Detections"] == 12  # the input's own, kept
    expected = region_measurements(stats, report.output_names)
    for key, value in expected.items():
        assert back[0].measurements[key] == pytest.approx(value, rel=1e-6, nan_ok=True)
    assert region.measurements == {"Num Detections": 12.0}  # the input object is untouched
    with pytest.raises(FileExistsError):
        write_region_outputs(report, tmp_path)

    versus_rest = compare_regions(predicted, region, None)
    assert versus_rest.n_a == len(inside)
    assert versus_rest.n_b == int(predicted.tissue_tiles.sum()) - len(inside)
