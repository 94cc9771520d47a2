"""Inference benchmark: does the pipeline keep the model busy, and does the GUI stay live?

Four questions (issue #3), each answered on a slide generated from real H&E (see
``omicslens.bench.synthetic``) with bundles of random weights (speed only):

1. **Throughput.** The whole pipeline (read + JPEG decode + preprocess + model, through
   ``InferenceSession`` and ``TileScheduler.request_all``, prediction cache off) against
   the model alone (``Predictor.predict_tensor`` on tensors already on the device), same
   model, device, batch size and thread settings, rounds interleaved so machine noise
   hits both. For information two more contestants share each round: decode only
   (``read_patch`` on the scheduler's number of reader threads) and ``Predictor.predict``
   on patches already in memory (preprocessing and copy-back, no I/O). Target: pipeline
   at least 0.9x model-only.
2. **GUI latency** (``--parts gui``, needs a display, e.g. ``xvfb-run``): a real napari
   viewer with ``LiveInference``; camera move to first tile and to all visible tiles, and
   the longest stall of the Qt event loop during a whole-slide job (target < 50 ms).
3. **Memory** (``--parts memory``, needs a display): RSS during scripted panning and
   zooming over the 100k x 100k slide with the overlay following the view.
4. **GPU**: ``--device cuda`` runs part 1 with ViT-B/16 and a ViT-g/14-sized model in
   bf16; without CUDA those configurations are skipped and the report says so.

The code is split by part: :mod:`omicslens.bench.inference_models` (the networks, the
targets, the random-weight bundles), :mod:`omicslens.bench.inference_throughput` (part 1),
:mod:`omicslens.bench.gui_latency` (parts 2 and 3), :mod:`omicslens.bench.inference_machine`
(machine facts, display check) and :mod:`omicslens.bench.inference_report` (targets met,
Markdown tables). This module runs the chosen parts and is the command line; it re-exports
the public names of those modules, so ``omicslens.bench.inference`` stays the one import.

Run as ``omicslens bench inference`` or ``python -m omicslens.bench.inference``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from omicslens.bench import io as bench_io
from omicslens.bench.inference_machine import has_display, machine_info
from omicslens.bench.inference_models import (
    BUNDLE_VERSION,
    CPU_MODELS,
    GPU_MODELS,
    MEAN,
    MODELS,
    NUM_OUTPUTS,
    RATIO_TARGET,
    STALL_TARGET_MS,
    STD,
    Log,
    ModelSpec,
    bundle_config,
    ensure_bundle,
)
from omicslens.bench.inference_report import _targets, to_markdown
from omicslens.bench.inference_throughput import bench_throughput
from omicslens.core.atomic import write_text_atomic

__all__ = [
    "BUNDLE_VERSION",
    "CPU_MODELS",
    "GPU_MODELS",
    "MEAN",
    "MODELS",
    "NUM_OUTPUTS",
    "RATIO_TARGET",
    "STALL_TARGET_MS",
    "STD",
    "Log",
    "ModelSpec",
    "bench_throughput",
    "build_parser",
    "bundle_config",
    "ensure_bench_slide",
    "ensure_bundle",
    "has_display",
    "machine_info",
    "main",
    "run_inference_benchmark",
    "to_markdown",
]


def ensure_bench_slide(data_dir: Path, size: int, source: Path, log: Log) -> dict[str, Any]:
    """The periodic OME-TIFF of the I/O benchmark (reused when present and current)."""
    return bench_io.ensure_slide(data_dir, "ome", size, source, log)


def run_inference_benchmark(
    data_dir: str | os.PathLike[str] = "bench-data",
    *,
    parts: Sequence[str] = ("throughput", "gui", "memory"),
    models: Sequence[str] | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    precision: str = "auto",
    readers: Sequence[int] = (2,),
    torch_threads: Sequence[int | None] = (None,),
    decodes: Sequence[str] = ("auto",),
    rounds: int = 8,
    round_seconds: float = 4.0,
    size: int = 100_000,
    source: str | os.PathLike[str] = bench_io.DEFAULT_SOURCE,
    slide: str | os.PathLike[str] | None = None,
    gui_moves: int = 10,
    stall_seconds: float = 20.0,
    memory_seconds: float = 120.0,
    napari_cache: Sequence[str] = ("off", "default"),
    seed: int = 0,
    quick: bool = False,
    log: Log | None = None,
) -> dict[str, Any]:
    """Run the chosen ``parts``; returns every number as a JSON-friendly dict.

    ``slide`` overrides the generated ``size`` x ``size`` slide. ``readers``,
    ``torch_threads`` and ``decodes`` (auto, cpu, gpu: where JPEG tiles are decoded) are
    swept: every combination is one throughput configuration.
    """
    log = log or (lambda message: None)
    data_dir = Path(data_dir)
    bundles_dir = data_dir / "bundles"
    wanted_models = list(models or (GPU_MODELS if device.startswith("cuda") else CPU_MODELS))
    result: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
            "parts": list(parts),
            "models": wanted_models,
            "device": device,
            "batch_size": batch_size,
            "precision": precision,
            "readers": list(readers),
            "torch_threads": list(torch_threads),
            "decodes": list(decodes),
            "rounds": rounds,
            "round_seconds": round_seconds,
            "quick": quick,
            "seed": seed,
            "gui_moves": gui_moves,
            "stall_seconds": stall_seconds,
            "memory_seconds": memory_seconds,
            "napari_cache": list(napari_cache),
        },
        "skipped": [],
    }
    if slide is None:
        facts = ensure_bench_slide(data_dir, size, Path(source), log)
        slide_path = Path(facts["path"])
    else:
        slide_path = Path(slide)
    result["config"]["slide"] = str(slide_path)

    if "throughput" in parts:
        result["throughput"] = []
        cuda_wanted = device.startswith("cuda")
        if cuda_wanted and not torch.cuda.is_available():
            result["skipped"].append(f"throughput on {device}: CUDA is not available here")
            log(f"skipping throughput on {device}: CUDA is not available")
        else:
            for name in wanted_models:
                spec = MODELS[name]
                bundle = ensure_bundle(bundles_dir, spec, log)
                for threads, reader_count, decode in itertools.product(
                    torch_threads, readers, decodes
                ):
                    log(
                        f"throughput: {name} on {device}, torch threads "
                        f"{threads or torch.get_num_threads()}, {reader_count} readers, "
                        f"decode {decode}"
                    )
                    row = bench_throughput(
                        slide_path,
                        spec,
                        bundle,
                        device=device,
                        batch_size=batch_size,
                        precision=precision,
                        readers=reader_count,
                        torch_threads=threads,
                        rounds=rounds,
                        round_seconds=round_seconds,
                        decode=decode,
                        log=log,
                    )
                    result["throughput"].append(row)
                    log(
                        f"  => pipeline {row['pipeline_tiles_s']:.1f} / model "
                        f"{row['model_tiles_s']:.1f} tiles/s = {row['ratio']:.3f} "
                        f"({row['wall_s']:.0f} s; JPEG: {row['decode_plan']['decoder']})"
                    )

    gui_parts = [part for part in ("gui", "memory") if part in parts]
    if gui_parts and not has_display():
        result["skipped"].append(f"{', '.join(gui_parts)}: no display (run under xvfb-run)")
        log(f"skipping {', '.join(gui_parts)}: no display; run under xvfb-run")
    elif gui_parts:
        from omicslens.bench import gui_latency

        bundle = ensure_bundle(bundles_dir, MODELS["cnn"], log)
        result.update(
            gui_latency.run_gui_parts(
                slide_path,
                bundle,
                parts=gui_parts,
                moves=gui_moves,
                stall_seconds=stall_seconds,
                memory_seconds=memory_seconds,
                memory_variants=napari_cache,
                seed=seed,
                log=log,
            )
        )
    result["targets"] = _targets(result)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omicslens bench inference",
        description="Pipeline vs model-only throughput, GUI latency and memory of inference.",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path("bench-data"), help="where slides and bundles live"
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("throughput", "gui", "memory"),
        default=["throughput", "gui", "memory"],
        help="gui and memory need a display (xvfb-run)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=sorted(MODELS),
        help=f"default: {' '.join(CPU_MODELS)} on CPU, {' '.join(GPU_MODELS)} on CUDA",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--batch-size", type=int, help="default: the predictor's per device")
    parser.add_argument(
        "--precision",
        default=None,
        choices=("auto", "fp32", "bf16", "fp16"),
        help="default: fp32 on CPU, bf16 on CUDA",
    )
    parser.add_argument(
        "--readers", type=int, nargs="+", default=[2], help="reader threads (several: a sweep)"
    )
    parser.add_argument(
        "--decode",
        nargs="+",
        choices=("auto", "cpu", "gpu"),
        default=["auto"],
        help="where JPEG tiles are decoded (several: a sweep); auto: on the GPU where its "
        "decoder agrees with tifffile, cpu: tifffile",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        nargs="+",
        default=[0],
        help="torch intra-op threads, 0 = torch's default (several: a sweep)",
    )
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds per config")
    parser.add_argument(
        "--round-seconds",
        type=float,
        default=4.0,
        help="seconds the slowest contestant takes per round (sizes the rounds)",
    )
    parser.add_argument("--size", type=int, default=100_000, help="generated slide side (px)")
    parser.add_argument("--slide", type=Path, help="use this slide instead of generating one")
    parser.add_argument(
        "--source", type=Path, default=bench_io.DEFAULT_SOURCE, help="real H&E to build from"
    )
    parser.add_argument("--moves", type=int, default=10, help="camera moves for GUI latency")
    parser.add_argument("--stall-seconds", type=float, default=20.0)
    parser.add_argument("--memory-seconds", type=float, default=120.0)
    parser.add_argument(
        "--napari-cache",
        nargs="+",
        choices=("off", "default"),
        default=["off", "default"],
        help="memory runs with napari's dask cache off and/or as napari sets it",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny rounds, short GUI")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.add_argument("--markdown", type=Path, help="also write the result tables to this file")
    parser.add_argument("--save-json", type=Path, help="also write the full result as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns 0 even when a target is missed (the report says so)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    if args.slide is None and not args.source.exists():
        print(f"source image not found: {args.source} (pass --source or --slide)", file=sys.stderr)
        return 1
    cuda = args.device.startswith("cuda")
    precision = args.precision or ("bf16" if cuda else "auto")
    rounds, round_seconds = args.rounds, args.round_seconds
    moves, stall, memory = args.moves, args.stall_seconds, args.memory_seconds
    if args.quick:
        rounds, round_seconds = 1, 0.05
        moves, stall, memory = min(moves, 2), min(stall, 2.0), min(memory, 6.0)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = run_inference_benchmark(
        args.data_dir,
        parts=args.parts,
        models=args.models,
        device=args.device,
        batch_size=args.batch_size,
        precision=precision,
        readers=args.readers,
        torch_threads=[t or None for t in args.torch_threads],
        decodes=args.decode,
        rounds=rounds,
        round_seconds=round_seconds,
        size=args.size,
        source=args.source,
        slide=args.slide,
        gui_moves=moves,
        stall_seconds=stall,
        memory_seconds=memory,
        napari_cache=args.napari_cache,
        seed=args.seed,
        quick=args.quick,
        log=log,
    )
    markdown = to_markdown(result)
    if args.markdown:
        write_text_atomic(args.markdown, markdown)
    if args.save_json:
        write_text_atomic(args.save_json, json.dumps(result, indent=2))
    print(json.dumps(result, indent=2) if args.json else markdown)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
