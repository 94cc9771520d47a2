"""``omicslens robustness``: predictions at measured spots under realistic perturbations.

Thin: parse arguments, run :func:`omicslens.app.robustness.robustness_job`, print and
write the report. Exit codes follow ``omicslens``: 0 fine, 1 a problem with the input,
2 usage errors.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from omicslens.core import OmicsLensError

EXIT_INPUT_ERROR = 1


def add_robustness_command(subparsers: Any) -> None:
    """Register ``robustness`` on the main parser's subparsers."""
    command = subparsers.add_parser(
        "robustness",
        help="per-gene r and stability of an expression model at measured spots under "
        "stain, colour, JPEG, blur, resolution and depth perturbations",
    )
    command.add_argument("slide", type=Path, help="the H&E image the spots refer to")
    command.add_argument("--model", required=True, help="bundle folder, bundled name or HF id")
    command.add_argument(
        "--measured",
        type=Path,
        required=True,
        help="HER2ST counts file or folder, Visium folder, or .h5ad",
    )
    command.add_argument("--section", help="HER2ST section when --measured is the folder")
    resolution = command.add_mutually_exclusive_group()
    resolution.add_argument("--mpp", type=float, help="um/px for slides that state none")
    resolution.add_argument(
        "--mpp-from-spots",
        action="store_true",
        help="measure um/px from the ST array pitch (200 um) of the measured spots",
    )
    command.add_argument(
        "--perturbations",
        help="comma list of perturbation names (default: all; see docs/expression.md)",
    )
    command.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    command.add_argument("--device", help="auto (default), cpu, cuda, mps")
    command.add_argument("--json", action="store_true", help="print the report as JSON")
    command.add_argument("--out", type=Path, help="also write the report (JSON) here")
    command.add_argument(
        "--save-to-bundle",
        action="store_true",
        help="write the report as robustness.json into the model's bundle folder",
    )
    command.add_argument(
        "--force", action="store_true", help="with --save-to-bundle: replace robustness.json"
    )
    command.set_defaults(handler=cmd_robustness)


def _error(error: Exception | str, as_json: bool) -> int:
    if as_json:
        kind = type(error).__name__ if isinstance(error, Exception) else "OmicsLensError"
        print(json.dumps({"error": str(error), "type": kind}))
    print(f"omicslens: error: {error}", file=sys.stderr)
    return EXIT_INPUT_ERROR


def cmd_robustness(args: argparse.Namespace) -> int:
    from omicslens.app.measured import measured_with_resolution
    from omicslens.app.progress import run_job
    from omicslens.app.robustness import robustness_job
    from omicslens.app.tiles import load_predictor
    from omicslens.core import open_slide
    from omicslens.core.perturb import DEFAULT_PERTURBATIONS, perturbation_named
    from omicslens.core.robustness import REPORT_FILE, write_report
    from omicslens.core.samples import resolve_model

    try:
        perturbations = (
            [perturbation_named(name.strip()) for name in args.perturbations.split(",")]
            if args.perturbations
            else list(DEFAULT_PERTURBATIONS)
        )
    except ValueError as error:
        return _error(error, args.json)
    target: Path | None = None
    if args.save_to_bundle:
        folder = Path(resolve_model(args.model))
        if not folder.is_dir():
            return _error(f"{args.model}: --save-to-bundle needs a bundle folder", args.json)
        target = folder / REPORT_FILE
        if target.exists() and not args.force:
            return _error(f"{target} exists (use --force to replace it)", args.json)
    try:
        measured, mpp = measured_with_resolution(
            args.measured, args.section, args.mpp, args.mpp_from_spots
        )
        predictor = load_predictor(args.model, device=args.device)
        with open_slide(args.slide, mpp=mpp) as slide:
            report = run_job(
                robustness_job(
                    slide,
                    measured,
                    predictor,
                    perturbations,
                    seed=args.seed,
                    slide_name=str(args.slide),
                ),
                None if args.json else _progress_printer(),
            )
    except OmicsLensError as error:
        return _error(error, args.json)
    written = []
    for path in (args.out, target):
        if path is not None:
            try:
                written.append(write_report(report, path))
            except OSError as error:
                return _error(f"{path}: cannot write the report ({error})", args.json)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, allow_nan=False))
        return 0
    print(describe(report))
    for path in written:
        print(f"wrote {path}")
    return 0


def _progress_printer() -> Any:
    last = {"shown": -1}

    def show(step: Any) -> None:
        percent = int(100 * step.fraction)
        if percent // 10 != last["shown"] // 10 or step.done == step.total:
            last["shown"] = percent
            print(f"  {step.describe()}", file=sys.stderr, flush=True)

    return show


def describe(report: Any) -> str:
    """The human summary: one row per perturbation, grade counts, least robust genes."""
    clean = report.clean.mean_pearson
    lines = [
        f"{report.measured}: {report.n_spots} spots, {len(report.genes)} genes, "
        f"model {report.model} {report.model_version} ({report.seconds:.0f} s on "
        f"{report.device})",
        "",
        f"{'perturbation':<14} {'mean r':>7} {'drop':>7} {'stability':>9}",
    ]
    for result in report.perturbations:
        stability = result.mean_stability
        lines.append(
            f"{result.name:<14} {_fmt(result.mean_pearson):>7} "
            f"{_fmt(clean - result.mean_pearson, signed=True):>7} "
            f"{'-' if stability is None else _fmt(stability):>9}"
        )
    counts = report.grade_counts()
    lines += [
        "",
        f"mean stability over image perturbations: {_fmt(report.mean_stability)}",
        "grades: " + ", ".join(f"{grade} {n}" for grade, n in counts.items()),
        "least robust genes:",
    ]
    for gene in report.least_robust(5):
        lines.append(
            f"  {gene.gene:<14} grade {gene.grade}  min stability {_fmt(gene.min_stability)} "
            f"({gene.least_stable}), largest r drop {_fmt(gene.max_drop, signed=True)} "
            f"({gene.largest_drop})"
        )
    return "\n".join(lines)


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"
