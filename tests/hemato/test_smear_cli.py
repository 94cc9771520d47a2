"""``omicslens smear`` and ``omicslens hemato-benchmark`` end to end on a real BCCD field."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from omicslens.cli.smear_commands import add_smear_commands
from omicslens.hemato.aggregators import build_aggregator
from omicslens.hemato.typing import TypingModel
from tests.hemato.conftest import BCCD, TYPING_BUNDLE

FIELD = BCCD / "JPEGImages" / "BloodImage_00193.jpg"  # two white cells


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="omicslens")
    add_smear_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


@pytest.fixture(scope="module")
def smear_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("smear") / "out"
    torch.set_num_threads(1)
    assert run(["smear", str(FIELD), "--out", str(out), "--device", "cpu"]) == 0
    return out


def test_writes_all_outputs(smear_out: Path) -> None:
    names = sorted(p.name for p in smear_out.iterdir())
    assert names == ["cells.csv", "cells.geojson", "features.h5", "smear.json"]
    assert not list(smear_out.glob(".*.tmp"))


def test_cells_csv(smear_out: Path) -> None:
    with (smear_out / "cells.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    classes = TypingModel(TYPING_BUNDLE, device="cpu").class_names
    expected = [
        "id",
        "centre_x",
        "centre_y",
        "box_x0",
        "box_y0",
        "box_x1",
        "box_y1",
        "area_um2",
        "nucleus_area_um2",
        "class",
        "model_class",
        "corrected",
        "confidence",
        *(f"prob_{name}" for name in classes),
        "flag",
        "ood_score",
    ]
    assert list(rows[0]) == expected
    for row in rows:
        probabilities = [float(row[f"prob_{name}"]) for name in classes]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
        assert row["class"] in (*classes, "Unknown", "Review")
        assert (row["class"] == "Review") == (row["flag"] == "review")
        assert float(row["ood_score"]) >= 0
        assert float(row["box_x0"]) <= float(row["centre_x"]) <= float(row["box_x1"])
        assert 20.0 < float(row["area_um2"]) < 400.0
    assert [row["id"] for row in rows] == ["1", "2"]


def test_geojson_is_a_qupath_cell_collection(smear_out: Path) -> None:
    collection = json.loads((smear_out / "cells.geojson").read_text())
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert len(features) == 2
    ids = set()
    for feature in features:
        assert feature["type"] == "Feature"
        ids.add(str(uuid.UUID(feature["id"])))
        for key in ("geometry", "nucleusGeometry"):
            geometry = feature[key]
            assert geometry["type"] == "Polygon"
            ring = geometry["coordinates"][0]
            assert len(ring) >= 4 and ring[0] == ring[-1]
            assert all(0 <= x <= 640 and 0 <= y <= 480 for x, y in ring)
        properties = feature["properties"]
        assert properties["objectType"] == "cell"
        classification = properties["classification"]
        assert isinstance(classification["name"], str)
        assert len(classification["color"]) == 3
        measurements = properties["measurements"]
        assert all(isinstance(v, float) for v in measurements.values())
        assert measurements["Cell: Area µm^2"] > measurements["Nucleus: Area µm^2"] > 0
        assert measurements["Out-of-distribution score"] >= 0  # the bundled cell reference
    assert len(ids) == 2


def test_features_h5(smear_out: Path) -> None:
    dim = TypingModel(TYPING_BUNDLE, device="cpu").feature_dim
    with h5py.File(smear_out / "features.h5", "r") as handle:
        features = handle["features"][...]
        ids = handle["cell_ids"][...]
        assert handle.attrs["mpp_source"] == "estimated from median red-cell diameter (7.5 um)"
    assert features.shape == (2, dim) and features.dtype == np.float32
    assert ids.tolist() == [1, 2]
    assert np.isfinite(features).all()


def test_resolution_estimate_is_stated(smear_out: Path) -> None:
    summary = json.loads((smear_out / "smear.json").read_text())
    assert summary["mpp_source"] == "estimated from median red-cell diameter (7.5 um)"
    assert 0.06 < summary["mpp"] < 0.09
    assert summary["white_cells"] == 2
    assert summary["mpp_estimate"]["red_cell_diameter_um"] == 7.5


def test_overwrite_is_refused_then_forced(
    smear_out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "again"
    shutil.copytree(smear_out, out)
    before = (out / "cells.csv").read_bytes()
    (out / "cells.csv").write_text("sentinel")
    assert run(["smear", str(FIELD), "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (out / "cells.csv").read_text() == "sentinel"
    assert run(["smear", str(FIELD), "--out", str(out), "--mpp", "0.0733", "--force"]) == 0
    assert (out / "cells.csv").read_bytes() != b"sentinel"
    summary = json.loads((out / "smear.json").read_text())
    assert summary["mpp"] == 0.0733 and summary["mpp_source"] == "given (--mpp)"
    assert len((out / "cells.csv").read_bytes()) > 0 and before


def test_an_unfinished_export_is_finished_without_force(smear_out: Path, tmp_path: Path) -> None:
    """Killed between two outputs: the marker says they are ours, so the rerun replaces
    them (and the killed writer's temporary) without --force."""
    from omicslens.core.run_marker import RUNNING_FILE

    out = tmp_path / "killed"
    out.mkdir()
    shutil.copy(smear_out / "cells.csv", out / "cells.csv")
    (out / RUNNING_FILE).write_text("{}")
    (out / ".cells.geojson.k1ll3d.tmp").write_text("half a file")
    assert run(["smear", str(FIELD), "--out", str(out)]) == 0
    assert sorted(path.name for path in out.iterdir()) == sorted(
        path.name for path in smear_out.iterdir()
    )
    assert (out / "cells.csv").read_bytes() == (smear_out / "cells.csv").read_bytes()


def test_genetic_bundle_writes_patient_json(tmp_path: Path) -> None:
    """A RANDOM-weight aggregator (test fixture): checks the plumbing, not any prediction."""
    dim = TypingModel(TYPING_BUNDLE, device="cpu").feature_dim
    folder = tmp_path / "genetic"
    folder.mkdir()
    torch.manual_seed(0)
    model = build_aggregator("gated-attention", 5, dim, hidden_dim=16, attention_dim=8)
    save_file(dict(model.state_dict()), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(
        json.dumps(
            {
                "spec_version": "1.0",
                "task": "mil",
                "aggregator": "gated-attention",
                "name": "test-fixture-random-weights",
                "feature_dim": dim,
                "architecture_args": {"hidden_dim": 16, "attention_dim": 8},
            }
        )
    )
    out = tmp_path / "out"
    assert run(["smear", str(FIELD), "--out", str(out), "--genetic", str(folder)]) == 0
    patient = json.loads((out / "patient.json").read_text())
    assert sum(patient["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert list(patient["probabilities"]) == [
        "AML-CBFB-MYH11",
        "AML-NPM1",
        "AML-PML-RARA",
        "AML-RUNX1-RUNX1T1",
        "SCD",
    ]
    assert sum(patient["attention"]["weights"]) == pytest.approx(1.0, abs=1e-5)
    assert patient["attention"]["cell_ids"] == [1, 2]
    assert "Research use only" in patient["note"]
    with (out / "cells.csv").open(newline="") as handle:
        assert "attention" in next(csv.reader(handle))


def test_missing_image_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["smear", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "o")]) == 1
    assert "nope.jpg" in capsys.readouterr().err


def test_benchmark_on_the_copied_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["hemato-benchmark", "--bccd", str(BCCD), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    detection = report["detection"]
    assert detection["all"]["fields"] == 4
    assert detection["all"]["f1"] == 1.0
    assert set(detection["splits"]) == {"train", "val"}
    assert report["typing"]["samples"] == 13
    assert 0.0 <= report["typing"]["balanced_accuracy"] <= 1.0


def test_a_tiff_with_its_own_resolution(tmp_path: Path) -> None:
    """A tiled TIFF that states its pixel size: used as is, and said so."""
    import tifffile
    from PIL import Image

    with Image.open(FIELD) as image:
        pixels = np.asarray(image.convert("RGB"))
    path = tmp_path / "field.tif"
    per_cm = 1e4 / 0.0733
    tifffile.imwrite(
        path, pixels, tile=(256, 256), resolution=(per_cm, per_cm), resolutionunit="CENTIMETER"
    )
    out = tmp_path / "out"
    assert run(["smear", str(path), "--out", str(out)]) == 0
    summary = json.loads((out / "smear.json").read_text())
    assert summary["mpp"] == pytest.approx(0.0733, rel=1e-4)
    assert "estimated" not in summary["mpp_source"]
    assert summary["white_cells"] == 2


def test_lazy_package_names() -> None:
    import omicslens.hemato as hemato

    assert hemato.detect_in_field.__module__ == "omicslens.hemato.detect"
    with pytest.raises(AttributeError):
        _ = hemato.nothing_here


def test_a_smear_without_white_cells(tmp_path: Path) -> None:
    """Real red cells and glass only (a part of a BCCD field): empty but valid outputs."""
    from PIL import Image

    with Image.open(BCCD / "JPEGImages" / "BloodImage_00099.jpg") as image:
        pixels = np.asarray(image.convert("RGB"))
    part = tmp_path / "red-cells-only.png"
    Image.fromarray(pixels[:, 460:]).save(part)  # the white cell is at x 224..384
    out = tmp_path / "out"
    assert run(["smear", str(part), "--out", str(out), "--mpp", "0.072"]) == 0
    assert (out / "cells.csv").read_text().count("\n") == 1  # the header only
    assert json.loads((out / "cells.geojson").read_text())["features"] == []
    with h5py.File(out / "features.h5", "r") as handle:
        assert handle["features"].shape[0] == 0 and handle["cell_ids"].shape == (0,)


def test_a_16_bit_image_is_refused_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tifffile

    path = tmp_path / "sixteen.tif"
    tifffile.imwrite(path, np.full((64, 64, 3), 40000, np.uint16), photometric="rgb")
    assert run(["smear", str(path), "--out", str(tmp_path / "o"), "--mpp", "0.1"]) == 1
    assert "8-bit RGB" in capsys.readouterr().err
