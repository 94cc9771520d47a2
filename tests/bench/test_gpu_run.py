"""The one-run GPU benchmark: its CPU fallback, its rounds and its nvidia-smi parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from omicslens.bench import gpu_run
from omicslens.bench.gpu_run import GpuSamples, main, parse_smi_line, to_markdown


def test_nvidia_smi_lines_are_parsed_and_na_is_skipped() -> None:
    assert parse_smi_line("87, 10240\n") == (87.0, 10240.0)
    assert parse_smi_line("[N/A], [N/A]") is None
    assert parse_smi_line("") is None
    samples = GpuSamples([50.0, 100.0], [1000.0, 3000.0])
    assert samples.mean_utilisation == 75.0 and samples.peak_memory_mib == 3000.0
    assert GpuSamples().mean_utilisation is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU fallback needs no CUDA")
def test_without_cuda_nothing_is_measured_and_the_report_says_so(tmp_path: Path, capsys) -> None:
    report = tmp_path / "gpu.json"
    assert main(["--data-dir", str(tmp_path), "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["gpu"] == "not measured" and "no CUDA" in data["reason"]
    assert "**not measured**" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.tif"))  # no slide or bundle written for nothing


def test_rounds_fit_the_budget_and_rows_are_reported(monkeypatch, tmp_path: Path) -> None:
    seen: dict = {}

    def fake_benchmark(data_dir, **kwargs):
        seen.update(kwargs)
        row = {
            "model": "vit-b16",
            "readers": 8,
            "decode": "auto",
            "decode_plan": {
                "decoder": "nvImageCodec",
                "levels": [{"level": 0, "decoder": "nvImageCodec", "reason": "agrees"}],
            },
            "pipeline_tiles_s": 900.0,
            "model_tiles_s": 1000.0,
            "ratio": 0.9,
            "meets_target": True,
        }
        return {"throughput": [row], "machine": {}}

    monkeypatch.setattr(gpu_run, "cuda_status", lambda: (True, "Test GPU"))
    monkeypatch.setattr("omicslens.bench.inference.run_inference_benchmark", fake_benchmark)
    report = gpu_run.run_gpu_benchmark(tmp_path, budget_s=420)
    configs = 2 * 1 * 2  # models x readers x decoders
    assert seen["device"] == "cuda" and seen["precision"] == "bf16"
    assert seen["decodes"] == ("cpu", "auto") and seen["readers"] == (12,)
    assert seen["rounds"] * configs * 4 * (seen["round_seconds"] + 1.5) <= 420
    text = to_markdown(report)
    assert "| vit-b16 | 8 | auto: nvImageCodec | 900 | 1000 | 0.90 | yes |" in text
