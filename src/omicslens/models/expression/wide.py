"""New linear heads for thousands of genes on the frozen trunks of a trained bundle.

Why: a bundle fitted end to end (:mod:`.fit`) predicts the few genes it was trained on
(50 for the bundled HER2ST model), but users look up ERBB2, ESR1, MKI67, CD8A... Training
the CNNs again for a 1,000-gene panel on ~700 spots would cost an hour of CPU and gain
little: what the CNN trunks learned is a compact description of the morphology
(128 numbers per window), and each gene's expression is then a linear read-out of it.
So we keep every member's trunk exactly as trained (frozen; for the stain/texture member
the handcrafted features) and fit one new linear head per member with the HEST protocol:

1. features of every spot's window (the same window the engine reads around a tile), per
   member: the CNN's two pooled trunk outputs (before dropout and head) or the
   stain/texture features;
2. targets: log1p of counts normalised to 10^4 per spot, standardised with the training
   sections' mean and SD per gene (the network's ``target_mean``/``target_std``);
3. standardise the features, PCA to at most ``max_components``, ridge regression; the
   ridge alpha (one per member, shared by all genes) is chosen by **leave-one-section-out
   over the training sections** (default: the validation sections stay untouched) or,
   as :mod:`.fit` and HEST do, on the validation sections (``alpha_from="val"``);
4. standardisation, PCA and ridge are folded into the member's own ``head`` (weight and
   bias; for the stain/texture member its ``feature_mean``/``feature_std`` buffers), so
   the result is an ordinary :class:`ExpressionNet` state dict and bundle: the same
   architecture and members as the source, more outputs.

Caveat: the source trunks were trained on the same training sections (for the source's
genes), so features there fit better than they will on new tissue; leave-one-section-out
alpha therefore tends towards weaker shrinkage than an untouched patient would want. The
validation sections are the honest score either way (they were seen by neither the trunks
nor the heads; with ``alpha_from="val"`` they choose one number per member).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from omicslens.core.measured import highly_variable_genes, pearson_per_column
from omicslens.models.bundle import ModelBundle, load_bundle
from omicslens.models.errors import BundleError
from omicslens.models.expression.data import Section, cut_windows
from omicslens.models.expression.fit import FitReport, Log, _normalise
from omicslens.models.expression.net import CNNMember, ExpressionNet, StainTextureMember
from omicslens.models.expression.views import split_views
from omicslens.models.loading import load_model

#: Genes users look up first (breast cancer subtype, proliferation, immune, stroma).
MARKER_GENES = (
    "ERBB2",
    "ESR1",
    "PGR",
    "MKI67",
    "CD8A",
    "GRB7",
    "KRT19",
    "COL1A1",
    "PTPRC",
    "CD68",
    "FOXA1",
    "GATA3",
    "AR",
)


@dataclass
class HeadSettings:
    genes: int | list[str] = 1000
    extra_genes: Sequence[str] = MARKER_GENES
    alphas: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
    alpha_from: Literal["loso", "val"] = "loso"
    min_detected: float = 0.05  # extra genes: fraction of training spots with counts
    max_components: int = 256
    batch_size: int = 32
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in the report only


def choose_genes(
    train: Sequence[Section],
    genes: int | list[str],
    extra: Sequence[str],
    min_detected: float = 0.05,
) -> tuple[list[str], list[str], list[str]]:
    """(genes, extras added, extras skipped): HVGs of ``train`` (or ``genes``) plus each
    ``extra`` gene that every training section measures and that has counts in at least
    ``min_detected`` of the training spots (a gene seen in 1% of spots is not predictable,
    and its validation r would be noise)."""
    chosen = (
        list(genes)
        if isinstance(genes, list)
        else highly_variable_genes([s.measured for s in train], top=genes)
    )
    added, skipped = [], []
    spots = sum(section.measured.n_spots for section in train)
    for gene in extra:
        if gene in chosen or gene in added:
            continue
        indices = [section.measured.gene_index([gene])[0] for section in train]
        detected = sum(
            int((section.measured.counts[:, index] > 0).sum())
            for section, index in zip(train, indices, strict=True)
            if index >= 0
        )
        if min(indices) >= 0 and detected >= min_detected * spots and detected > 0:
            added.append(gene)
        else:
            skipped.append(gene)
    return [*chosen, *added], added, skipped


def member_features(
    member: torch.nn.Module, fine: torch.Tensor, context: torch.Tensor
) -> torch.Tensor:
    """What a member's head sees: CNN trunk outputs, or unstandardised stain/texture."""
    if isinstance(member, CNNMember):
        return torch.cat([member.fine(fine), member.context(context)], 1)
    if isinstance(member, StainTextureMember):
        return member.raw_features(fine, context)
    raise TypeError(f"no features for member {type(member).__name__}")


