"""Interleaved A/B of whole ``omicslens predict`` processes: an old checkout against this one.

Usage (from the repository root, with the peer slide of ../shared/peer/setup.sh and the
peer model copied as a bundle into /tmp/exp/bundle: config.json + torchscript_model.pt):

    git worktree add /tmp/old 95df9b0
    env -u PYTHONDONTWRITEBYTECODE .venv/bin/python docs/results/tissue-ahead-ab-2026-12-06.py 7

Both arms run with the same venv; each imports its own ``src`` (checked). The first run of
each arm is a warm-up (it also writes the bytecode caches), then the arms alternate.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SLIDE = Path("~/.cache/omicslens-peer/slides/big/CMU-1-mirror-20k.svs").expanduser()
BUNDLE = "/tmp/exp/bundle"
PYTHON = sys.executable
ARMS = {"old": "/tmp/old/src", "new": str(Path(__file__).resolve().parents[2] / "src")}


def command(src: str) -> list[str]:
    boot = (
        f"import sys; sys.path.insert(0, {src!r}); import omicslens; "
        f"assert omicslens.__file__.startswith({src!r}), omicslens.__file__; "
        "sys.argv[0] = 'omicslens'; from omicslens.cli.entry import console; console()"
    )
    return [PYTHON, "-c", boot]


def run(src: str) -> tuple[float, float]:
    """(CPU s, wall s) of one whole process, CSV + GeoJSON like the peer benchmark."""
    out = tempfile.mkdtemp()
    args = ["predict", str(SLIDE), "--model", BUNDLE, "--out", f"{out}/r"]
    args += ["--format", "csv,geojson"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [*command(src), *args],
        check=True,
        env={**os.environ, "OMICSLENS_CACHE_DIR": f"{out}/c"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for src in ARMS.values():
        run(src)  # warm-up
    results: dict[str, list[tuple[float, float]]] = {arm: [] for arm in ARMS}
    for number in range(rounds):
        for arm, src in ARMS.items():
            results[arm].append(run(src))
            cpu, wall = results[arm][-1]
            print(f"{arm} {number} cpu {cpu:.2f} wall {wall:.2f}", flush=True)
    medians = {
        arm: (statistics.median(c for c, _ in runs), statistics.median(w for _, w in runs))
        for arm, runs in results.items()
    }
    for arm, (cpu, wall) in medians.items():
        print(f"{arm} median cpu {cpu:.2f} wall {wall:.2f}")
    print(f"new/old wall {medians['new'][1] / medians['old'][1]:.3f}")
    print(f"new/old cpu {medians['new'][0] / medians['old'][0]:.3f}")


if __name__ == "__main__":
    main()
