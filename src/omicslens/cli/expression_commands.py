"""``omicslens fit-expression`` and ``omicslens evaluate-expression``.

Thin: parse arguments, call :mod:`omicslens.models.expression`, print. Exit codes follow
``omicslens``: 0 fine, 1 a problem with the input, 2 usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from omicslens.core import OmicsLensError

EXIT_INPUT_ERROR = 1


def add_expression_commands(subparsers: Any) -> None:
    fit = subparsers.add_parser(
        "fit-expression",
        help="train an expression model bundle from paired H&E + spatial transcriptomics",
    )
    source = fit.add_mutually_exclusive_group(required=True)
    source.add_argument("--her2st", type=Path, help="HER2ST-layout folder (counts/ spots/ images/)")
    source.add_argument(
        "--measured",
        type=Path,
        nargs="+",
        help="Visium folders or .h5ad files (pair each with --image; first --val-count validate)",
    )
    fit.add_argument("--image", type=Path, nargs="+", help="full-resolution H&E per --measured")
    fit.add_argument("--mpp", type=float, help="um/px of the --image files if they state none")
    fit.add_argument("--train", default="C2,C3,C4,C5", help="HER2ST training sections")
    fit.add_argument("--val", default="C6", help="HER2ST validation sections")
    fit.add_argument("--val-count", type=int, default=1, help="with --measured: how many validate")
    fit.add_argument("--genes", default="50", help="top-k HVGs (a number) or a comma list")
    fit.add_argument(
        "--encoder",
        help="embedding bundle (e.g. H-optimus-0 or UNI with local weights): HEST protocol, "
        "encoder + PCA/ridge head, saved as TorchScript",
    )
    fit.add_argument(
        "--heads-from",
        help="trained omicslens-expression bundle (folder or bundled name): keep its members' "
        "trunks frozen and fit new ridge heads for --genes (HEST protocol; see "
        "omicslens.models.expression.wide)",
    )
    fit.add_argument(
        "--distill-from",
        help="trained omicslens-expression bundle (folder or bundled name): train one CNN "
        "on its training sections against its CNNs' prediction and the measured expression, "
        "keep its genes, units and stain/texture witness (a faster model; see "
        "omicslens.models.expression.distill)",
    )
    fit.add_argument(
        "--extra-genes",
        help="with --heads-from: comma list added to --genes where every training section "
        "measures it and 5%% of training spots have counts (default: ERBB2, ESR1, PGR, MKI67, "
        "CD8A and other markers)",
    )
    fit.add_argument(
        "--alpha-from",
        choices=["loso", "val"],
        default="loso",
        help="ridge alpha (of --heads-from heads, or of the stain/texture member) by "
        "leave-one-section-out over the training sections (default; validation untouched) "
        "or on the validation sections",
    )
    fit.add_argument(
        "--augment",
        choices=["stain", "scanner"],
        default="stain",
        help="CNN training augmentation: stain jitter (with flips and turns), or scanner: "
        "also white balance, gamma, blur and a +-10%% zoom",
    )
    fit.add_argument(
        "--targets",
        choices=["pooled", "section"],
        default="pooled",
        help="standardise targets over all training spots, or within each section "
        "(depth and capture differences between sections are not learnt)",
    )
    fit.add_argument(
        "--members-from",
        choices=["seeds", "loso", "loso+all"],
        default="seeds",
        help="seeds: --cnn-members CNNs on all training sections; loso: one CNN per "
        "training section, trained without it and scored on it (clean and perturbed; "
        "the scores go into the bundle's validation block); loso+all: the loso members "
        "plus one CNN trained on every training section",
    )
    fit.add_argument(
        "--cnn-members", type=int, default=3, help="CNNs trained with different seeds (seeds mode)"
    )
    fit.add_argument(
        "--no-stain-texture",
        action="store_true",
        help="no stain/texture witness member (ensemble_sd then only from the CNNs)",
    )
    fit.add_argument("--epochs", type=int, default=30, help="training epochs per CNN")
    fit.add_argument("--threads", type=int, help="torch CPU threads")
    fit.add_argument("--seed", type=int, default=0, help="seed of the first CNN (+1 per member)")
    fit.add_argument(
        "--name", default="omicslens-her2st-expression", help="bundle name in config.json"
    )
    fit.add_argument("--version", default="1.0.0", help="bundle version in config.json")
    fit.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    fit.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    fit.add_argument("--report", type=Path, help="also write the fit report as JSON here")
    fit.add_argument(
        "--no-domain",
        action="store_true",
        help="do not write domain.json (the training tiles' reference for the domain check)",
    )
    fit.add_argument(
        "--domain-tiles", type=int, default=300, help="tissue tiles per training section"
    )
    fit.set_defaults(handler=cmd_fit_expression)

    evaluate = subparsers.add_parser(
        "evaluate-expression", help="per-gene Pearson of predicted vs measured at the spots"
    )
    evaluate.add_argument("slide", type=Path, help="the H&E image the measured spots refer to")
    evaluate.add_argument(
        "--measured",
        type=Path,
        required=True,
        help="HER2ST counts file or folder, Visium folder, or .h5ad",
    )
    evaluate.add_argument("--section", help="HER2ST section when --measured is the folder")
    evaluate.add_argument("--model", required=True, help="bundle folder or cached HF repo id")
    resolution = evaluate.add_mutually_exclusive_group()
    resolution.add_argument("--mpp", type=float, help="um/px for slides that state none")
    resolution.add_argument(
        "--mpp-from-spots",
        action="store_true",
        help="measure um/px from the ST array pitch (200 um) of the measured spots",
    )
    evaluate.add_argument("--device", help="auto (default), cpu, cuda, mps")
    evaluate.add_argument("--json", action="store_true", help="print the full report as JSON")
    evaluate.set_defaults(handler=cmd_evaluate_expression)


def cmd_fit_expression(args: argparse.Namespace) -> int:
    from omicslens.models.expression.data import her2st_sections, section_from
    from omicslens.models.expression.fit import FitSettings, fit_expression, write_bundle

    if args.out.exists() and any(args.out.iterdir()) and not args.force:
        print(
            f"omicslens: error: {args.out} exists and is not empty (use --force)", file=sys.stderr
        )
        return EXIT_INPUT_ERROR
    if args.heads_from and args.encoder:
        print("omicslens: error: give --heads-from or --encoder, not both", file=sys.stderr)
        return 2
    genes: int | list[str] = (
        int(args.genes) if args.genes.isdigit() else [g.strip() for g in args.genes.split(",")]
    )
    try:
        if args.her2st:
            train = her2st_sections(args.her2st, args.train.split(","))
            val = her2st_sections(args.her2st, args.val.split(","))
            data = {
                "dataset": "HER2ST (Andersson et al. 2021)",
                "root": str(args.her2st),
                "train_sections": args.train.split(","),
                "val_sections": args.val.split(","),
            }
        else:
            if not args.image or len(args.image) != len(args.measured):
                print("omicslens: error: give one --image per --measured", file=sys.stderr)
                return 2
            sections = [
                section_from(m, i, args.mpp) for m, i in zip(args.measured, args.image, strict=True)
            ]
            val, train = sections[: args.val_count], sections[args.val_count :]
            if not train:
                print(
                    "omicslens: error: no training section left after --val-count", file=sys.stderr
                )
                return 2
            data = {
                "train": [str(m) for m in args.measured[args.val_count :]],
                "val": [str(m) for m in args.measured[: args.val_count]],
            }
        if args.encoder:
            return _with_domain(args, train, _fit_with_encoder(args, train, val, genes, data))
        if args.heads_from:
            return _with_domain(args, train, _fit_heads(args, train, val, genes, data))
        if args.distill_from:
            return _with_domain(args, train, _distill(args, train, val, data))
        settings = FitSettings(
            genes=genes,
            cnn_members=args.cnn_members,
            stain_texture_member=not args.no_stain_texture,
            epochs=args.epochs,
            seed=args.seed,
            threads=args.threads,
            augment=args.augment,
            targets=args.targets,
            members_from=args.members_from,
            alpha_from=args.alpha_from,
        )
        net, report = fit_expression(train, val, settings, log=lambda m: print(m, flush=True))
    except OmicsLensError as error:
        print(f"omicslens: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    citation = (
        "Andersson et al., Spatial deconvolution of HER2-positive breast cancer delineates "
        "tumor-associated cell type interactions, Nat Commun 12, 6012 (2021)"
        if args.her2st
        else None
    )
    write_bundle(
        net,
        report,
        args.out,
        name=args.name,
        version=args.version,
        training_data=data,
        citation=citation,
    )
    if args.report:
        from dataclasses import asdict

        args.report.write_text(json.dumps(asdict(report), indent=2))
    print(
        f"bundle written to {args.out}: mean validation Pearson "
        f"{report.mean_pearson['ensemble']:.3f} over {len(report.genes)} genes"
    )
    return _with_domain(args, train, 0)


def _with_domain(args: argparse.Namespace, train: Any, code: int) -> int:
    """After a successful fit: the bundle's domain reference from its training sections
    (``--no-domain`` skips it), so the new model can tell foreign slides from the start."""
    if code != 0 or args.no_domain:
        return code
    from omicslens.app.domain import ExampleSlide, fit_domain
    from omicslens.app.progress import run_job

    print("domain reference from the training sections...", flush=True)
    try:
        reference = run_job(
            fit_domain(
                args.out,
                [ExampleSlide(section.image, section.mpp) for section in train],
                tiles_per_slide=args.domain_tiles,
            )
        )
    except (OmicsLensError, ValueError) as error:
        print(f"omicslens: error: domain reference not written: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    reference.provenance["command"] = "omicslens fit-expression (training sections)"
    print(f"wrote {reference.save(args.out)}")
    return 0


def _fit_with_encoder(
    args: argparse.Namespace, train: Any, val: Any, genes: Any, data: dict[str, Any]
) -> int:
    from omicslens.models.expression.encoder_fit import fit_with_encoder, write_encoder_bundle

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        model, report, encoder = fit_with_encoder(
            train, val, args.encoder, genes=genes, log=lambda m: print(m, flush=True)
        )
    except OmicsLensError as error:
        print(f"omicslens: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    write_encoder_bundle(
        model, report, encoder, args.out, name=args.name, version=args.version, training_data=data
    )
    print(
        f"bundle written to {args.out}: mean validation Pearson "
        f"{report.mean_pearson['encoder-ridge']:.3f} over {len(report.genes)} genes"
    )
    return 0


def _fit_heads(
    args: argparse.Namespace, train: Any, val: Any, genes: Any, data: dict[str, Any]
) -> int:
    from omicslens.core.samples import resolve_model
    from omicslens.models.expression.fit import write_bundle
    from omicslens.models.expression.wide import MARKER_GENES, HeadSettings, fit_wide_heads

    extra = (
        [g.strip() for g in args.extra_genes.split(",") if g.strip()]
        if args.extra_genes is not None
        else list(MARKER_GENES)
    )
    settings = HeadSettings(
        genes=genes, extra_genes=extra, alpha_from=args.alpha_from, threads=args.threads
    )
    try:
        net, report = fit_wide_heads(
            resolve_model(args.heads_from),
            train,
            val,
            settings,
            log=lambda m: print(m, flush=True),
        )
    except (OmicsLensError, ValueError) as error:
        print(f"omicslens: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    write_bundle(
        net,
        report,
        args.out,
        name=args.name,
        version=args.version,
        training_data=data,
        citation=_HER2ST_CITATION if args.her2st else None,
        description=f"Predicted relative expression of {len(report.genes)} genes: log1p of "
        "counts normalised to 10^4 per spot (not counts); ridge heads on the frozen trunks "
        f"of {report.settings['heads_from']['name']}",
    )
    if args.report:
        from dataclasses import asdict

        args.report.write_text(json.dumps(asdict(report), indent=2))
    print(
        f"bundle written to {args.out}: mean validation Pearson "
        f"{report.mean_pearson['ensemble']:.3f} over {len(report.genes)} genes"
    )
    return 0


def _distill(args: argparse.Namespace, train: Any, val: Any, data: dict[str, Any]) -> int:
    from dataclasses import asdict

    from omicslens.core.samples import resolve_model
    from omicslens.models.bundle import load_bundle
    from omicslens.models.expression.distill import distill_expression
    from omicslens.models.expression.fit import FitSettings, write_bundle
    from omicslens.models.expression.net import ExpressionNet
    from omicslens.models.loading import load_model

    if args.targets != "pooled":
        print(
            "omicslens: error: --targets does not apply to --distill-from: the student keeps "
            "the teacher's target standardisation",
            file=sys.stderr,
        )
        return EXIT_INPUT_ERROR
    try:
        bundle = load_bundle(resolve_model(args.distill_from))
        teacher = load_model(bundle)
        if not isinstance(teacher, ExpressionNet):
            print(
                f"omicslens: error: {args.distill_from} is not an omicslens-expression bundle",
                file=sys.stderr,
            )
            return EXIT_INPUT_ERROR
        genes = [
            meta["name"]
            for meta in bundle.output_meta
            if isinstance(meta, dict) and meta.get("kind") == "gene"
        ]
        settings = FitSettings(
            epochs=args.epochs, seed=args.seed, threads=args.threads, augment=args.augment
        )
        net, report = distill_expression(
            teacher, genes, train, val, settings, log=lambda m: print(m, flush=True)
        )
    except (OmicsLensError, ValueError) as error:
        print(f"omicslens: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    teacher_name = f"{bundle.config.name} {bundle.config.version}"
    weight = float(report.settings["distilled"]["teacher_weight"])
    write_bundle(
        net,
        report,
        args.out,
        name=args.name,
        version=args.version,
        training_data={
            **data,
            "distilled_from": teacher_name,
            "distillation": f"one CNN trained on the training sections against "
            f"{1 - weight:g} x the measured expression + {weight:g} x the teacher CNNs' mean "
            "prediction on the same augmented window (the teacher's standardised units); "
            "the teacher's stain/texture witness copied unchanged",
        },
        citation=_HER2ST_CITATION if args.her2st else None,
        description=f"Predicted relative expression of {len(report.genes)} genes: log1p of "
        f"counts normalised to 10^4 per spot (not counts); one CNN distilled from {teacher_name}",
    )
    if args.report:
        args.report.write_text(json.dumps(asdict(report), indent=2))
    print(
        f"bundle written to {args.out}: mean validation Pearson "
        f"{report.mean_pearson['ensemble']:.3f} over {len(report.genes)} genes "
        f"(teacher {report.mean_pearson['teacher']:.3f})"
    )
    return 0


_HER2ST_CITATION = (
    "Andersson et al., Spatial deconvolution of HER2-positive breast cancer delineates "
    "tumor-associated cell type interactions, Nat Commun 12, 6012 (2021)"
)


def cmd_evaluate_expression(args: argparse.Namespace) -> int:
    from omicslens.app.measured import compare_with_measured, measured_with_resolution
    from omicslens.app.progress import run_job
    from omicslens.app.tiles import load_predictor
    from omicslens.core import open_slide

    try:
        measured, mpp = measured_with_resolution(
            args.measured, args.section, args.mpp, args.mpp_from_spots
        )
        predictor = load_predictor(args.model, device=args.device)
        with open_slide(args.slide, mpp=mpp) as slide:
            result = run_job(compare_with_measured(slide, measured, predictor)).evaluation
    except OmicsLensError as error:
        if args.json:
            print(json.dumps({"error": str(error), "type": type(error).__name__}))
        print(f"omicslens: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    if not result.genes:
        problem = (
            f"{args.measured} ({measured.source}): none of the {len(result.unmeasured)} outputs of "
            f"{predictor.bundle.name} was measured (e.g. {', '.join(result.unmeasured[:5])}); "
            "nothing to compare"
        )
        if args.json:
            print(json.dumps({"error": problem, "type": "NoCommonGenes"}))
        print(f"omicslens: error: {problem}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    summary = {
        "slide": str(args.slide),
        "measured": measured.source,
        "model": predictor.bundle.name,
        "mpp": mpp,
        **result.as_dict(),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{measured.source}: {result.n_spots} spots, model {predictor.bundle.name}")
    order = sorted(
        range(len(result.genes)),
        key=lambda i: -(result.pearson[i] if result.pearson[i] == result.pearson[i] else -2),
    )
    for i in order:
        print(f"  {result.genes[i]:<14} r = {result.pearson[i]:+.3f}")
    print(f"mean Pearson over {len(result.genes)} genes: {result.mean_pearson:.3f}")
    if result.uncertainty_spearman is not None:
        overall = result.uncertainty_spearman_overall
        median = result.uncertainty_spearman_median
        print(
            f"uncertainty ranks errors: Spearman "
            f"{_signed(overall)} overall; per gene median {_signed(median)}"
        )
    if result.unmeasured:
        print(f"not measured here: {', '.join(result.unmeasured)}")
    return 0


def _signed(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:+.3f}"