def window_features(
    net: ExpressionNet, windows: np.ndarray, batch_size: int = 32
) -> list[np.ndarray]:
    """Per member, (windows, features) float64 from uint8 NHWC windows (eval mode)."""
    net.eval()
    parts: list[list[np.ndarray]] = [[] for _ in net.members]
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            inputs = _normalise(torch.from_numpy(windows[start : start + batch_size]))
            fine, context = split_views(inputs, net.fine_px, net.context_px)
            for position, member in enumerate(net.members):
                parts[position].append(member_features(member, fine, context).double().numpy())
    return [np.concatenate(p) for p in parts]


@dataclass
class RidgeHead:
    """Standardise -> PCA -> ridge, as one affine map: ``z = (f - mean) / std``,
    prediction ``z @ weight`` (features -> standardised genes)."""

    mean: np.ndarray
    std: np.ndarray
    weight: np.ndarray  # (features, genes)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.std) @ self.weight


def fit_ridge(
    features: np.ndarray, targets: np.ndarray, alpha: float, max_components: int
) -> RidgeHead:
    """HEST protocol on (centred) ``targets``: standardise, PCA, ridge, folded."""
    mean, std = features.mean(0), features.std(0) + 1e-6
    z = (features - mean) / std
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    components = vt[: min(max_components, vt.shape[0])].T
    p = z @ components
    weights = np.linalg.solve(p.T @ p + alpha * np.eye(p.shape[1]), p.T @ targets)
    return RidgeHead(mean, std, components @ weights)


def leave_one_section_out(
    features: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    alphas: Sequence[float],
    max_components: int,
) -> dict[float, float]:
    """alpha -> mean over held-out sections of the mean per-gene Pearson r.

    Each fold refits standardisation, PCA and ridge on the other sections only.
    """
    if len(features) < 2:
        raise ValueError(
            "leave-one-section-out needs at least two training sections "
            "(or choose alpha on the validation sections: --alpha-from val)"
        )
    scores: dict[float, list[float]] = {alpha: [] for alpha in alphas}
    for held in range(len(features)):
        x = np.concatenate([f for i, f in enumerate(features) if i != held])
        y = np.concatenate([t for i, t in enumerate(targets) if i != held])
        y = y - y.mean(0)
        for alpha in alphas:
            head = fit_ridge(x, y, alpha, max_components)
            r = pearson_per_column(head.predict(features[held]), targets[held])
            scores[alpha].append(float(np.nanmean(r)))
    return {alpha: float(np.mean(values)) for alpha, values in scores.items()}


