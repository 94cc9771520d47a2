"""Make a convolutional model faster on the CPU without changing what it predicts.

On a CPU, PyTorch's eager convolutions in the default (NCHW) layout are the slow path.
Two rewrites keep the arithmetic and speed it up. Both were measured on the bundled
HER2ST expression model (3 small CNNs, batch 16, 2 threads; docs/benchmarks.md):

``frozen``
    trace the network on a batch of the size it will see, freeze it (weights become
    constants, batch norm folds into the convolutions) and let
    ``torch.jit.optimize_for_inference`` pick oneDNN kernels: 2.4x eager.
``channels-last``
    the eager model with its weights and inputs in NHWC: about 2x eager. The fallback
    when a model cannot be traced or frozen.

Neither is trusted blindly: the rewritten model runs on a second random batch (not the
one it was traced on: a trace bakes in whatever Python branches that batch took) next to
the eager one, and it is used only if every output agrees within :data:`TOLERANCE` (the
rewrites reorder floating-point sums, so the last bits differ: 5e-7 measured on the
bundled model). Otherwise the eager model is kept, and :class:`Acceleration` says why.

Only CPU fp32 models with more than one convolution are rewritten: on CUDA the Predictor
uses channels-last itself, transformers gain nothing from either rewrite, and autocast
would be baked into a trace.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

#: outputs of a rewritten model must agree with eager within atol + rtol * |eager|
TOLERANCE = (1e-4, 1e-4)
MODES = ("auto", "frozen", "channels-last", "eager")


@dataclass(frozen=True)
class Acceleration:
    """Which rewrite a Predictor runs, and why (shown by ``omicslens model check``)."""

    #: "frozen", "channels-last" or "eager"
    mode: str
    #: largest |rewritten - eager| on the check batch (0 for eager)
    max_abs_difference: float = 0.0
    #: why a faster mode was not used ("" when the requested one is in use)
    reason: str = ""

    @property
    def channels_last_input(self) -> bool:
        return self.mode == "channels-last"


def accelerate(
    model: nn.Module, example: torch.Tensor, mode: str = "auto"
) -> tuple[nn.Module, Acceleration]:
    """The fastest checked rewrite of eval-mode ``model`` for batches shaped like ``example``.

    ``mode``: ``"auto"`` tries frozen, then channels-last; a named mode tries only
    that one; ``"eager"`` returns the model untouched. Never raises for a model that
    cannot be rewritten: the eager model comes back with the reason.
    """
    if mode not in MODES:
        raise ValueError(f"unknown acceleration {mode!r}: use one of {list(MODES)}")
    if mode == "eager":
        return model, Acceleration("eager")
    check = _check_batch(example)
    with torch.inference_mode():
        reference = model(check)
    if not isinstance(reference, torch.Tensor):
        return model, Acceleration("eager", reason="model does not return one tensor")
    candidates = ("frozen", "channels-last") if mode == "auto" else (mode,)
    reasons = []
    for candidate in candidates:
        rewritten, failure = _try(candidate, model, example, check, reference)
        if rewritten is not None:
            return rewritten, failure
        reasons.append(f"{candidate}: {failure.reason}")
    return model, Acceleration("eager", reason="; ".join(reasons))


def _check_batch(example: torch.Tensor) -> torch.Tensor:
    generator = torch.Generator(device="cpu").manual_seed(20261203)
    values = torch.randn(example.shape, generator=generator)
    return values.to(device=example.device, dtype=example.dtype)


def _try(
    mode: str,
    model: nn.Module,
    example: torch.Tensor,
    check: torch.Tensor,
    reference: torch.Tensor,
) -> tuple[nn.Module | None, Acceleration]:
    rewrite: Callable[[nn.Module, torch.Tensor], nn.Module]
    rewrite = _frozen if mode == "frozen" else _channels_last
    try:
        with warnings.catch_warnings():
            # torch >= 2.9 deprecates TorchScript and warns on every trace; tracer
            # warnings about Python branches on shapes are expected (shapes are fixed).
            warnings.simplefilter("ignore")
            rewritten = rewrite(model, example)
            batch = check
            if mode == "channels-last":
                batch = check.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                output = rewritten(batch)
    except Exception as error:  # tracing/freezing fails in many model-specific ways
        return None, Acceleration(mode, reason=f"{type(error).__name__}: {error}"[:300])
    if not isinstance(output, torch.Tensor) or output.shape != reference.shape:
        return None, Acceleration(mode, reason="rewritten model changed the output shape")
    difference = (output.float() - reference.float()).abs()
    atol, rtol = TOLERANCE
    if not torch.all(difference <= atol + rtol * reference.float().abs()):
        return None, Acceleration(
            mode, float(difference.max()), reason=f"outputs differ by {float(difference.max()):.3g}"
        )
    return rewritten, Acceleration(mode, float(difference.max()))


def _frozen(model: nn.Module, example: torch.Tensor) -> nn.Module:
    if isinstance(model, torch.jit.ScriptModule):
        scripted = model
    else:
        with torch.inference_mode(False), torch.no_grad():
            scripted = torch.jit.trace(model, example.clone(), check_trace=False)
    frozen = torch.jit.freeze(scripted.eval())
    return torch.jit.optimize_for_inference(frozen)


def _channels_last(model: nn.Module, example: torch.Tensor) -> nn.Module:
    del example
    return model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
