"""``omicslens bench wholeslide-memory``: the memory of ``omicslens predict`` on a whole
slide, sampled while it runs (issue 15, item 5: a 100,000 x 100,000 px slide at constant
RSS, and the peak reported).

``predict`` runs as a child process, exactly as a user runs it; its resident set size
(and that of any process it starts) is sampled every ``--every`` seconds with psutil. A
bounded pipeline shows a plateau: RSS climbs while the model, the decoder and the tile
cache warm up, then stays flat however many tiles follow. The report gives the peak and
the RSS at a quarter, half, three quarters and the end of the run, and the growth from
the first quarter to the end, which is the number that would expose a leak or an
unbounded cache (it grows with tiles done). Without ``--slide`` it writes (once) the
100k x 100k OME-TIFF of the I/O benchmark.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from omicslens.bench.report import publish

MIB = 1024 * 1024


@dataclass
class MemoryRun:
    slide: str
    model: str
    seconds: float
    tiles: int
    #: (seconds since start, RSS MiB of predict and its children)
    samples: list[tuple[float, float]] = field(default_factory=list)

    @property
    def peak_mib(self) -> float:
        return max((rss for _, rss in self.samples), default=0.0)

    def at(self, fraction: float) -> float:
        """RSS at ``fraction`` of the run's duration (the nearest earlier sample)."""
        if not self.samples:
            return 0.0
        moment = fraction * self.seconds
        earlier = [rss for t, rss in self.samples if t <= moment]
        return earlier[-1] if earlier else self.samples[0][1]

    @property
    def growth_after_first_quarter_mib(self) -> float:
        return self.at(1.0) - self.at(0.25)


def _tree_rss(process: object) -> float:
    import psutil

    assert isinstance(process, psutil.Process)
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:  # a child that just ended
            continue
    return total / MIB


def _tiles_written(folder: Path) -> int:
    count = 0
    for path in folder.rglob("*.csv"):
        if path.name.startswith("."):
            continue
        with path.open() as handle:
            count += max(0, sum(1 for _ in handle) - 1)
    return count


def run_predict(slide: Path, model: str, every: float, extra: Sequence[str] = ()) -> MemoryRun:
    """Run ``omicslens predict`` on ``slide`` and sample its RSS until it ends."""
    import psutil

    from omicslens.bench.peer import _omicslens_command

    with tempfile.TemporaryDirectory(prefix="omicslens-memory-") as scratch:
        out = Path(scratch) / "results"
        env = {**os.environ, "OMICSLENS_CACHE_DIR": str(Path(scratch) / "cache")}
        command = [
            *_omicslens_command(),
            "predict",
            str(slide),
            "--model",
            model,
            "--out",
            str(out),
            "--format",
            "csv",
            *extra,
        ]
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        process = psutil.Process(child.pid)
        samples: list[tuple[float, float]] = []
        while child.poll() is None:
            try:
                samples.append((time.perf_counter() - started, _tree_rss(process)))
            except psutil.Error:
                break
            time.sleep(every)
        _, stderr = child.communicate()
        seconds = time.perf_counter() - started
        if child.returncode != 0:
            raise RuntimeError(f"predict exited with {child.returncode}:\n{stderr[-3000:]!r}")
        return MemoryRun(slide.name, model, seconds, _tiles_written(out), samples)


def to_markdown(run: MemoryRun) -> str:
    quarters = " | ".join(f"{run.at(f):,.0f}" for f in (0.25, 0.5, 0.75, 1.0))
    return "\n".join(
        [
            f"`omicslens predict` on {run.slide} with {run.model}: {run.tiles:,} tiles in "
            f"{run.seconds:.0f} s, {len(run.samples)} RSS samples",
            "",
            "| RSS (MiB) | 25 % | 50 % | 75 % | end | peak | growth 25 % -> end |",
            "|---|---:|---:|---:|---:|---:|---:|",
            f"| predict and its children | {quarters} | {run.peak_mib:,.0f} | "
            f"{run.growth_after_first_quarter_mib:+,.0f} |",
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omicslens bench wholeslide-memory", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--slide", type=Path, help="default: the I/O benchmark's 100k OME-TIFF")
    parser.add_argument("--data-dir", type=Path, default=Path("bench-data"))
    parser.add_argument("--model", required=True, help="bundle folder or bundled name")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    slide = args.slide
    if slide is None:
        from omicslens.bench.io import DEFAULT_SOURCE, ensure_slide

        facts = ensure_slide(args.data_dir, "ome", 100_000, Path(DEFAULT_SOURCE), print)
        slide = Path(facts["path"])
    run = run_predict(slide, args.model, args.every)
    payload = {
        **asdict(run),
        "peak_mib": run.peak_mib,
        "growth_after_first_quarter_mib": run.growth_after_first_quarter_mib,
    }
    publish(to_markdown(run), payload, args.json, args.markdown)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
