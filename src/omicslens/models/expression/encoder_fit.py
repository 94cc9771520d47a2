"""Expression from a frozen foundation-model encoder: the HEST-benchmark protocol.

Any embedding bundle whose weights are on disk (H-optimus-0, UNI, a DinoBloom-style or
our own encoder; TorchScript, safetensors or a timm architecture with local weights) is
run on spot-centred windows of its own input size and spacing; a head is fitted on the
embeddings exactly as HEST does (standardise, PCA to at most 256 components, ridge with
alpha chosen on the validation sections) and folded into one matrix. The result is saved
as a TorchScript bundle (encoder + head in one graph), so it runs anywhere without the
encoder's Python code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from omicslens.core.atomic import write_text_atomic
from omicslens.core.measured import highly_variable_genes, pearson_per_column
from omicslens.models.bundle import ModelBundle, load_bundle
from omicslens.models.errors import BundleError
from omicslens.models.expression.data import Section, cut_windows
from omicslens.models.expression.fit import FitReport, Log
from omicslens.models.loading import load_model
from omicslens.models.predictor import Predictor


class EncoderRidge(nn.Module):
    """encoder -> standardise -> linear (PCA and ridge folded) -> log1p expression."""

    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __init__(
        self,
        encoder: nn.Module,
        feature_mean: torch.Tensor,
        feature_std: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.train_mean = np.zeros(weight.shape[0])  # per-gene training statistics, set by
        self.train_std = np.ones(weight.shape[0])  # the fit (for gene-set standardisation)
        self.register_buffer("feature_mean", feature_mean)
        self.register_buffer("feature_std", feature_std)
        self.head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(weight)
            self.head.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        return self.head((features - self.feature_mean) / self.feature_std)


def fit_with_encoder(
    train: Sequence[Section],
    val: Sequence[Section],
    encoder: ModelBundle | str | Path,
    genes: int | list[str] = 50,
    alphas: Sequence[float] = (0.1, 1.0, 10.0, 100.0, 1000.0),
    max_components: int = 256,
    log: Log = print,
) -> tuple[EncoderRidge, FitReport, ModelBundle]:
    started = time.monotonic()
    bundle = encoder if isinstance(encoder, ModelBundle) else load_bundle(encoder)
    if bundle.config.task != "embedding":
        raise BundleError(
            bundle.path, f"an encoder bundle needs task 'embedding', got {bundle.config.task!r}"
        )
    predictor = Predictor(bundle)
    chosen = (
        list(genes)
        if isinstance(genes, list)
        else highly_variable_genes([s.measured for s in train], top=genes)
    )
    window_px = bundle.config.patch_size_pixels
    window_um = window_px * bundle.config.spacing_um_px

    def embed(sections: Sequence[Section]) -> tuple[np.ndarray, np.ndarray]:
        features, targets = [], []
        for section in sections:
            log(f"embedding {section.measured.n_spots} spots of {section.name} with {bundle.name}")
            features.append(predictor.predict(cut_windows(section, window_um, window_px)))
            targets.append(section.measured.normalised(chosen))
        return np.concatenate(features).astype(np.float64), np.concatenate(targets)

    x, y = embed(train)
    xv, yv = embed(val)
    mean, std = x.mean(0), x.std(0) + 1e-6
    y_mean = y.mean(0)
    zs, zv = (x - mean) / std, (xv - mean) / std
    _, _, vt = np.linalg.svd(zs, full_matrices=False)
    components = vt[: min(max_components, vt.shape[0])].T
    pz, pv = zs @ components, zv @ components
    best: tuple[float, float, np.ndarray] | None = None
    for alpha in alphas:
        weights = np.linalg.solve(pz.T @ pz + alpha * np.eye(pz.shape[1]), pz.T @ (y - y_mean))
        r = float(np.nanmean(pearson_per_column(pv @ weights + y_mean, yv)))
        log(f"  ridge alpha {alpha:g}: validation r {r:.3f}")
        if best is None or r > best[0]:
            best = (r, alpha, weights)
    assert best is not None
    _, alpha, weights = best
    folded = components @ weights  # (features, genes)
    model = EncoderRidge(
        load_model(bundle),
        torch.from_numpy(mean).float(),
        torch.from_numpy(std).float(),
        torch.from_numpy(folded.T).float(),
        torch.from_numpy(y_mean).float(),
    ).eval()
    model.train_mean = y_mean.astype(float)
    model.train_std = y.std(0).astype(float)
    pearson = pearson_per_column(pv @ weights + y_mean, yv)
    report = FitReport(
        genes=chosen,
        pearson={"encoder-ridge": [float(v) for v in pearson]},
        mean_pearson={"encoder-ridge": float(np.nanmean(pearson))},
        alpha=float(alpha),
        train_spots=len(x),
        val_spots=len(xv),
        seconds=time.monotonic() - started,
        settings={
            "encoder": bundle.name,
            "encoder_hash": bundle.bundle_hash,
            "max_components": max_components,
            "alphas": list(alphas),
        },
    )
    return model, report, bundle


def write_encoder_bundle(
    model: EncoderRidge,
    report: FitReport,
    encoder: ModelBundle,
    folder: str | Path,
    *,
    name: str,
    version: str,
    training_data: dict[str, Any],
    citation: str | None = None,
) -> Path:
    """TorchScript (encoder + head traced together) + config.json, written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    size = encoder.config.patch_size_pixels
    example = torch.zeros(1, 3, size, size)
    with torch.inference_mode():
        traced = torch.jit.trace(model, example, check_trace=False)
    temporary = folder / ".torchscript_model.pt.tmp"
    torch.jit.save(traced, str(temporary))
    temporary.replace(folder / "torchscript_model.pt")
    config = dict(encoder.config.raw)
    for key in ("outputs", "apply_softmax", "weights", "architecture_args"):
        config.pop(key, None)
    config.update(
        {
            "name": name,
            "version": version,
            "description": f"Predicted expression (log1p) from {encoder.name} embeddings + ridge",
            "num_classes": len(report.genes),
            "class_names": report.genes,
            "task": "regression",
            "output_transform": "log1p",
            "outputs": [
                {
                    "name": gene,
                    "kind": "gene",
                    "pearson": None if not np.isfinite(r) else round(r, 4),
                    "train_mean": round(float(model.train_mean[i]), 5),
                    "train_std": round(float(model.train_std[i]), 5),
                }
                for i, (gene, r) in enumerate(
                    zip(report.genes, report.pearson["encoder-ridge"], strict=True)
                )
            ],
            "validation": {
                "metric": "Pearson r per gene at measured spots",
                "mean_pearson": report.mean_pearson,
                "ridge_alpha": report.alpha,
                "train_spots": report.train_spots,
                "val_spots": report.val_spots,
            },
            "training": {**training_data, "settings": report.settings},
            "citation": citation,
            "weights": "torchscript_model.pt",
        }
    )
    write_text_atomic(folder / "config.json", json.dumps(config, indent=2) + "\n")
    return folder
