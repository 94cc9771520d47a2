"""Pick the compute device: best available by default, or exactly what the user asked for.

An explicit request that cannot be honoured is an error, never a silent CPU fallback:
a user who asked for the GPU and silently got a 50x slower CPU run would not know why.
"""

from __future__ import annotations

import torch

from omicslens.models.errors import DeviceError

_KNOWN = ("cpu", "cuda", "mps")


def choose_device(preference: str | torch.device | None = None) -> torch.device:
    """The device to run on.

    ``None`` or ``"auto"``: cuda > mps > cpu. Else exactly ``"cpu"``, ``"cuda"``,
    ``"cuda:N"`` or ``"mps"``, or a :class:`DeviceError` saying why it is unavailable.
    """
    if preference is None or (isinstance(preference, str) and preference.strip() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference.strip() if isinstance(preference, str) else preference)
    except (RuntimeError, ValueError, TypeError) as error:
        raise DeviceError(
            f"unknown device {preference!r}: use auto, cpu, cuda, cuda:N or mps"
        ) from error
    if device.type not in _KNOWN:
        raise DeviceError(f"device {preference!r} is not supported: use auto, cpu, cuda or mps")
    if device.type == "cuda":
        return _check_cuda(device, preference)
    if device.type == "mps" and not _mps_available():
        raise DeviceError("device 'mps' requested but Apple Metal (MPS) is not available here")
    return device


def _check_cuda(device: torch.device, preference: object) -> torch.device:
    if not torch.cuda.is_available():
        build = (
            f"this torch ({torch.__version__}) is a CPU-only build"
            if torch.version.cuda is None
            else f"torch {torch.__version__} was built for CUDA {torch.version.cuda} "
            "but finds no usable GPU/driver"
        )
        raise DeviceError(
            f"device {str(preference)!r} requested but CUDA is not available: {build}"
        )
    count = torch.cuda.device_count()
    index = 0 if device.index is None else device.index
    if index >= count:
        raise DeviceError(
            f"device {str(preference)!r} requested but only {count} CUDA device(s) exist "
            f"(cuda:0..cuda:{count - 1})"
        )
    return torch.device("cuda", index)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
