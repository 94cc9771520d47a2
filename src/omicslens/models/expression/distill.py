"""One CNN distilled from the bundled expression ensemble: the same maps, a third of the work.

Why: the bundled HER2ST model predicts with three CNNs, and the viewer's first screen of
the HER2ST sample is bound by their forward passes (docs/benchmarks.md). A single
student CNN of the same size is trained on the same training sections, against a mix of
the measured expression and the teacher ensemble's prediction on the *same augmented
window* (so every stain-jittered, flipped or turned copy is a new labelled example, and
the student learns the ensemble's smoother map rather than one seed's noise).

What it keeps from the teacher, unchanged: the genes, the target standardisation (so
the student's outputs are in the same log1p units), and the stain/texture witness member
(so ``ensemble_sd`` is still the disagreement between a CNN and the witness, the signal
that made 1.1.0's uncertainty rank errors). It predicts with the student only.

Nothing here is chosen on the validation sections: the mix (``TEACHER_WEIGHT``), the
epochs and the augmentation are those of the teacher's recipe, fixed before any run.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

import numpy as np
import torch

from omicslens.core.measured import pearson_per_column
from omicslens.models.expression.data import Section
from omicslens.models.expression.fit import (
    FitReport,
    FitSettings,
    Log,
    _batched,
    _normalise,
    _train_cnn,
    _windows_and_targets,
)
from omicslens.models.expression.net import CNNMember, ExpressionNet, StainTextureMember
from omicslens.models.expression.views import split_views

#: share of the loss on the teacher's prediction (the rest on the measured targets)
TEACHER_WEIGHT = 0.5


def _teacher_parts(teacher: ExpressionNet) -> tuple[list[CNNMember], StainTextureMember | None]:
    cnns = [teacher.members[i] for i in teacher.predicting_members]
    if not cnns or not all(isinstance(member, CNNMember) for member in cnns):
        raise ValueError("the teacher must predict with CNN members only")
    witnesses = [m for m in teacher.members if isinstance(m, StainTextureMember)]
    if len(witnesses) > 1:
        raise ValueError("the teacher has more than one stain/texture member")
    return cnns, witnesses[0] if witnesses else None  # type: ignore[return-value]


def distill_expression(
    teacher: ExpressionNet,
    genes: Sequence[str],
    train: Sequence[Section],
    val: Sequence[Section],
    settings: FitSettings | None = None,
    teacher_weight: float = TEACHER_WEIGHT,
    log: Log = print,
) -> tuple[ExpressionNet, FitReport]:
    """Train one student CNN on ``train`` from ``teacher`` and score it on ``val``.

    ``genes`` are the teacher's outputs without ``ensemble_sd``, in its order. Returns the
    student network (student CNN + the teacher's witness) and a report for ``write_bundle``.
    """
    settings = settings or FitSettings()
    started = time.monotonic()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    genes = list(genes)
    if len(genes) != teacher.target_mean.numel():
        raise ValueError(f"{len(genes)} genes for a teacher with {teacher.target_mean.numel()}")
    cnns, witness = _teacher_parts(teacher)
    width = cnns[0].fine.num_features // 4
    settings.width = width
    teacher.eval()

    def teach(fine: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return torch.stack([cnn(fine, context) for cnn in cnns]).mean(0)

    train_windows, train_targets = _windows_and_targets(train, genes, settings, log)
    val_windows, val_targets = _windows_and_targets(val, genes, settings, log)
    mean = teacher.target_mean.numpy()
    std = teacher.target_std.numpy()
    x_train = np.concatenate(train_windows)
    y_train = ((np.concatenate(train_targets) - mean) / std).astype(np.float32)
    student = CNNMember(len(genes), width=width)
    log(
        f"student: 1 CNN (width {width}) from {len(cnns)} teacher CNNs, teacher weight "
        f"{teacher_weight}"
    )
    _train_cnn(
        student,
        x_train,
        y_train,
        settings,
        seed=settings.seed,
        log=log,
        teacher=teach,
        teacher_weight=teacher_weight,
    )
    student.eval()
    members = [{"kind": "cnn", "width": width}]
    if witness is not None:
        members.append({"kind": "stain-texture"})
    net = ExpressionNet(
        len(genes) + (1 if witness is not None else 0),
        members=members,
        fine_px=teacher.fine_px,
        context_px=teacher.context_px,
        uncertainty_output=witness is not None,  # ensemble_sd, as write_bundle declares
        predicting_members=[0],
    )
    net.members[0].load_state_dict(student.state_dict())
    if witness is not None:
        net.members[1].load_state_dict(copy.deepcopy(witness.state_dict()))
    net.target_mean.copy_(teacher.target_mean)
    net.target_std.copy_(teacher.target_std)
    net.eval()

    x_val = _normalise(torch.from_numpy(np.concatenate(val_windows)))
    y_val = np.concatenate(val_targets)
    scale, shift = net.target_std, net.target_mean

    def member_alone(position: int) -> Callable[[torch.Tensor], torch.Tensor]:
        def run(batch: torch.Tensor) -> torch.Tensor:
            views = split_views(batch, net.fine_px, net.context_px)
            return net.members[position](*views) * scale + shift

        return run

    # named as fit_expression names them ("cnn-0", "stain-texture-1", "ensemble"), so a
    # distilled report reads like any other; "teacher" is the ensemble it was taught by
    runs: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [
        (f"{members[i]['kind']}-{i}", member_alone(i)) for i in range(len(members))
    ]
    runs += [("teacher", teacher), ("ensemble", net)]
    pearson: dict[str, list[float]] = {}
    with torch.inference_mode():
        for name, function in runs:
            predicted = _batched(function, x_val).numpy()[:, : len(genes)]
            pearson[name] = [float(v) for v in pearson_per_column(predicted, y_val)]
    for name, values in pearson.items():
        log(f"{name}: mean Pearson on validation {np.nanmean(values):.3f}")
    recorded = asdict(settings)
    recorded["distilled"] = {"teacher_cnns": len(cnns), "teacher_weight": teacher_weight}
    report = FitReport(
        genes=genes,
        pearson=pearson,
        mean_pearson={k: float(np.nanmean(v)) for k, v in pearson.items()},
        alpha=None,
        train_spots=len(x_train),
        val_spots=len(y_val),
        seconds=time.monotonic() - started,
        settings=recorded,
    )
    return net, report
