"""Fit an expression bundle from paired H&E and spatial transcriptomics.

The recipe (defaults reproduce the bundled HER2ST model):

1. targets: library-size normalisation to 10^4 counts, log1p; genes are the top-k highly
   variable genes of the *training* sections (or a given list);
2. inputs: one window per spot, centred on it, 448 um at 1.4 um/px (320 px), the same
   window the engine reads around each 112 um tile; the network looks at the tile (centre
   80 px) and at the whole window pooled to 80 px (context);
3. members: small two-view CNNs trained end to end (flips, 90 degree turns and stain
   jitter in optical density) and a handcrafted stain/texture member fitted with the
   HEST protocol (standardise, PCA to at most 256 components, ridge with alpha chosen on
   the validation sections); the ensemble averages their standardised predictions;
4. report: per-gene Pearson r on the validation sections, per member and for the
   ensemble, written into the bundle config (``outputs[i].pearson``) and its model card.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from omicslens.core.atomic import write_bytes_atomic, write_text_atomic
from omicslens.core.measured import highly_variable_genes, pearson_per_column
from omicslens.models.expression.augment import AUGMENTATIONS, augment
from omicslens.models.expression.data import Section, cut_windows
from omicslens.models.expression.loso import (
    CONDITIONS,
    HeldOutScore,
    LosoReport,
    held_out_folds,
    score_held_out,
    standardise_targets,
)
from omicslens.models.expression.net import MEAN, STD, CNNMember, ExpressionNet, StainTextureMember
from omicslens.models.expression.views import split_views

Log = Callable[[str], None]


#: where the CNN members' training sections come from (see FitSettings.members_from)
MEMBER_SOURCES = ("seeds", "loso", "loso+all")


@dataclass
class FitSettings:
    genes: int | list[str] = 50
    window_um: float = 448.0
    window_px: int = 320
    tile_um: float = 112.0
    fine_px: int = 80
    context_px: int = 80
    cnn_members: int = 3
    stain_texture_member: bool = True
    epochs: int = 30
    width: int = 16
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-2
    alphas: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0)
    max_components: int = 256
    seed: int = 0
    threads: int | None = None
    #: "stain" (1.0.0/1.1.0) or "scanner" (adds white balance, gamma, blur, zoom)
    augment: str = "stain"
    #: "pooled" (one mean/SD over training spots) or "section" (standardised per section)
    targets: str = "pooled"
    #: "seeds": ``cnn_members`` CNNs on all training sections; "loso": one CNN per training
    #: section, trained without it and scored on it (models/expression/loso.py);
    #: "loso+all": the LOSO members plus one CNN on every training section (the LOSO
    #: members each miss a section; the last one sees them all)
    members_from: str = "seeds"
    #: the stain/texture ridge alpha: chosen on the validation sections ("val") or by
    #: leave-one-section-out over the training sections ("loso", never sees validation)
    alpha_from: str = "val"


@dataclass
class FitReport:
    genes: list[str]
    pearson: dict[str, list[float]]  # member name -> per-gene r on validation
    mean_pearson: dict[str, float]
    alpha: float | None
    train_spots: int
    val_spots: int
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    loso: dict[str, Any] | None = None


def fit_expression(
    train: Sequence[Section],
    val: Sequence[Section],
    settings: FitSettings | None = None,
    log: Log = print,
) -> tuple[ExpressionNet, FitReport]:
    """Train the ensemble on ``train`` and score it on ``val`` (see the module docstring)."""
    settings = settings or FitSettings()
    if settings.augment not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {settings.augment!r}: use one of {AUGMENTATIONS}")
    if settings.members_from not in MEMBER_SOURCES:
        raise ValueError(
            f"members_from must be one of {MEMBER_SOURCES}, not {settings.members_from!r}"
        )
    started = time.monotonic()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    genes = (
        list(settings.genes)
        if isinstance(settings.genes, list)
        else highly_variable_genes([s.measured for s in train], top=settings.genes)
    )
    log(f"{len(genes)} genes: {', '.join(genes[:10])}{'...' if len(genes) > 10 else ''}")
    train_windows, train_targets = _windows_and_targets(train, genes, settings, log)
    val_windows, val_targets = _windows_and_targets(val, genes, settings, log)
    scaled, y_mean, y_std = standardise_targets(train_targets, settings.targets)
    folds = _member_folds(train, settings.members_from)
    cnn_count = len(folds) if folds is not None else settings.cnn_members
    members: list[dict[str, Any]] = [{"kind": "cnn", "width": settings.width}] * cnn_count
    if settings.stain_texture_member:
        members = [*members, {"kind": "stain-texture"}]
    if not members:
        raise ValueError("no ensemble member: ask for CNN members or the stain-texture member")
    net = ExpressionNet(
        len(genes),
        members=members,
        fine_px=settings.fine_px,
        context_px=settings.context_px,
        predicting_members=list(range(cnn_count)) if cnn_count else None,
    )
    net.target_mean.copy_(torch.from_numpy(y_mean))
    net.target_std.copy_(torch.from_numpy(y_std))
    x_train, yn_train = np.concatenate(train_windows), np.concatenate(scaled)
    x_val, y_val = np.concatenate(val_windows), np.concatenate(val_targets)
    val_input = _normalise(torch.from_numpy(x_val))
    pearson: dict[str, list[float]] = {}
    held_out: list[HeldOutScore] = []
    alpha = None
    for position, member in enumerate(net.members):
        name = f"{members[position]['kind']}-{position}"
        if isinstance(member, CNNMember):
            if folds is None or folds[position][0] is None:
                x_member, y_member = x_train, yn_train
            else:
                held, rest = folds[position]
                assert held is not None
                x_member = np.concatenate([train_windows[i] for i in rest])
                y_member = np.concatenate([scaled[i] for i in rest])
                log(f"{name}: trained without {train[held].name}")
            _train_cnn(member, x_member, y_member, settings, seed=settings.seed + position, log=log)
        elif isinstance(member, StainTextureMember):
            alpha = _fit_stain_texture(
                member, train_windows, scaled, x_val, y_val, y_mean, y_std, settings, log
            )
        member.eval()

        def run_member(batch: torch.Tensor, member: torch.nn.Module = member) -> torch.Tensor:
            return member(*split_views(batch, net.fine_px, net.context_px))

        def predict_windows(windows: np.ndarray, run: Callable[..., torch.Tensor] = run_member):
            with torch.inference_mode():
                standard = _batched(run, _normalise(torch.from_numpy(windows))).numpy()
            return standard * y_std + y_mean

        held = folds[position][0] if folds is not None and position < len(folds) else None
        if held is not None and isinstance(member, CNNMember):
            score = score_held_out(
                predict_windows,
                train[held],
                train_windows[held],
                genes,
                settings.window_um,
                settings.window_px,
                member=position,
                seed=settings.seed,
            )
            held_out.append(score)
            log(
                f"{name}: held-out {train[held].name} r "
                + ", ".join(f"{c} {score.mean(c):.3f}" for c in CONDITIONS)
            )
        r = pearson_per_column(predict_windows(x_val), y_val)
        pearson[name] = [float(v) for v in r]
        log(f"{name}: mean Pearson on validation {np.nanmean(r):.3f}")
    net.eval()
    with torch.inference_mode():
        ensemble = _batched(net, val_input).numpy()
    r = pearson_per_column(ensemble, y_val)
    pearson["ensemble"] = [float(v) for v in r]
    log(f"ensemble: mean Pearson on validation {np.nanmean(r):.3f}")
    loso = LosoReport(held_out) if held_out else None
    if loso is not None:
        log(f"leave-one-section-out selection score {loso.selection_score:.4f}")
    report = FitReport(
        genes=genes,
        pearson=pearson,
        mean_pearson={k: float(np.nanmean(v)) for k, v in pearson.items()},
        alpha=alpha,
        train_spots=len(x_train),
        val_spots=len(x_val),
        seconds=time.monotonic() - started,
        settings=asdict(settings),
        loso=loso.as_dict() if loso is not None else None,
    )
    return net, report


# -- data ------------------------------------------------------------------------------
def _member_folds(
    train: Sequence[Section], members_from: str
) -> list[tuple[int | None, list[int]]] | None:
    """(held-out section or None, training sections) per CNN member; None for seeds."""
    if members_from == "seeds":
        return None
    folds: list[tuple[int | None, list[int]]] = list(held_out_folds(train))
    if members_from == "loso+all":
        folds.append((None, list(range(len(train)))))
    return folds


def _windows_and_targets(
    sections: Sequence[Section], genes: list[str], settings: FitSettings, log: Log
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    windows, targets = [], []
    for section in sections:
        log(
            f"cutting {section.measured.n_spots} windows from {section.name} "
            f"({section.mpp:.4f} um/px, {section.mpp_source})"
        )
        windows.append(cut_windows(section, settings.window_um, settings.window_px))
        targets.append(section.measured.normalised(genes).astype(np.float32))
    return windows, targets


def _normalise(x: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> ImageNet-normalised NCHW float, as the bundle's transform does."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x.permute(0, 3, 1, 2).float() / 255 - mean) / std


def _batched(
    function: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, size: int = 64
) -> torch.Tensor:
    return torch.cat([function(x[i : i + size]) for i in range(0, len(x), size)])


# -- members ---------------------------------------------------------------------------
def _train_cnn(
    member: CNNMember,
    x: np.ndarray,
    y: np.ndarray,
    settings: FitSettings,
    seed: int,
    log: Log,
    teacher: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    teacher_weight: float = 0.0,
) -> None:
    """AdamW + one-cycle on augmented windows. With a ``teacher`` (distillation), the loss
    mixes the measured targets and the teacher's standardised prediction on the *same*
    augmented batch, ``teacher_weight`` of the latter."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    images = torch.from_numpy(x)
    targets = torch.from_numpy(y)
    optimiser = torch.optim.AdamW(
        member.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    steps = settings.epochs * ((len(x) + settings.batch_size - 1) // settings.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, settings.learning_rate, total_steps=max(steps, 1)
    )
    member.train()
    for epoch in range(settings.epochs):
        started = time.monotonic()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            inputs = augment(images[batch], generator, settings.augment)
            fine, context = split_views(inputs, settings.fine_px, settings.context_px)
            output = member(fine, context)
            loss = F.mse_loss(output, targets[batch])
            if teacher is not None:
                with torch.no_grad():
                    taught = teacher(fine, context)
                loss = (1 - teacher_weight) * loss + teacher_weight * F.mse_loss(output, taught)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(batch)
        if epoch == 0 or (epoch + 1) % 5 == 0 or epoch + 1 == settings.epochs:
            log(
                f"  cnn seed {seed} epoch {epoch + 1}/{settings.epochs}: "
                f"loss {total / len(x):.3f} ({time.monotonic() - started:.1f} s)"
            )


def _fit_stain_texture(
    member: StainTextureMember,
    train_windows: Sequence[np.ndarray],
    train_targets: Sequence[np.ndarray],
    x_val: np.ndarray,
    y_val: np.ndarray,
    y_mean: np.ndarray,
    y_std: np.ndarray,
    settings: FitSettings,
    log: Log,
) -> float:
    """HEST protocol: standardise, PCA, ridge, folded into one Linear.

    Alpha is chosen on the validation sections (``alpha_from="val"``, 1.0.0 / 1.1.0) or by
    leave-one-section-out over the training sections (``"loso"``: validation untouched).
    """
    member.eval()

    def features(images: np.ndarray) -> np.ndarray:
        inputs = _normalise(torch.from_numpy(images))
        with torch.inference_mode():
            return (
                _batched(
                    lambda b: member.raw_features(
                        *split_views(b, settings.fine_px, settings.context_px)
                    ),
                    inputs,
                )
                .double()
                .numpy()
            )

    per_section = [features(w) for w in train_windows]
    train_f, y = np.concatenate(per_section), np.concatenate(train_targets)
    mean, std = train_f.mean(0), train_f.std(0) + 1e-6
    zs = (train_f - mean) / std
    _, _, vt = np.linalg.svd(zs, full_matrices=False)
    components = vt[: min(settings.max_components, vt.shape[0])].T
    pz = zs @ components

    def solve(alpha: float) -> np.ndarray:
        return np.linalg.solve(pz.T @ pz + alpha * np.eye(pz.shape[1]), pz.T @ y)

    if settings.alpha_from == "loso":
        from omicslens.models.expression.wide import leave_one_section_out

        scores = leave_one_section_out(
            per_section, list(train_targets), settings.alphas, settings.max_components
        )
        for alpha, r in scores.items():
            log(f"  stain-texture ridge alpha {alpha:g}: leave-one-section-out r {r:.3f}")
        alpha = max(scores, key=lambda a: scores[a])
    elif settings.alpha_from == "val":
        pv = ((features(x_val) - mean) / std) @ components
        best: tuple[float, float] | None = None
        for candidate in settings.alphas:
            predicted = (pv @ solve(candidate)) * y_std + y_mean
            r = float(np.nanmean(pearson_per_column(predicted, y_val)))
            log(f"  stain-texture ridge alpha {candidate:g}: validation r {r:.3f}")
            if best is None or r > best[0]:
                best = (r, candidate)
        assert best is not None
        alpha = best[1]
    else:
        raise ValueError(f"alpha_from must be 'val' or 'loso', not {settings.alpha_from!r}")
    folded = components @ solve(alpha)  # features (standardised) -> standardised genes
    member.feature_mean.copy_(torch.from_numpy(mean).float())
    member.feature_std.copy_(torch.from_numpy(std).float())
    with torch.no_grad():
        member.head.weight.copy_(torch.from_numpy(folded.T).float())
        member.head.bias.zero_()
    return float(alpha)


# -- bundle ----------------------------------------------------------------------------
def write_bundle(
    net: ExpressionNet,
    report: FitReport,
    folder: str | Path,
    *,
    name: str,
    version: str,
    training_data: dict[str, Any],
    citation: str | None = None,
    description: str | None = None,
    uncertainty: bool = True,
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (atomic writes) and return the folder.

    Each gene's output records its validation Pearson and its training mean and SD (gene
    set scores standardise with them). With ``uncertainty`` (and more than one member) a
    last output ``ensemble_sd`` carries the members' disagreement per tile.
    """
    from safetensors.torch import save

    folder = Path(folder)
    settings = report.settings
    window_px = int(settings["window_px"])
    spacing = float(settings["window_um"]) / window_px
    members: list[dict[str, Any]] = [
        {"kind": "cnn", "width": settings["width"]}
        if isinstance(member, CNNMember)
        else {"kind": "stain-texture"}
        for member in net.members
    ]
    mean = net.target_mean.tolist()
    std = net.target_std.tolist()
    outputs: list[dict[str, Any]] = [
        {
            "name": gene,
            "kind": "gene",
            "pearson": _rounded(report.pearson["ensemble"][position]),
            "train_mean": round(mean[position], 5),
            "train_std": round(std[position], 5),
        }
        for position, gene in enumerate(report.genes)
    ]
    names = list(report.genes)
    uncertainty = uncertainty and len(members) > 1
    if uncertainty:
        outputs.append(
            {
                "name": "ensemble_sd",
                "kind": "uncertainty",
                "description": "SD of the members' standardised predictions, "
                "mean over genes (higher = less certain)",
            }
        )
        names.append("ensemble_sd")
    config = {
        "spec_version": "1.0",
        "name": name,
        "version": version,
        "description": description or "Predicted spatial gene expression (log1p normalised counts)",
        "architecture": "omicslens-expression",
        "architecture_args": {
            "members": members,
            "fine_px": settings["fine_px"],
            "context_px": settings["context_px"],
            "uncertainty_output": uncertainty,
            "predicting_members": list(net.predicting_members),
        },
        "num_classes": len(names),
        "class_names": names,
        "patch_size_pixels": window_px,
        "spacing_um_px": round(spacing, 6),
        "tile_size_um": settings["tile_um"],
        "transform": [
            {"name": "Resize", "arguments": {"size": window_px}},
            {"name": "ToTensor"},
            {"name": "Normalize", "arguments": {"mean": list(MEAN), "std": list(STD)}},
        ],
        "task": "regression",
        "output_transform": "log1p",
        "outputs": outputs,
        "validation": {
            "metric": "Pearson r per gene at measured spots",
            "mean_pearson": {k: round(v, 4) for k, v in report.mean_pearson.items()},
            "ridge_alpha": report.alpha,
            "train_spots": report.train_spots,
            "val_spots": report.val_spots,
            **({"leave_one_section_out": report.loso} if report.loso else {}),
        },
        "training": {**training_data, "settings": settings, "seconds": round(report.seconds)},
        "citation": citation,
        "weights": "model.safetensors",
    }
    state = {key: value.detach().contiguous() for key, value in net.state_dict().items()}
    write_bytes_atomic(folder / "model.safetensors", save(state))
    write_text_atomic(folder / "config.json", json.dumps(config, indent=2) + "\n")
    return folder


def _rounded(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)
