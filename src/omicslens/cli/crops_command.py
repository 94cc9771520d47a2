"""``omicslens type-cells``: type a collection of single-cell crops (CellaVision-style).

Thin: parse, run :func:`omicslens.app.crops.type_cells_job`, write, print. Exit codes:
0 fine (crops that could not be read are listed on stderr and in the summary), 1 a
problem with the input (no readable crop, bad bundle, existing outputs), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from omicslens.core import OmicsLensError

EXIT_INPUT_ERROR = 1


def add_type_cells_command(subparsers: Any) -> None:
    command = subparsers.add_parser(
        "type-cells",
        help="type images that each show one centred white cell (files or folders)",
        description="Type single-cell crops (PNG, JPEG, TIFF, BMP; folders searched "
        "recursively). No resolution is needed: the cell is found in each crop and "
        "normalised to the model's cell patch. Each folder given is a group (a patient): "
        "with --genetic every group gets patient-level scores, as `omicslens smear` does. "
        "Cells far from every training class are flagged 'review'. Research use only.",
    )
    command.add_argument("paths", nargs="+", type=Path, help="crop images or folders of crops")
    command.add_argument("--out", type=Path, required=True, help="CSV to write (+ OUT.json)")
    command.add_argument("--model", help="typing bundle (default: the bundled bccd-wbc-typing)")
    command.add_argument(
        "--mpp", type=float, help="um/px of the crops if known (otherwise set from the nucleus)"
    )
    command.add_argument("--genetic", help="patient-level aggregator bundle: scores per folder")
    command.add_argument("--device", help="auto (default), cpu, cuda, mps")
    command.add_argument("--force", action="store_true", help="replace existing outputs")
    command.add_argument("--json", action="store_true", help="print the summary as JSON")
    command.set_defaults(handler=cmd_type_cells)


def cmd_type_cells(args: argparse.Namespace) -> int:
    from omicslens.app.crops import crops_summary, type_cells_job, write_crops_outputs
    from omicslens.app.progress import run_job

    if args.mpp is not None and not args.mpp > 0:
        print("omicslens: error: --mpp must be a positive number", file=sys.stderr)
        return 2
    summary_path = args.out.with_suffix(args.out.suffix + ".json")
    if not args.force and (args.out.exists() or summary_path.exists()):
        print(f"omicslens: error: {args.out} exists; pass --force to replace it", file=sys.stderr)
        return EXIT_INPUT_ERROR
    try:
        report = run_job(
            type_cells_job(
                args.paths,
                model=args.model,
                mpp=args.mpp,
                genetic=args.genetic,
                device=args.device,
            )
        )
        for failure in report.failed:
            print(f"omicslens: warning: skipped {failure.error}", file=sys.stderr)
        if not report.cells:
            print("omicslens: error: no readable crop among the paths given", file=sys.stderr)
            return EXIT_INPUT_ERROR
        write_crops_outputs(report, args.out, force=args.force)
    except (OmicsLensError, FileNotFoundError) as error:
        if args.json:
            print(json.dumps({"error": str(error), "type": type(error).__name__}))
        print(f"omicslens: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    summary = crops_summary(report)
    summary["outputs"] = [str(args.out), str(summary_path)]
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['crops']} crops typed ({summary['review']} flagged for review)")
    total = max(1, summary["crops"])
    for name, count in summary["counts"].items():
        if count:
            print(f"  {name:<12} {count:>6}  {100.0 * count / total:5.1f} %")
    for group, entry in summary.get("patients", {}).items():
        print(f"patient {group}: {entry['predicted']} ({entry['cells']} cells, research use only)")
    print(f"wrote {args.out}, {summary_path}")
    return 0


def add_cell_reference_action(actions: Any) -> None:
    """``model add-cell-reference``, registered on ``omicslens model``'s actions."""
    add = actions.add_parser(
        "add-cell-reference",
        help="give a typing bundle a reference of its training cells (cells far from it "
        "are flagged for review)",
    )
    add.add_argument("bundle", type=Path, help="typing bundle folder")
    add.add_argument("--crops", type=Path, required=True, help="training crops: <Class>/*.jpg")
    add.add_argument("--copies", type=int, default=2, help="colour-jittered copies per crop")
    add.add_argument("--force", action="store_true", help="replace an existing reference")
    add.set_defaults(handler=cmd_add_cell_reference)


def cmd_add_cell_reference(args: argparse.Namespace) -> int:
    from omicslens.hemato.cell_reference import REFERENCE_FILE
    from omicslens.hemato.cell_reference_fit import fit_cell_reference
    from omicslens.hemato.typing import TypingModel

    target = args.bundle / REFERENCE_FILE
    if target.exists() and not args.force:
        print(f"omicslens: error: {target} exists; pass --force to replace it", file=sys.stderr)
        return EXIT_INPUT_ERROR
    try:
        typing_model = TypingModel(args.bundle)
        typing_model.reference = None  # fit afresh, ignoring an old reference
        reference = fit_cell_reference(
            typing_model, args.crops, copies=args.copies, log=lambda m: print(m, flush=True)
        )
    except (OmicsLensError, FileNotFoundError) as error:
        print(f"omicslens: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    reference.provenance["command"] = f"omicslens model add-cell-reference {args.bundle} " + (
        f"--crops {args.crops} --copies {args.copies}"
    )
    path = reference.write(args.bundle)
    print(
        f"wrote {path}: {reference.provenance['cells']} cells "
        f"({reference.provenance['crops']} crops + colour copies), "
        f"scale {reference.scale:.3f} (99 % of held-out training cells)"
    )
    return 0
