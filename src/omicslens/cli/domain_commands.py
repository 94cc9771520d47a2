"""``omicslens check-domain`` and ``omicslens model add-domain``: is a slide inside what a
model has seen, and teaching a bundle what it has seen.

Thin: the work is :func:`omicslens.app.domain.check_domain` and
:func:`omicslens.app.domain.fit_domain`. ``check-domain`` exits 0 for every verdict (the
verdict is the answer, in ``--json`` too); 1 for a bad slide or a bundle with no
reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from omicslens.app.predict import INPUT_ERRORS
from omicslens.cli.progress import ProgressPrinter

EXIT_INPUT_ERROR = 1


def add_check_domain_command(subparsers: Any) -> None:
    check = subparsers.add_parser(
        "check-domain",
        help="is this slide inside what the model has seen? (in-domain | uncertain | "
        "out-of-domain)",
        description="Predict an evenly spread sample of the slide's tissue tiles and compare "
        "them with the model's training tiles (colour, texture and the model's own outputs). "
        "A tile is in domain when its domain_distance is at most 1; the slide is in-domain "
        "when at least 80%% of its tissue tiles are, out-of-domain below 50%%.",
    )
    check.add_argument("slide", type=Path, help="slide file or OME-Zarr folder")
    check.add_argument("--model", required=True, help="bundle folder, bundled name or HF id")
    check.add_argument("--mpp", type=float, help="um/px for slides that state none")
    check.add_argument(
        "--tiles", type=int, default=256, help="tissue tiles to check, spread over the slide"
    )
    check.add_argument("--device", help="auto (default), cpu, cuda, mps")
    check.add_argument("--json", action="store_true", help="print machine-readable JSON")
    check.set_defaults(handler=cmd_check_domain)


def add_domain_action(actions: Any) -> None:
    """``model add-domain``, registered on ``omicslens model``'s actions."""
    add = actions.add_parser(
        "add-domain",
        help="write domain.json into a bundle from example slides of its training data",
        description="Sample tissue tiles of each slide (and stain-jittered copies), run the "
        "model on them and store the distribution of colour/texture features and outputs as "
        "domain.json in the bundle. From then on every prediction carries domain_distance "
        "and slides get an in-domain / uncertain / out-of-domain verdict. Changing "
        "domain.json changes the bundle hash, so cached predictions are recomputed.",
    )
    add.add_argument("bundle", type=Path, help="bundle folder (written into)")
    add.add_argument("slides", type=Path, nargs="+", help="slides like the training data")
    add.add_argument("--mpp", type=float, help="um/px for slides that state none (all slides)")
    add.add_argument(
        "--tiles-per-slide", type=int, default=300, help="tissue tiles sampled per slide"
    )
    add.add_argument(
        "--stain-copies", type=int, default=2, help="stain-jittered copies of each tile"
    )
    add.add_argument("--seed", type=int, default=0, help="seed of the tile sample and jitter")
    add.add_argument("--force", action="store_true", help="replace an existing domain.json")
    add.set_defaults(handler=cmd_add_domain)


def cmd_check_domain(args: argparse.Namespace) -> int:
    from omicslens.app.domain import NoDomainReferenceError, check_domain
    from omicslens.app.progress import run_job
    from omicslens.app.tiles import load_predictor

    # a typed tuple: mypy cannot type ``except (*INPUT_ERRORS, X)`` (a starred tuple)
    errors: tuple[type[BaseException], ...] = (*INPUT_ERRORS, NoDomainReferenceError)
    try:
        predictor = load_predictor(args.model, args.device)
        report = run_job(
            check_domain(args.slide, predictor, mpp=args.mpp, max_tiles=args.tiles),
            None if args.json else ProgressPrinter(),
        )
    except errors as error:
        if args.json:
            print(json.dumps({"error": str(error), "type": type(error).__name__}))
        print(f"omicslens: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    result = report.as_dict()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(file=sys.stderr)
    print(
        f"{report.slide.name} with {report.model}: {result['verdict']} "
        f"({result['in_domain_fraction']:.0%} of {result['tiles_checked']} tissue tiles in "
        f"domain; median domain distance {result['median_distance']})"
    )
    if report.verdict.warning:
        print(f"warning: {report.verdict.warning}")
    return 0


def cmd_add_domain(args: argparse.Namespace) -> int:
    from omicslens.app.domain import ExampleSlide, fit_domain
    from omicslens.app.progress import run_job
    from omicslens.core.domain import DOMAIN_FILE

    target = args.bundle / DOMAIN_FILE
    if target.exists() and not args.force:
        print(f"omicslens: error: {target} exists; pass --force to replace it", file=sys.stderr)
        return EXIT_INPUT_ERROR
    errors: tuple[type[BaseException], ...] = (*INPUT_ERRORS, ValueError)
    try:
        reference = run_job(
            fit_domain(
                args.bundle,
                [ExampleSlide(path, args.mpp) for path in args.slides],
                tiles_per_slide=args.tiles_per_slide,
                stain_copies=args.stain_copies,
                seed=args.seed,
            ),
            ProgressPrinter(),
        )
    except errors as error:
        print(file=sys.stderr)
        print(f"omicslens: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    print(file=sys.stderr)
    reference.provenance["command"] = "omicslens model add-domain " + " ".join(
        [str(args.bundle), *(path.name for path in args.slides)]
    )
    path = reference.save(args.bundle)
    fitted = reference.provenance["tiles_fitted"]
    held = reference.provenance["tiles_held_out"]
    print(f"wrote {path}: {fitted} tiles fitted, {held} held out to set the scale")
    return 0
