"""The inference benchmark runs end to end on a tiny slide and reports sane numbers.

Only structure is checked (positive throughputs, the ratio is the quotient of the two
it compares, rounds and tiles add up), never timings: CI machines are shared and slow.
The slide is written from real H&E (CMU-1) by the same generator as the 100k benchmark
slide, at 2048 x 2048 px.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omicslens.bench import inference as bench_inference
from omicslens.bench import synthetic
from omicslens.bench.inference import MODELS, ModelSpec


@pytest.fixture(scope="module")
def tiny_slide(tmp_path_factory: pytest.TempPathFactory, he_pixels: np.ndarray) -> Path:
    folder = tmp_path_factory.mktemp("inference-bench")
    written = synthetic.write_periodic_pyramid(
        folder / "tiny.ome.tif", he_pixels, size=(2048, 2048), mpp=0.5, tile=256
    )
    return written.path


def _check_row(row: dict, batch_size: int, rounds: int) -> None:
    for key in ("pipeline_tiles_s", "model_tiles_s", "decode_tiles_s", "predict_tiles_s"):
        assert row[key] > 0, key
    assert row["ratio"] == pytest.approx(row["pipeline_tiles_s"] / row["model_tiles_s"])
    assert row["predict_ratio"] == pytest.approx(row["predict_tiles_s"] / row["model_tiles_s"])
    assert row["meets_target"] == (row["ratio"] >= bench_inference.RATIO_TARGET)
    assert row["batch_size"] == batch_size
    assert row["tiles_per_round"] % batch_size == 0 and row["tiles_per_round"] > 0
    assert len(row["per_round"]) == rounds == row["rounds"]
    assert row["ratio_min_round"] <= row["ratio_max_round"]
    for rates in row["per_round"]:
        assert rates["ratio"] == pytest.approx(rates["pipeline"] / rates["model"])
    assert set(row["cpu_ms_per_tile"]) == {"pipeline", "model", "decode", "predict"}
    assert all(value > 0 for value in row["cpu_ms_per_tile"].values())
    cpu = row["cpu_ms_per_tile"]
    assert row["cpu_ratio"] == pytest.approx(cpu["model"] / cpu["pipeline"])
    assert row["ratio_min_round"] <= row["ratio_median_round"] <= row["ratio_max_round"]
    assert row["first_batch_ms"] > 0
    assert row["other_processes_cores"] >= 0
    assert row["parameters"] > 0


def test_throughput_on_a_tiny_config(tiny_slide: Path, tmp_path: Path) -> None:
    spec = ModelSpec("cnn", "omicslens-tinycnn", "tiny", patch_size=64, spacing=0.5)
    bundle = bench_inference.ensure_bundle(tmp_path / "bundles", spec, log=lambda m: None)
    assert json.loads((bundle / "config.json").read_text())["name"].startswith("bench-random")
    # a second call reuses the bundle rather than rewriting it
    stamp = (bundle / "model.safetensors").stat().st_mtime_ns
    assert bench_inference.ensure_bundle(tmp_path / "bundles", spec, log=lambda m: None) == bundle
    assert (bundle / "model.safetensors").stat().st_mtime_ns == stamp

    row = bench_inference.bench_throughput(
        tiny_slide,
        spec,
        bundle,
        device="cpu",
        batch_size=8,
        readers=1,
        torch_threads=1,
        rounds=2,
        round_seconds=0.01,
    )
    _check_row(row, batch_size=8, rounds=2)
    assert row["torch_threads"] == 1 and row["readers"] == 1
    assert row["device"] == "cpu" and row["precision"] == "fp32"
    markdown = bench_inference.to_markdown({"throughput": [row], "skipped": []})
    assert "| cnn" in markdown and f"{row['ratio']:.3f}" in markdown


def test_quick_cli_run_writes_json_and_markdown(
    tiny_slide: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """``--quick`` on the small CNN; without a display the GUI parts are skipped."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    code = bench_inference.main(
        [
            "--quick",
            "--slide",
            str(tiny_slide),
            "--data-dir",
            str(tmp_path / "data"),
            "--models",
            "cnn",
            "--parts",
            "throughput",
            "gui",
            "--save-json",
            str(out_json),
            "--markdown",
            str(out_md),
        ]
    )
    assert code == 0
    result = json.loads(out_json.read_text())
    (row,) = result["throughput"]
    _check_row(row, batch_size=16, rounds=1)
    assert row["patch_size"] == MODELS["cnn"].patch_size
    assert any("no display" in note for note in result["skipped"])
    assert "latency" not in result
    assert result["machine"]["torch"] and result["machine"]["cpus"]
    assert out_md.read_text() in capsys.readouterr().out


def test_cuda_configs_are_skipped_without_a_gpu(tiny_slide: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present: the GPU path runs instead")
    result = bench_inference.run_inference_benchmark(
        tmp_path, parts=["throughput"], device="cuda", slide=tiny_slide
    )
    assert result["throughput"] == []
    assert result["config"]["models"] == list(bench_inference.GPU_MODELS)
    assert any("CUDA is not available" in note for note in result["skipped"])
    assert not (tmp_path / "bundles").exists()  # no multi-GB ViT-g bundle written for nothing
    assert "Skipped" in bench_inference.to_markdown(result)
