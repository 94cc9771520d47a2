"""WSInfer's own CSV -> GeoJSON conversion consumes our classification CSV unchanged.

The consumer is WSInfer 0.6.1 itself (``wsinfer.write_geojson.make_geojson``), run in the
peer environment that ``../shared/peer/setup.sh`` builds (its own venv: WSInfer needs zarr
2 and a patched torchvision, which cannot live beside our dependencies). Point
``OMICSLENS_WSINFER_PYTHON`` at another interpreter with wsinfer installed; without one
the test is skipped and says why.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from omicslens.cli.main import main
from tests.conftest import CMU1
from tests.helpers.bundles import make_bundle

PEER_HOME = Path(os.environ.get("PEER_HOME", Path.home() / ".cache" / "omicslens-peer"))
PEER_PYTHON = Path(os.environ.get("OMICSLENS_WSINFER_PYTHON", PEER_HOME / "venv/bin/python"))

CONVERT = """
import sys
from pathlib import Path
from wsinfer.write_geojson import make_geojson
results = Path(sys.argv[2])
(results / "model-outputs-geojson").mkdir(parents=True, exist_ok=True)
make_geojson(Path(sys.argv[1]), results)
"""


@pytest.mark.skipif(not PEER_PYTHON.exists(), reason=f"no WSInfer interpreter at {PEER_PYTHON}")
def test_wsinfer_converts_our_classification_csv(tmp_path: Path) -> None:
    bundle = make_bundle(
        tmp_path / "b", task="classification", outputs=("notumor", "tumor"), spacing=2.0
    )
    out = tmp_path / "out"
    assert (
        main(["predict", str(CMU1), "--model", str(bundle), "--out", str(out), "--format", "csv"])
        == 0
    )
    ours = out / CMU1.name / "tiles.csv"
    env = {**os.environ, "HOME": str(PEER_HOME / "home"), "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [str(PEER_PYTHON), "-c", CONVERT, str(ours), str(tmp_path / "ws")],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    converted = json.loads((tmp_path / "ws/model-outputs-geojson/tiles.geojson").read_text())
    table = pd.read_csv(ours)
    assert list(table.columns) == ["minx", "miny", "width", "height", "prob_notumor", "prob_tumor"]
    features = converted["features"]
    assert len(features) == len(table)
    for feature, (_, row) in zip(features, table.iterrows(), strict=True):
        ring = np.asarray(feature["geometry"]["coordinates"][0])
        assert ring[:, 0].min() == row.minx and ring[:, 0].max() == row.minx + row.width
        assert ring[:, 1].min() == row.miny and ring[:, 1].max() == row.miny + row.height
        measured = feature["properties"]["measurements"]
        assert measured == pytest.approx(
            {"prob_notumor": row.prob_notumor, "prob_tumor": row.prob_tumor}
        )
