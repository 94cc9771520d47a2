"""``omicslens bench gpu``: the whole GPU benchmark as one run, for a lent GPU machine.

Issue 15, item 4. A GPU machine is lent for minutes, so everything it must measure runs
from one command with a time budget (default 7 minutes; the device tool allows 8):

1. the 100k x 100k OME-TIFF is written if missing (about 15 s);
2. throughput of the whole pipeline against the model-only forward pass, interleaved,
   for ViT-B/16 and the ViT-g/14-sized model, bf16, the predictor's CUDA batch (64),
   over a reader-thread sweep, with JPEG tiles decoded by tifffile on the CPU and by the
   GPU decoder (``--decode cpu auto``; ``auto`` uses the GPU decoder where it agrees with
   tifffile, and the row says which decoder each level got and how far it was off);
3. GPU utilisation and memory, sampled by ``nvidia-smi`` every 500 ms meanwhile.

The report gives tiles/s, the pipeline / model-only ratio (target >= 0.9) and the mean
and peak GPU utilisation per run. Without CUDA nothing is measured: the report says "not
measured" with the reason, and the command still succeeds, so the CPU fallback of the
script itself is tested (``tests/bench/test_gpu_run.py``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omicslens.bench.report import publish
from omicslens.core.stream_decode import CPU_DECODER

SAMPLE_MS = 500
DEFAULT_BUDGET_S = 420.0
#: reader threads: with decoding on the CPU the GPU needs many readers to be fed. One
#: count by default: each configuration re-opens the slide and reloads the model (the
#: ViT-g one is 4.5 GB), and two models x two decoders must fit the 8 minutes a lent
#: machine gives one command; ``--readers 4 8 14`` sweeps when there is more time
DEFAULT_READERS = (12,)
#: where JPEG tiles are decoded, swept (see models/gpu_jpeg.py)
DEFAULT_DECODES = ("cpu", "auto")


@dataclass
class GpuSamples:
    """Utilisation (%) and memory (MiB) of the first GPU, as nvidia-smi reports them."""

    utilisation: list[float] = field(default_factory=list)
    memory_mib: list[float] = field(default_factory=list)

    @property
    def mean_utilisation(self) -> float | None:
        return sum(self.utilisation) / len(self.utilisation) if self.utilisation else None

    @property
    def peak_memory_mib(self) -> float | None:
        return max(self.memory_mib) if self.memory_mib else None


def parse_smi_line(line: str) -> tuple[float, float] | None:
    """``"87, 10240"`` (utilization.gpu, memory.used; csv, noheader, nounits) -> numbers."""
    parts = [part.strip() for part in line.split(",")]
    if len(parts) < 2:
        return None
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:  # "[N/A]" on some virtualised GPUs
        return None


class GpuMonitor:
    """Samples nvidia-smi in the background while a block runs (None where absent)."""

    def __init__(self, every_ms: int = SAMPLE_MS) -> None:
        self.every_ms = every_ms
        self.samples = GpuSamples()
        self._process: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuMonitor:
        smi = shutil.which("nvidia-smi")
        if smi is None:
            return self
        self._process = subprocess.Popen(
            [
                smi,
                "--query-gpu=utilization.gpu,memory.used",
                "--format=csv,noheader,nounits",
                f"-lms={self.every_ms}",
                "--id=0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            parsed = parse_smi_line(line)
            if parsed is not None:
                self.samples.utilisation.append(parsed[0])
                self.samples.memory_mib.append(parsed[1])

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(5)
        if self._thread is not None:
            self._thread.join(5)


def cuda_status() -> tuple[bool, str]:
    """(CUDA usable, why not / which GPU)."""
    import torch

    if not torch.cuda.is_available():
        return False, f"no CUDA device (torch {torch.__version__})"
    return True, torch.cuda.get_device_name(0)


def run_gpu_benchmark(
    data_dir: Path,
    readers: Sequence[int] = DEFAULT_READERS,
    budget_s: float = DEFAULT_BUDGET_S,
    models: Sequence[str] | None = None,
    slide: Path | None = None,
    decodes: Sequence[str] = DEFAULT_DECODES,
    log: Any = print,
) -> dict[str, Any]:
    """Everything item 4 asks for, within ``budget_s`` (rounds are sized to fit)."""
    from omicslens.bench.inference import GPU_MODELS, run_inference_benchmark

    usable, device_name = cuda_status()
    if not usable:
        return {"gpu": "not measured", "reason": device_name}
    wanted = list(models or GPU_MODELS)
    configs = len(wanted) * len(readers) * len(decodes)
    # four contestants per round (pipeline, model only, decode only, predict), about
    # 1.5 s of set-up each; bundles are written once (the ViT-g one is 4.5 GB, ~60 s):
    # a third of the budget is kept spare
    round_seconds = 2.5
    rounds = max(2, int(0.66 * (budget_s - 90) / (configs * 4 * (round_seconds + 1.5))))
    started = time.monotonic()
    with GpuMonitor() as monitor:
        result = run_inference_benchmark(
            data_dir,
            parts=("throughput",),
            models=wanted,
            device="cuda",
            precision="bf16",
            readers=readers,
            decodes=decodes,
            rounds=rounds,
            round_seconds=round_seconds,
            slide=slide,
            log=log,
        )
    samples = monitor.samples
    return {
        "gpu": device_name,
        "seconds": time.monotonic() - started,
        "rounds": rounds,
        "throughput": result.get("throughput", []),
        "gpu_utilisation_mean": samples.mean_utilisation,
        "gpu_memory_peak_mib": samples.peak_memory_mib,
        "gpu_samples": asdict(samples),
        "machine": result.get("machine"),
    }


def to_markdown(report: dict[str, Any]) -> str:
    if report.get("gpu") == "not measured":
        return f"GPU benchmark: **not measured** ({report['reason']})."
    lines = [
        f"GPU benchmark on {report['gpu']}: {report['seconds']:.0f} s, "
        f"{report['rounds']} interleaved rounds per configuration; mean GPU utilisation "
        f"{report['gpu_utilisation_mean'] or float('nan'):.0f} %, peak memory "
        f"{report['gpu_memory_peak_mib'] or float('nan'):.0f} MiB",
        "",
        "| model | readers | JPEG decoder | pipeline tiles/s | model-only tiles/s | ratio "
        "| >= 0.9 |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for row in report["throughput"]:
        plan = row.get("decode_plan") or {}
        switched = [level for level in plan.get("levels", []) if level["decoder"] != CPU_DECODER]
        decoder = plan.get("decoder", CPU_DECODER) if switched else CPU_DECODER
        lines.append(
            f"| {row['model']} | {row['readers']} | {row.get('decode', 'auto')}: {decoder} | "
            f"{row.get('pipeline_tiles_s', 0):.0f} | "
            f"{row.get('model_tiles_s', 0):.0f} | {row.get('ratio', 0):.2f} | "
            f"{'yes' if row.get('meets_target') else 'no'} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omicslens bench gpu", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--data-dir", type=Path, default=Path("bench-data"))
    parser.add_argument("--slide", type=Path, help="default: the generated 100k OME-TIFF")
    parser.add_argument("--readers", type=int, nargs="+", default=list(DEFAULT_READERS))
    parser.add_argument("--models", nargs="+", help="default: ViT-B/16 and the ViT-g/14 size")
    parser.add_argument(
        "--decode",
        nargs="+",
        choices=("auto", "cpu", "gpu"),
        default=list(DEFAULT_DECODES),
        help="where JPEG tiles are decoded, swept (default: cpu auto)",
    )
    parser.add_argument("--budget-seconds", type=float, default=DEFAULT_BUDGET_S)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    report = run_gpu_benchmark(
        args.data_dir,
        readers=args.readers,
        budget_s=args.budget_seconds,
        models=args.models,
        slide=args.slide,
        decodes=args.decode,
        log=lambda message: print(message, file=sys.stderr, flush=True),
    )
    publish(to_markdown(report), report, args.json, args.markdown)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
