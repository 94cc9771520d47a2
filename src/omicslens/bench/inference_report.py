"""The inference benchmark's verdict and tables: which targets a result meets, and Markdown.

Split out of :mod:`omicslens.bench.inference`: these functions only read the JSON-friendly
result dict of :func:`omicslens.bench.inference.run_inference_benchmark` (nothing here
measures), so the tables can be rendered again from a saved ``--save-json`` file.
"""

from __future__ import annotations

from typing import Any

from omicslens.bench.inference_models import STALL_TARGET_MS
from omicslens.core.stream_decode import CPU_DECODER


def _targets(result: dict[str, Any]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    rows = result.get("throughput") or []
    for row in rows:
        key = (
            f"ratio>=0.9 {row['model']} {row['device']} t{row['torch_threads']}r{row['readers']}"
            f" decode-{row.get('decode', 'auto')}"
        )
        targets[key] = row["meets_target"]
    stall = result.get("stall")
    if stall:
        targets["stall<50ms"] = stall["full"]["max_ms"] < STALL_TARGET_MS
        targets["stall<50ms without painting"] = stall["no_render"]["max_ms"] < STALL_TARGET_MS
    return targets


def _decoder_cell(row: dict[str, Any]) -> str:
    """``--decode`` asked and what the levels got: "auto: tifffile (CPU)", "auto: nvImageCodec
    (levels 0-2)"."""
    plan = row.get("decode_plan") or {}
    levels = [level["level"] for level in plan.get("levels", []) if level["decoder"] != CPU_DECODER]
    got = f"{plan.get('decoder', CPU_DECODER)} (levels {levels})" if levels else CPU_DECODER
    return f"{row.get('decode', 'auto')}: {got}"


def to_markdown(result: dict[str, Any]) -> str:
    """Result tables: throughput, GUI latency, event-loop stalls, memory; then skips."""
    lines: list[str] = []
    rows = result.get("throughput") or []
    if rows:
        lines += [
            "| model | device | batch | torch threads | readers | JPEG decoder | pipeline "
            "| model only | ratio | median round (min-max) | CPU-time ratio | >= 0.9 | decode only "
            "| predict (no I/O) | CPU ms/tile: pipeline, model, decode, predict | other load |",
            "|---|---|---:|---:|---:|---|---:|---:|---:|---|---:|---|---:|---:|---|---:|",
        ]
        for r in rows:
            cpu = r["cpu_ms_per_tile"]
            lines.append(
                f"| {r['model']} ({r['parameters'] / 1e6:.2g}M) | {r['device']} {r['precision']} "
                f"| {r['batch_size']} | {r['torch_threads']} | {r['readers']} "
                f"| {_decoder_cell(r)} | {r['pipeline_tiles_s']:.1f} | {r['model_tiles_s']:.1f} "
                f"| **{r['ratio']:.3f}** | {r['ratio_median_round']:.2f} "
                f"({r['ratio_min_round']:.2f}-{r['ratio_max_round']:.2f}) "
                f"| {r['cpu_ratio']:.3f} | {'yes' if r['meets_target'] else 'NO'} "
                f"| {r['decode_tiles_s']:.1f} | {r['predict_tiles_s']:.1f} "
                f"| {cpu['pipeline']:.2f}, {cpu['model']:.2f}, {cpu['decode']:.2f}, "
                f"{cpu['predict']:.2f} | {r['other_processes_cores']:.2f} |"
            )
        lines += [
            "",
            "Throughputs in tiles/s over all rounds; ratio = pipeline / model only; CPU-time "
            "ratio = model CPU ms/tile / pipeline CPU ms/tile; other load: cores used by "
            "other processes meanwhile.",
        ]
    latency = result.get("latency")
    if latency:
        lines += [
            "",
            "| camera move to | median | max | moves |",
            "|---|---:|---:|---:|",
            f"| first new tile in the overlay | {latency['first_median_ms']:.0f} ms "
            f"| {latency['first_max_ms']:.0f} ms | {latency['moves']} |",
            f"| all visible tiles in the overlay | {latency['all_median_ms']:.0f} ms "
            f"| {latency['all_max_ms']:.0f} ms | {latency['moves']} |",
            "",
            f"First tile, medians: camera to plan {latency['planned_median_ms']:.0f} ms "
            f"(debounce), plan to first batch back {latency['first_batch_median_ms']:.0f} ms, "
            f"batch to overlay {latency['drained_median_ms']:.0f} ms (drain timer).",
            "",
            f"Visible tissue tiles per move: median {latency['tiles_median']:.0f} "
            f"({latency['tiles_min']}-{latency['tiles_max']}).",
        ]
    setup = result.get("gui_setup")
    if setup:
        height, width = setup["canvas_size"]
        lines += [
            "",
            f"Canvas {width} x {height} px; OpenGL: {setup.get('gl_renderer') or 'unknown'}.",
        ]
    stall = result.get("stall")
    if stall:
        labels = {
            "full": "whole-slide job, overlay drawn (target)",
            "no_render": "same job, window painting off",
            "render_only": "no inference, overlay redrawn at 10 Hz",
        }
        lines += [
            "",
            "| event loop (5 ms timer) | max gap | p99 | median | gaps > 50 ms | frames drawn "
            "| tiles predicted | < 50 ms |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name, row in stall.items():
            lines.append(
                f"| {labels.get(name, name)}, {row['seconds']:.0f} s | {row['max_ms']:.1f} ms "
                f"| {row['p99_ms']:.1f} ms | {row['median_ms']:.1f} ms | {row['over_50ms']} "
                f"| {row['frames']} | {row['tiles']} ({row['tiles_per_s']:.0f}/s) "
                f"| {'yes' if row['max_ms'] < STALL_TARGET_MS else 'NO'} |"
            )
    for variant, memory in (result.get("memory") or {}).items():
        marks = memory["marks"]
        header = " | ".join(f"{mark['t']:.0f} s" for mark in marks)
        cache = f"napari dask cache {memory['napari_dask_cache_mib']:.0f} MiB"
        lines += [
            "",
            f"| RSS (MiB), {cache} | {header} | growth |",
            "|---|" + "---:|" * (len(marks) + 1),
            "| process | "
            + " | ".join(f"{mark['rss_mib']:.0f}" for mark in marks)
            + f" | {memory['growth_mib']:+.0f} |",
            "| napari dask cache content | "
            + " | ".join(f"{mark['dask_cache_mib']:.0f}" for mark in marks)
            + " | |",
            "| prediction store in memory | "
            + " | ".join(f"{mark['store_mib']:.1f}" for mark in marks)
            + " | |",
            "",
            f"{variant}: {memory['moves']} camera moves, {memory['tiles']} tiles predicted, "
            f"peak RSS {memory['peak_rss_mib']:.0f} MiB.",
        ]
    for note in result.get("skipped", []):
        lines += ["", f"Skipped: {note}."]
    return "\n".join(lines) + "\n"
