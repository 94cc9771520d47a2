"""``omicslens`` command line: thin wrappers over ``core`` (and napari for ``view``).

Exit codes: 0 success, 1 a problem with the input (bad file, missing resolution), 2
usage errors (argparse's convention).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omicslens import __version__
from omicslens.cli.crops_command import add_type_cells_command
from omicslens.cli.domain_commands import add_check_domain_command
from omicslens.cli.entry import EXIT_INTERRUPTED
from omicslens.cli.expression_commands import add_expression_commands
from omicslens.cli.model_commands import add_model_commands
from omicslens.cli.predict_command import add_predict_command
from omicslens.cli.robustness_command import add_robustness_command
from omicslens.cli.smear_commands import add_smear_commands
from omicslens.core import OmicsLensError, open_slide
from omicslens.core.samples import SAMPLES, sample_path

EXIT_INPUT_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omicslens",
        description="Predicted molecular data on whole-slide images and blood smears.",
    )
    parser.add_argument("--version", action="version", version=f"omicslens {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="describe a slide: levels, resolution, tiles, codecs")
    info.add_argument("slide", type=Path, help="slide file or OME-Zarr folder")
    info.add_argument("--mpp", type=float, help="microns per pixel, for slides that state none")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.add_argument(
        "--metadata", action="store_true", help="include the raw vendor metadata in the output"
    )
    info.set_defaults(handler=cmd_info)

    view = commands.add_parser("view", help="open napari with the OmicsLens plugin ready")
    view.add_argument(
        "slide",
        type=Path,
        nargs="?",
        help="slide to open, or a saved session (*.omicslens.json: slide, model, output, "
        "regions, corrections and view as they were saved)",
    )
    view.add_argument("--sample", choices=sorted(SAMPLES), help="open a bundled sample instead")
    view.add_argument("--mpp", type=float, help="microns per pixel, for slides that state none")
    view.add_argument(
        "--model",
        help="bundled model name (e.g. her2st-expression) or bundle folder: opens the Predict "
        "dock and predicts the tiles in view",
    )
    view.add_argument("--output", help="with --model: the output (gene) to show first")
    view.add_argument(
        "--screenshot",
        type=Path,
        help="save a screenshot of the window to this PNG and exit (for docs and checks)",
    )
    view.set_defaults(handler=cmd_view)

    add_model_commands(commands)
    add_expression_commands(commands)
    add_predict_command(commands)
    add_check_domain_command(commands)
    add_smear_commands(commands)
    add_type_cells_command(commands)
    add_robustness_command(commands)

    bench = commands.add_parser("bench", help="benchmarks (results go to docs/benchmarks.md)")
    bench_kinds = bench.add_subparsers(dest="bench_kind", required=True, metavar="KIND")
    io = bench_kinds.add_parser(
        "io", help="slide open and region-read speed vs raw tifffile/zarr", add_help=False
    )
    io.set_defaults(handler=cmd_bench_io, passthrough=True)
    inference = bench_kinds.add_parser(
        "inference",
        help="pipeline vs model-only throughput, GUI latency and memory of inference",
        add_help=False,
    )
    inference.set_defaults(handler=cmd_bench_inference, passthrough=True)
    decode = bench_kinds.add_parser(
        "decode",
        help="decode CPU per patch: per-patch decoding vs the shared tile cache",
        add_help=False,
    )
    decode.set_defaults(handler=cmd_bench_decode, passthrough=True)
    peer = bench_kinds.add_parser(
        "peer", help="omicslens predict vs wsinfer run on the same slide and model", add_help=False
    )
    peer.set_defaults(handler=cmd_bench_peer, passthrough=True)
    first_screen = bench_kinds.add_parser(
        "first-screen",
        help="seconds to the first full screen of live predictions in a real viewer",
        add_help=False,
    )
    first_screen.set_defaults(handler=cmd_bench_first_screen, passthrough=True)
    cohort = bench_kinds.add_parser(
        "cohort", help="a cohort on one process vs a dask LocalCluster", add_help=False
    )
    cohort.set_defaults(handler=cmd_bench_cohort, passthrough=True)
    fuzz = bench_kinds.add_parser(
        "fuzz", help="mutated real slides: every refusal must be a typed error", add_help=False
    )
    fuzz.set_defaults(handler=cmd_bench_fuzz, passthrough=True)
    crop_review = bench_kinds.add_parser(
        "crop-review",
        help="crop finding and review flags on crops cut from a VOC collection",
        add_help=False,
    )
    crop_review.set_defaults(handler=cmd_bench_crop_review, passthrough=True)
    gpu = bench_kinds.add_parser(
        "gpu",
        help="the whole GPU benchmark in one run under 8 minutes (not measured without CUDA)",
        add_help=False,
    )
    gpu.set_defaults(handler=cmd_bench_gpu, passthrough=True)
    memory = bench_kinds.add_parser(
        "wholeslide-memory",
        help="RSS of omicslens predict over a whole slide (default: 100k x 100k px)",
        add_help=False,
    )
    memory.set_defaults(handler=cmd_bench_wholeslide_memory, passthrough=True)
    describe_subcommands(parser)
    return parser


def describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand without its own ``description`` its one-line help as one,
    so ``omicslens CMD -h`` always says what CMD does (recursively)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    text = str(helps[name])
                    sub.description = text[0].upper() + text[1:] + "."
                describe_subcommands(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Benchmarks own their options: everything after ``bench io`` is handed to them as is.
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        # Ctrl-C: one line, no traceback; outputs are written atomically, so whatever
        # was finished is complete and a rerun continues from the cache
        print("\nomicslens: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `omicslens info ... | head`: the reader left; not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


# -- info -----------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    try:
        with open_slide(args.slide, mpp=args.mpp) as slide:
            info = slide.info()
    except OmicsLensError as error:
        return _report_error(error, as_json=args.json)
    if not args.metadata:
        info.pop("metadata", None)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_info(info))
    return 0


def _report_error(error: Exception, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": str(error), "type": type(error).__name__}))
    print(f"omicslens: error: {error}", file=sys.stderr)
    return EXIT_INPUT_ERROR


def format_info(info: dict[str, Any]) -> str:
    objective = info.get("objective_power")
    lines = [
        f"file        {info['path']}",
        f"format      {info['format']}",
        f"size        {info['width']} x {info['height']} px, "
        f"{info['channels']} channels, {info['dtype']}",
        f"resolution  {info['mpp_x']:.6g} x {info['mpp_y']:.6g} um/px ({info['mpp_source']})",
        f"objective   {f'{objective:g}x' if objective else 'not stated'}",
        f"associated  {', '.join(info['associated_images']) or 'none'}",
        "",
        f"{'level':>5} {'width':>9} {'height':>9} {'downsample':>10} {'um/px':>8} "
        f"{'tile':>9}  compression",
    ]
    for level in info["levels"]:
        tile = f"{level['tile_width']}x{level['tile_height']}" if level["tile_width"] else "-"
        lines.append(
            f"{level['level']:>5} {level['width']:>9} {level['height']:>9} "
            f"{level['downsample']:>10.4g} {level['mpp_x']:>8.4g} {tile:>9}  {level['compression']}"
        )
    for warning in info.get("warnings") or []:
        lines.append(f"warning     {warning}")
    if "metadata" in info:
        lines += ["", "metadata", json.dumps(info["metadata"], indent=2)]
    return "\n".join(lines)


# -- view -----------------------------------------------------------------------------
def cmd_view(args: argparse.Namespace) -> int:
    if args.slide and args.sample:
        print("omicslens: error: give a slide or --sample, not both", file=sys.stderr)
        return 2
    path = sample_path(args.sample) if args.sample else args.slide
    from omicslens._napari.launch import launch

    return launch(
        path, mpp=args.mpp, model=args.model, output=args.output, screenshot=args.screenshot
    )


# -- bench ----------------------------------------------------------------------------
def cmd_bench_io(args: argparse.Namespace) -> int:
    from omicslens.bench import io as bench_io

    return int(bench_io.main(list(args.extra)) or 0)


def cmd_bench_decode(args: argparse.Namespace) -> int:
    from omicslens.bench import decode as bench_decode

    return int(bench_decode.main(list(args.extra)) or 0)


def cmd_bench_peer(args: argparse.Namespace) -> int:
    from omicslens.bench import peer as bench_peer

    return int(bench_peer.main(list(args.extra)) or 0)


def cmd_bench_gpu(args: argparse.Namespace) -> int:
    from omicslens.bench import gpu_run

    return int(gpu_run.main(list(args.extra)) or 0)


def cmd_bench_wholeslide_memory(args: argparse.Namespace) -> int:
    from omicslens.bench import wholeslide_memory

    return int(wholeslide_memory.main(list(args.extra)) or 0)


def cmd_bench_first_screen(args: argparse.Namespace) -> int:
    from omicslens.bench import first_screen

    return int(first_screen.main(list(args.extra)) or 0)


def cmd_bench_cohort(args: argparse.Namespace) -> int:
    from omicslens.bench import cohort as bench_cohort

    return int(bench_cohort.main(list(args.extra)) or 0)


def cmd_bench_fuzz(args: argparse.Namespace) -> int:
    from omicslens.bench import fuzz as bench_fuzz

    # the CLI entry point is handed down: the fuzz children run `info --json` through it
    return int(bench_fuzz.main(list(args.extra), entry=main) or 0)


def cmd_bench_crop_review(args: argparse.Namespace) -> int:
    from omicslens.bench import crop_review

    return int(crop_review.main(list(args.extra)) or 0)


def cmd_bench_inference(args: argparse.Namespace) -> int:
    from omicslens.bench import inference as bench_inference

    return int(bench_inference.main(list(args.extra)) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
