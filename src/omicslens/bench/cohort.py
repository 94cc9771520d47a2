"""``omicslens bench cohort``: a cohort on one process versus a dask LocalCluster.

Whole processes, interleaved (A B A B ...), each on fresh output folders: ``omicslens
predict SLIDES --model M --out DIR`` against the same with ``--cluster local:N``. Reports
median wall and CPU seconds (the process and all its children, so the cluster's worker
processes count) and their ratios. Slides are mirror images of the CMU-1 sample (real
pixels; each a different file, so no two share a prediction cache).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def make_slides(folder: Path, count: int) -> list[Path]:
    import numpy as np

    from omicslens.core import open_slide
    from omicslens.core.samples import sample_path

    folder.mkdir(parents=True, exist_ok=True)
    with open_slide(sample_path("cmu1")) as slide:
        pixels = slide.read_region(0, 0, *slide.dimensions)[..., :3]
    import tifffile

    paths = []
    for index in range(count):
        path = folder / f"cohort-{index}.svs"
        if not path.exists():
            variant = pixels[:: 1 if index % 2 == 0 else -1, :: 1 if index % 4 < 2 else -1]
            variant = np.roll(variant, 37 * index, axis=1)  # a different file every time
            description = (
                "Aperio Image Library v12.0.15\n"
                f"{variant.shape[1]}x{variant.shape[0]} (256x256) JPEG/RGB Q=80|MPP = 0.5"
            )
            tifffile.imwrite(
                path,
                np.ascontiguousarray(variant),
                tile=(256, 256),
                compression="jpeg",
                photometric="rgb",
                description=description,
                metadata=None,
            )
        paths.append(path)
    return paths


def _run(command: list[str]) -> tuple[float, float]:
    """(wall, cpu) seconds of a whole process and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run(slides: Sequence[Path], model: str, workers: int, rounds: int) -> dict[str, Any]:
    exe = [sys.executable, "-m", "omicslens.cli.main"]
    base = [*exe, "predict", *map(str, slides), "--model", model, "--format", "csv,h5ad"]
    times: dict[str, list[tuple[float, float]]] = {"single": [], "cluster": []}
    for _ in range(rounds):
        for name in ("single", "cluster"):
            out = tempfile.mkdtemp(prefix=f"omicslens-bench-{name}-")
            extra = ["--cluster", f"local:{workers}"] if name == "cluster" else []
            times[name].append(_run([*base, "--out", out, *extra]))
    med = {
        name: {
            "wall_s": statistics.median(w for w, _ in values),
            "cpu_s": statistics.median(c for _, c in values),
        }
        for name, values in times.items()
    }
    return {
        "slides": len(slides),
        "workers": workers,
        "rounds": rounds,
        "cores": len(os.sched_getaffinity(0)),
        "median": med,
        "cluster_over_single": {
            "wall": med["cluster"]["wall_s"] / med["single"]["wall_s"],
            "cpu": med["cluster"]["cpu_s"] / med["single"]["cpu_s"],
        },
        "runs": times,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omicslens bench cohort", description=__doc__)
    parser.add_argument("--model", required=True, help="bundle folder or bundled name")
    parser.add_argument("--slides", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=Path("bench-data") / "cohort")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    slides = make_slides(args.data_dir, args.slides)
    result = run(slides, args.model, args.workers, args.rounds)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0
