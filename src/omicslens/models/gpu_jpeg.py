"""JPEG decoding on the GPU (nvImageCodec, or torchvision's nvJPEG decoder), batched.

Why: on a GPU the model is no longer what limits a whole-slide run; decoding the JPEG
tiles on the CPU is (about 2.8 ms of CPU per 224 px patch here, so a ViT-B/16 in bf16
would need a dozen cores of decoding to stay busy). A GPU decoder takes that work off
the cores. It is offered to the slide through ``core/stream_decode.py``, which switches a
level only where its decode agrees with tifffile's on the level's most detailed tiles,
and the tiles come back to host memory (through one pinned buffer per batch) because the
decoded-tile cache, the patch assembly and the tile stitching are shared with the CPU
path.

Which library: nvImageCodec first (NVIDIA's current decoder, hardware JPEG engines on
A100/H100), else torchvision's ``decode_jpeg(device="cuda")``. Neither is a dependency:
torchvision from PyPI does not import beside the pinned CPU torch, and both need CUDA.
:func:`find_gpu_jpeg` says which one it found or why it found none; nothing here was
measured on a GPU (no session has had one): ``omicslens bench gpu`` measures it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from omicslens.core.batch_decode import BatchingDecoder
from omicslens.core.errors import OmicsLensError
from omicslens.core.slide import Slide
from omicslens.core.stream_decode import (
    DECODE_CHOICES,
    DecodePlan,
    cpu_decode_plan,
    install_stream_decoder,
    remove_stream_decoder,
)


class GpuJpegUnavailable(OmicsLensError, RuntimeError):
    """GPU JPEG decoding was asked for (``--decode gpu``) and cannot be had here."""


@dataclass(frozen=True)
class GpuJpegBackend:
    """``decode_batch(streams) -> tiles`` (host arrays, HWC uint8) on one CUDA device."""

    name: str
    decode_batch: Callable[[list[bytes]], Sequence[np.ndarray]]


def find_gpu_jpeg(device: torch.device | str) -> tuple[GpuJpegBackend | None, str]:
    """The batched GPU JPEG decoder for ``device``, or None and why there is none."""
    device = torch.device(device)
    if device.type != "cuda":
        return None, f"the model runs on {device.type}, so JPEG tiles are decoded on the CPU"
    if not torch.cuda.is_available():
        return None, "CUDA is not available"
    problems: list[str] = []
    for finder in (_nvimgcodec, _torchvision):
        backend, problem = finder(device)
        if backend is not None:
            return backend, f"{backend.name} on {device}"
        problems.append(problem)
    return None, "no GPU JPEG decoder: " + "; ".join(problems)


def _to_host(images: list[torch.Tensor]) -> list[np.ndarray]:
    """HWC uint8 CUDA tensors -> host arrays, through one pinned buffer when they stack."""
    if images and all(image.shape == images[0].shape for image in images):
        stacked = torch.stack(images)
        host = torch.empty(stacked.shape, dtype=stacked.dtype, pin_memory=True)
        host.copy_(stacked, non_blocking=True)
        torch.cuda.current_stream(stacked.device).synchronize()
        array = host.numpy()  # keeps ``host`` alive while any tile is referenced
        return [array[i] for i in range(len(images))]
    return [image.cpu().numpy() for image in images]


def _torchvision(device: torch.device) -> tuple[GpuJpegBackend | None, str]:
    try:
        io = importlib.import_module("torchvision.io")
    except Exception as error:  # ImportError, or its operators not matching this torch
        return None, f"torchvision does not import ({type(error).__name__}: {error})"
    decode_jpeg = io.decode_jpeg
    unchanged = io.ImageReadMode.UNCHANGED

    def decode_batch(streams: list[bytes]) -> list[np.ndarray]:
        data = [torch.frombuffer(bytearray(stream), dtype=torch.uint8) for stream in streams]
        chw = decode_jpeg(data, mode=unchanged, device=device)
        return _to_host([image.permute(1, 2, 0) for image in chw])

    return GpuJpegBackend("torchvision nvJPEG", decode_batch), ""


def _nvimgcodec(device: torch.device) -> tuple[GpuJpegBackend | None, str]:
    try:
        nvimgcodec = importlib.import_module("nvidia.nvimgcodec")
    except Exception as error:
        return None, f"nvImageCodec does not import ({type(error).__name__}: {error})"
    index = device.index if device.index is not None else torch.cuda.current_device()
    decoder = nvimgcodec.Decoder(device_id=index)

    def decode_batch(streams: list[bytes]) -> list[np.ndarray]:
        images = decoder.decode(list(streams))
        if any(image is None for image in images):
            raise RuntimeError("nvImageCodec could not decode a tile of the batch")
        # HWC on the device, through __cuda_array_interface__ (no copy)
        return _to_host([torch.as_tensor(image, device=device) for image in images])

    return GpuJpegBackend("nvImageCodec", decode_batch), ""


@dataclass
class SlideDecoding:
    """The decoder a session's slide uses: the plan, and the batcher to close."""

    plan: DecodePlan
    batcher: BatchingDecoder | None = None

    def close(self, slide: Slide) -> None:
        if self.batcher is not None:
            remove_stream_decoder(slide, self.batcher.decode)
            self.batcher.close()
            self.batcher = None


def set_up_decoding(
    slide: Slide,
    device: torch.device | str,
    mode: str = "auto",
    backend: GpuJpegBackend | None = None,
) -> SlideDecoding:
    """Offer ``slide``'s JPEG levels to the GPU decoder (``backend``, else the one
    :func:`find_gpu_jpeg` finds) per ``mode``; see ``core/stream_decode.py`` for the check
    a level must pass. ``mode="gpu"`` raises :class:`GpuJpegUnavailable` when no level
    could be switched."""
    if mode not in DECODE_CHOICES:
        raise ValueError(f"decode must be one of {', '.join(DECODE_CHOICES)}, got {mode!r}")
    if mode == "cpu":
        return SlideDecoding(cpu_decode_plan("tifffile on the CPU, as asked (--decode cpu)"))
    reason = "given by the caller"
    if backend is None:
        backend, reason = find_gpu_jpeg(device)
    if backend is None:
        if mode == "gpu":
            raise GpuJpegUnavailable(f"{slide.path.name}: GPU JPEG decoding asked for: {reason}")
        return SlideDecoding(cpu_decode_plan(reason))
    batcher = BatchingDecoder(backend.decode_batch, name=backend.name)
    plan = install_stream_decoder(slide, batcher.decode, backend.name)
    if not plan.switched:
        batcher.close()
        if mode == "gpu":
            reasons = "; ".join(f"level {level.level}: {level.reason}" for level in plan.levels)
            raise GpuJpegUnavailable(
                f"{slide.path.name}: GPU JPEG decoding asked for, but no level can use "
                f"{backend.name}: {reasons}"
            )
        return SlideDecoding(plan)
    return SlideDecoding(plan, batcher)
