"""OmicsLens against WSInfer on the same slide and model, whole processes, interleaved.

Why: "faster than the tool people use today" is only worth saying when both tools run
the same job on the same machine at the same time. This runs ``wsinfer run`` (0.6.1, its
best CPU setting here: ``--speedup`` with OMP_NUM_THREADS=1, tiffslide backend) and
``omicslens predict`` (defaults) on the same slide with the same TorchScript model, CSV
and GeoJSON outputs, alternating W O W O ... after one warm-up run of each, and reports
whole-process CPU time (user + system of the process and everything it waited for) and
wall time, as medians and as OmicsLens / WSInfer ratios.

WSInfer is not a dependency: install it with ``../shared/peer/setup.sh`` (a venv, the
test model and the 20k x 20k SVS under ``~/.cache/omicslens-peer``). Without it the
benchmark says so and exits with status 2.

Run as ``omicslens bench peer [--rounds 3] [--markdown F] [--json F]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from omicslens.bench.report import publish

PEER_HOME = Path(os.environ.get("PEER_HOME", Path.home() / ".cache/omicslens-peer"))
PEER_SCRIPTS = Path("/work/shared/peer")
TOOLS = ("wsinfer", "omicslens")


@dataclass
class Run:
    tool: str
    cpu_s: float
    wall_s: float
    patches: int
    warm_up: bool = False


@dataclass
class PeerResult:
    slide: str
    model: str
    rounds: int
    runs: list[Run] = field(default_factory=list)

    def median(self, tool: str, what: str) -> float:
        values = [getattr(r, what) for r in self.runs if r.tool == tool and not r.warm_up]
        return float(statistics.median(values))

    def ratio(self, what: str) -> float:
        return self.median("omicslens", what) / self.median("wsinfer", what)


def omicslens_bundle(model_dir: Path, folder: Path) -> Path:
    """The peer's WSInfer model folder as an OmicsLens bundle (same config, same file)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_dir / "config.json", folder / "config.json")
    shutil.copyfile(model_dir / "model.pt", folder / "torchscript_model.pt")
    return folder


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU s, wall s) of one child process and everything it reaped."""
    # both tools run with their bytecode cached, as installed packages do: with
    # PYTHONDONTWRITEBYTECODE set (as on our build machines) an editable checkout compiled
    # its ~190 modules in every run (0.2 s), while the peer's pip install has its .pyc files
    env = {name: value for name, value in env.items() if name != "PYTHONDONTWRITEBYTECODE"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise RuntimeError(
            f"{command[0]} exited with {completed.returncode}:\n{completed.stderr[-3000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def _csv_rows(folder: Path) -> int:
    count = 0
    for path in folder.rglob("*.csv"):
        with path.open(newline="") as handle:
            count += max(0, sum(1 for _ in csv.reader(handle)) - 1)
    return count


def run_wsinfer(slide_dir: Path, out: Path, model_dir: Path) -> Run:
    env = {**os.environ, "WSI_EXTRA": "--speedup", "OMP_NUM_THREADS": "1"}
    env["PEER_HOME"] = str(PEER_HOME)
    script = PEER_SCRIPTS / "run_wsinfer.sh"
    cpu, wall = _timed(["bash", str(script), str(slide_dir), str(out), str(model_dir)], env)
    return Run("wsinfer", cpu, wall, _csv_rows(out / "model-outputs-csv"))


def run_omicslens(slide: Path, out: Path, bundle: Path) -> Run:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "OMICSLENS_CACHE_DIR": str(out / "cache")}
    command = [
        *_omicslens_command(),
        "predict",
        str(slide),
        "--model",
        str(bundle),
        "--out",
        str(out / "results"),
        "--format",
        "csv,geojson",
    ]
    cpu, wall = _timed(command, env)
    return Run("omicslens", cpu, wall, _csv_rows(out / "results"))


def _omicslens_command() -> list[str]:
    script = Path(sys.executable).with_name("omicslens")
    return [str(script)] if script.exists() else [sys.executable, "-m", "omicslens"]


def run_peer_benchmark(
    slide: Path, model_dir: Path, rounds: int, log: Callable[[str], None] = print
) -> PeerResult:
    result = PeerResult(slide.name, str(model_dir), rounds)
    with tempfile.TemporaryDirectory(prefix="omicslens-peer-") as scratch:
        work = Path(scratch)
        bundle = omicslens_bundle(model_dir, work / "bundle")
        for number in range(rounds + 1):
            warm_up = number == 0
            for tool in TOOLS:
                out = work / f"{tool}-out"
                if tool == "wsinfer":
                    run = run_wsinfer(slide.parent, out, model_dir)
                else:
                    run = run_omicslens(slide, out, bundle)
                run.warm_up = warm_up
                result.runs.append(run)
                log(
                    f"{'warm-up' if warm_up else f'round {number}'} {tool}: "
                    f"{run.cpu_s:.1f} s CPU, {run.wall_s:.1f} s wall, {run.patches} patches"
                )
                shutil.rmtree(out, ignore_errors=True)
    return result


def to_markdown(result: PeerResult) -> str:
    lines = [
        f"`{result.slide}`, same TorchScript model, CSV + GeoJSON, {result.rounds} "
        "interleaved rounds after one warm-up each (medians, whole processes):",
        "",
        "| | CPU s | wall s | patches |",
        "|---|---:|---:|---:|",
    ]
    for tool, label in (
        ("wsinfer", "`wsinfer run` 0.6.1 (`--speedup`, OMP_NUM_THREADS=1, tiffslide)"),
        ("omicslens", "`omicslens predict` (defaults)"),
    ):
        patches = [r.patches for r in result.runs if r.tool == tool][-1]
        lines.append(
            f"| {label} | {result.median(tool, 'cpu_s'):.1f} "
            f"| {result.median(tool, 'wall_s'):.1f} | {patches:,} |"
        )
    lines += [
        "",
        f"OmicsLens / WSInfer: **CPU {result.ratio('cpu_s'):.2f}x, wall "
        f"{result.ratio('wall_s'):.2f}x** (target <= 0.5x each).",
    ]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omicslens bench peer", description=__doc__)
    parser.add_argument("--slide", type=Path, default=PEER_HOME / "slides/big/CMU-1-mirror-20k.svs")
    parser.add_argument("--model-dir", type=Path, default=PEER_HOME / "model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    wsinfer = PEER_HOME / "venv/bin/wsinfer"
    missing = [p for p in (wsinfer, args.slide, args.model_dir / "model.pt") if not p.exists()]
    if missing:
        print(
            f"WSInfer peer not installed ({', '.join(map(str, missing))} missing): run "
            f"{PEER_SCRIPTS / 'setup.sh'} first",
            file=sys.stderr,
        )
        return 2
    result = run_peer_benchmark(
        args.slide, args.model_dir, args.rounds, log=lambda m: print(m, file=sys.stderr)
    )
    publish(to_markdown(result), asdict(result), args.json, args.markdown)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
