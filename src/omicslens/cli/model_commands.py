"""``omicslens model inspect|validate``: look at a model bundle before trusting it.

``inspect`` reads config.json and the weights' size and hash, never the tensors (no
torch import, instant). ``validate`` loads the weights and runs one forward pass on two
random patches, listing every problem it finds. Exit codes follow ``omicslens``: 0 fine,
1 a problem with the bundle, 2 usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core import OmicsLensError
from omicslens.models.bundle import ModelBundle, load_bundle
from omicslens.models.errors import BundleConfigError
from omicslens.models.schema import validate_against_wsinfer_schema

EXIT_INPUT_ERROR = 1
SHOWN_NAMES = 10
VALIDATION_PATCHES = 2


def add_model_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``model inspect`` and ``model validate`` on the main parser's subparsers."""
    model = subparsers.add_parser("model", help="inspect and validate model bundles")
    actions = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")

    inspect = actions.add_parser("inspect", help="describe a bundle (config, weights, hash)")
    inspect.add_argument("bundle", help="bundle folder, or a Hugging Face repo id in the cache")
    inspect.add_argument("--json", action="store_true", help="print machine-readable JSON")
    inspect.set_defaults(handler=cmd_model_inspect)

    validate = actions.add_parser(
        "validate", help="load the weights and run a forward pass on random patches"
    )
    validate.add_argument("bundle", help="bundle folder, or a Hugging Face repo id in the cache")
    validate.add_argument("--json", action="store_true", help="print machine-readable JSON")
    validate.set_defaults(handler=cmd_model_validate)

    from omicslens.cli.domain_commands import add_domain_action

    add_domain_action(actions)
    from omicslens.cli.crops_command import add_cell_reference_action

    add_cell_reference_action(actions)
    return model


# -- inspect ----------------------------------------------------------------------------
def cmd_model_inspect(args: argparse.Namespace) -> int:
    try:
        bundle = load_bundle(args.bundle)
        info = bundle_info(bundle)
    except OmicsLensError as error:
        return _report_error(error, as_json=args.json)
    print(json.dumps(info, indent=2) if args.json else format_bundle_info(info))
    return 0


def bundle_info(bundle: ModelBundle) -> dict[str, Any]:
    config = bundle.config
    schema_problems = validate_against_wsinfer_schema(config.to_dict())
    return {
        "name": bundle.name,
        "version": config.version,
        "path": str(bundle.path),
        "task": config.task,
        "architecture": config.architecture,
        "patch_size_pixels": config.patch_size_pixels,
        "input_size": config.input_size,
        "spacing_um_px": config.spacing_um_px,
        "num_outputs": config.num_classes,
        "output_names": list(config.class_names),
        "apply_softmax": config.apply_softmax,
        "output_transform": config.output_transform,
        "mean": list(config.mean),
        "std": list(config.std),
        "scores": {key: config.output_scores(key) for key in ("pearson", "spearman")},
        "weights": {
            "file": bundle.weights_path.name,
            "format": bundle.weights_format,
            "bytes": bundle.weights_size,
        },
        "bundle_hash": bundle.bundle_hash,
        "wsinfer_compatible": None if schema_problems is None else not schema_problems,
        "wsinfer_problems": schema_problems or [],
        "description": config.description,
        "citation": config.citation,
        "domain_reference": None
        if bundle.domain is None
        else {
            "slides": [s.get("slide") for s in bundle.domain.provenance.get("slides", [])],
            "tiles_fitted": bundle.domain.provenance.get("tiles_fitted"),
        },
        "robustness_grades": None
        if bundle.robustness is None
        else bundle.robustness.grade_counts(),
    }


def format_bundle_info(info: dict[str, Any]) -> str:
    names = info["output_names"]
    shown = ", ".join(names[:SHOWN_NAMES]) + (
        f", ... ({len(names) - SHOWN_NAMES} more)" if len(names) > SHOWN_NAMES else ""
    )
    resize = (
        ""
        if info["input_size"] == info["patch_size_pixels"]
        else (f" (resized to {info['input_size']} px for the network)")
    )
    post = ["softmax"] if info["apply_softmax"] else []
    if info["output_transform"]:
        post.append(f"values are {info['output_transform']}-transformed")
    weights = info["weights"]
    lines = [
        f"name           {info['name']}" + (f" {info['version']}" if info["version"] else ""),
        f"path           {info['path']}",
        f"task           {info['task']}" + (f" ({', '.join(post)})" if post else ""),
        f"architecture   {info['architecture']}",
        f"patch          {info['patch_size_pixels']} px at {info['spacing_um_px']:g} um/px"
        + resize,
        f"outputs        {info['num_outputs']}: {shown}",
        f"weights        {weights['file']} ({weights['format']}, {_size(weights['bytes'])})",
        f"bundle hash    {info['bundle_hash']}",
        f"WSInfer schema {_schema_line(info)}",
    ]
    for key, scores in info["scores"].items():
        if scores:
            lines.append(f"{key:<14} {_score_summary(scores)}")
    domain = info.get("domain_reference")
    lines.append(
        "domain check   "
        + (
            f"yes, from {', '.join(map(str, domain['slides']))} ({domain['tiles_fitted']} tiles)"
            if domain
            else "no domain.json: slides cannot be checked (omicslens model add-domain)"
        )
    )
    grades = info.get("robustness_grades")
    if grades:
        counts = ", ".join(f"{grade} {count}" for grade, count in grades.items())
        lines.append(f"robustness     genes per grade: {counts}")
    if info["description"]:
        lines.append(f"description    {info['description']}")
    if info["citation"]:
        lines.append(f"citation       {info['citation']}")
    return "\n".join(lines)