def fit_wide_heads(
    source: ModelBundle | str | Path,
    train: Sequence[Section],
    val: Sequence[Section],
    settings: HeadSettings | None = None,
    log: Log = print,
) -> tuple[ExpressionNet, FitReport]:
    """The source bundle's members with new ridge heads for ``settings.genes``.

    Returns the network (trunks bit-identical to the source's) and a report whose
    ``settings`` are what :func:`.fit.write_bundle` needs; ``pearson`` is per member and
    for the ensemble on ``val``.
    """
    settings = settings or HeadSettings()
    started = time.monotonic()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    bundle = source if isinstance(source, ModelBundle) else load_bundle(source)
    config = bundle.config
    if config.architecture != "omicslens-expression":
        raise BundleError(
            bundle.path,
            f"--heads-from needs an 'omicslens-expression' bundle, got {config.architecture!r}",
        )
    specs = list(config.architecture_args.get("members", [{"kind": "cnn"}]))
    kinds = [spec["kind"] for spec in specs]
    widths = {int(spec.get("width", 16)) for spec in specs if spec["kind"] == "cnn"}
    cnn = kinds.count("cnn")
    if kinds != ["cnn"] * cnn + ["stain-texture"] * (len(kinds) - cnn) or len(widths) > 1:
        raise BundleError(bundle.path, f"unsupported member layout {specs}")
    if len(kinds) - cnn > 1:
        raise BundleError(bundle.path, "more than one stain-texture member")
    source_net = load_model(bundle)
    assert isinstance(source_net, ExpressionNet)
    genes, added, skipped = choose_genes(
        train, settings.genes, settings.extra_genes, settings.min_detected
    )
    log(
        f"{len(genes)} genes: {', '.join(genes[:8])}...; added {', '.join(added) or 'none'}"
        + (
            f"; skipped (not detected in {settings.min_detected:.0%} of the training spots): "
            + ", ".join(skipped)
            if skipped
            else ""
        )
    )
    window_px = config.patch_size_pixels
    window_um = window_px * config.spacing_um_px

    def section_data(section: Section) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        log(f"cutting {section.measured.n_spots} windows from {section.name}")
        windows = cut_windows(section, window_um, window_px)
        features = window_features(source_net, windows, settings.batch_size)
        return windows, features, section.measured.normalised(genes)

    # training windows are not needed after their features (about 0.3 MB each)
    train_data = [(np.empty(0), f, y) for _, f, y in map(section_data, train)]
    val_data = [section_data(section) for section in val]
    y_train = np.concatenate([d[2] for d in train_data]).astype(np.float64)
    y_val = np.concatenate([d[2] for d in val_data]).astype(np.float64)
    y_mean, y_std = y_train.mean(0), y_train.std(0) + 1e-6
    standardised = [(d[2] - y_mean) / y_std for d in train_data]
    x_val_windows = np.concatenate([d[0] for d in val_data])

    uncertainty = len(specs) > 1  # as write_bundle does: an ensemble_sd output
    net = ExpressionNet(
        len(genes) + int(uncertainty),
        members=specs,
        fine_px=source_net.fine_px,
        context_px=source_net.context_px,
        uncertainty_output=uncertainty,
    )
    trunk_state = {key: value for key, value in source_net.state_dict().items() if _is_trunk(key)}
    loaded = net.load_state_dict(trunk_state, strict=False)
    assert not loaded.unexpected_keys, loaded.unexpected_keys
    assert all(not _is_trunk(key) for key in loaded.missing_keys), loaded.missing_keys
    net.target_mean.copy_(torch.from_numpy(y_mean).float())
    net.target_std.copy_(torch.from_numpy(y_std).float())

    names = [f"{kind}-{position}" for position, kind in enumerate(kinds)]
    alphas: dict[str, float] = {}
    alpha_scores: dict[str, dict[str, float]] = {}
    for position, (member, name) in enumerate(zip(net.members, names, strict=True)):
        features = [d[1][position] for d in train_data]
        if settings.alpha_from == "loso":
            scores = leave_one_section_out(
                features, standardised, settings.alphas, settings.max_components
            )
        else:
            val_features = np.concatenate([d[1][position] for d in val_data])
            scores = {}
            for alpha in settings.alphas:
                head = fit_ridge(
                    np.concatenate(features),
                    np.concatenate(standardised),
                    alpha,
                    settings.max_components,
                )
                r = pearson_per_column(head.predict(val_features), y_val)
                scores[alpha] = float(np.nanmean(r))
        alpha = max(scores, key=lambda a: (scores[a], a))  # ties: stronger shrinkage
        alphas[name] = alpha
        alpha_scores[name] = {f"{a:g}": round(s, 4) for a, s in scores.items()}
        log(
            f"  {name}: alpha {alpha:g} ({settings.alpha_from}: "
            + ", ".join(f"{a:g} {s:.3f}" for a, s in scores.items())
            + ")"
        )
        head = fit_ridge(
            np.concatenate(features), np.concatenate(standardised), alpha, settings.max_components
        )
        fold_into(member, head)

    net.eval()
    with torch.inference_mode():
        members = torch.cat(
            [
                net.standardised(_normalise(torch.from_numpy(x_val_windows[i : i + 64])))
                for i in range(0, len(x_val_windows), 64)
            ],
            1,
        ).numpy()
    pearson: dict[str, list[float]] = {}
    for position, name in enumerate(names):
        r = pearson_per_column(members[position] * y_std + y_mean, y_val)
        pearson[name] = [float(v) for v in r]
    ensemble = members.mean(0) * y_std + y_mean
    pearson["ensemble"] = [float(v) for v in pearson_per_column(ensemble, y_val)]
    for name, values in pearson.items():
        log(f"{name}: mean Pearson on validation {np.nanmean(values):.3f}")
    unique = set(alphas.values())
    report = FitReport(
        genes=genes,
        pearson=pearson,
        mean_pearson={k: float(np.nanmean(v)) for k, v in pearson.items()},
        alpha=unique.pop() if len(unique) == 1 else None,
        train_spots=len(y_train),
        val_spots=len(y_val),
        seconds=time.monotonic() - started,
        settings={
            "genes": settings.genes,
            "extra_genes_added": added,
            "extra_genes_skipped": skipped,
            "extra_genes_min_detected": settings.min_detected,
            "window_um": window_um,
            "window_px": window_px,
            "tile_um": config.tile_size_um if config.tile_size_um else window_um,
            "fine_px": source_net.fine_px,
            "context_px": source_net.context_px,
            "cnn_members": cnn,
            "width": widths.pop() if widths else 16,
            "stain_texture_member": cnn < len(kinds),
            "heads": "ridge (HEST protocol: standardise, PCA, ridge) on frozen trunks",
            "heads_from": {
                "name": bundle.name,
                "version": config.raw.get("version"),
                "bundle_hash": bundle.bundle_hash,
            },
            "alpha_from": (
                "leave-one-section-out over the training sections"
                if settings.alpha_from == "loso"
                else "validation sections"
            ),
            "alphas": list(settings.alphas),
            "ridge_alpha": alphas,
            "alpha_scores": alpha_scores,
            "max_components": settings.max_components,
            "threads": settings.threads,
            **settings.extra,
        },
    )
    return net, report


def _is_trunk(key: str) -> bool:
    """State-dict keys copied unchanged from the source (everything but heads/targets)."""
    return (
        ".head." not in key
        and not key.startswith("target_")
        and not key.endswith((".feature_mean", ".feature_std"))
    )


def fold_into(member: torch.nn.Module, head: RidgeHead) -> None:
    """Write ``head`` into a member so that ``member(fine, context) == head.predict``."""
    weight = head.weight  # (features, genes), on standardised features
    with torch.no_grad():
        if isinstance(member, StainTextureMember):
            member.feature_mean.copy_(torch.from_numpy(head.mean).float())
            member.feature_std.copy_(torch.from_numpy(head.std).float())
            member.head.weight.copy_(torch.from_numpy(weight.T).float())
            member.head.bias.zero_()
        elif isinstance(member, CNNMember):
            scaled = weight / head.std[:, None]
            member.head.weight.copy_(torch.from_numpy(scaled.T).float())
            member.head.bias.copy_(torch.from_numpy(-(head.mean @ scaled)).float())
        else:
            raise TypeError(f"cannot fold a head into {type(member).__name__}")