def _schema_line(info: dict[str, Any]) -> str:
    if info["wsinfer_compatible"] is None:
        return "not checked (wsinfer-zoo is not installed)"
    if info["wsinfer_compatible"]:
        return "compatible"
    return "NOT compatible: " + "; ".join(info["wsinfer_problems"])


def _score_summary(scores: dict[str, float]) -> str:
    values = sorted(scores.values())
    median = (
        values[len(values) // 2]
        if len(values) % 2
        else sum(values[len(values) // 2 - 1 : len(values) // 2 + 1]) / 2
    )
    best = sorted(scores.items(), key=lambda item: item[1], reverse=True)[:3]
    top = ", ".join(f"{name} {value:.2f}" for name, value in best)
    return (
        f"{len(values)} outputs scored, median {median:.2f}, "
        f"range {values[0]:.2f}..{values[-1]:.2f}; best: {top}"
    )


def _size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


# -- validate ---------------------------------------------------------------------------
def cmd_model_validate(args: argparse.Namespace) -> int:
    problems, warnings, facts = validate_bundle(args.bundle)
    if args.json:
        print(
            json.dumps(
                {"valid": not problems, "problems": problems, "warnings": warnings, **facts},
                indent=2,
            )
        )
    else:
        for warning in warnings:
            print(f"omicslens: warning: {warning}", file=sys.stderr)
        if not problems:
            print(
                f"{facts['name']}: valid ({facts['weights_format']}, "
                f"{facts['output_width']} outputs, bundle hash {facts['bundle_hash']})"
            )
    for problem in problems:
        print(f"omicslens: error: {problem}", file=sys.stderr)
    return EXIT_INPUT_ERROR if problems else 0


def validate_bundle(source: str | Path) -> tuple[list[str], list[str], dict[str, Any]]:
    """(problems, warnings, facts). Problems make the bundle unusable; warnings do not."""
    try:
        bundle = load_bundle(source)
    except BundleConfigError as error:
        return [f"{error.path}: {problem}" for problem in error.problems], [], {}
    except OmicsLensError as error:
        return [str(error)], [], {}
    warnings = []
    schema_problems = validate_against_wsinfer_schema(bundle.config.to_dict())
    if schema_problems:
        warnings += [f"not WSInfer-compatible: {problem}" for problem in schema_problems]
    facts: dict[str, Any] = {
        "name": bundle.name,
        "bundle_hash": bundle.bundle_hash,
        "weights_format": bundle.weights_format,
    }
    try:
        output = _forward_random_patches(bundle)
    except OmicsLensError as error:
        return [str(error)], warnings, facts
    except Exception as error:  # the network itself failed: report, don't crash
        return [f"{bundle.weights_path}: forward pass failed: {error}"], warnings, facts
    facts["output_width"] = int(output.shape[1])
    problems = []
    if not bool(np.isfinite(output).all()):
        problems.append(f"{bundle.weights_path}: forward pass produced NaN or infinite values")
    if bundle.config.apply_softmax and not np.allclose(output.sum(axis=1), 1.0, atol=1e-3):
        problems.append(f"{bundle.weights_path}: softmax outputs do not sum to 1")
    return problems, warnings, facts


def _forward_random_patches(bundle: ModelBundle) -> np.ndarray:
    """Two random patches through the real pipeline; Predictor checks the output width."""
    from omicslens.models.predictor import Predictor

    size = bundle.config.patch_size_pixels
    patches = np.random.default_rng(0).integers(
        0, 256, size=(VALIDATION_PATCHES, size, size, 3), dtype=np.uint8
    )
    return Predictor(bundle, device="cpu", precision="fp32").predict(patches)


def _report_error(error: Exception, as_json: bool) -> int:
    if as_json:
        report: dict[str, Any] = {"error": str(error), "type": type(error).__name__}
        if isinstance(error, BundleConfigError):
            report["problems"] = [
                {"field": problem.field, "message": problem.message} for problem in error.problems
            ]
        print(json.dumps(report))
    print(f"omicslens: error: {error}", file=sys.stderr)
    return EXIT_INPUT_ERROR
