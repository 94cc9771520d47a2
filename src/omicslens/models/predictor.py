"""Run a bundle on batches of RGB patches: uint8 numpy in, float32 numpy out.

The model is loaded and moved to the device once; each :meth:`Predictor.predict` call
uploads whole chunks of ``batch_size`` patches and preprocesses them on the device.

Threading: one ``Predictor`` belongs to one worker thread. It reuses a pinned staging
buffer between chunks (safe only because each chunk's results are copied back before
the next upload begins), and CUDA work is ordered per thread's current stream; two
threads sharing one instance would race on that buffer. Use one Predictor per thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from omicslens.models.accelerate import MODES, Acceleration, accelerate
from omicslens.models.bundle import ModelBundle, load_bundle
from omicslens.models.device import choose_device
from omicslens.models.domain import colour_features
from omicslens.models.errors import DeviceError, WeightsError
from omicslens.models.loading import load_model
from omicslens.models.preprocess import normalisation_tensors, to_model_input

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: environment variable that picks the CPU rewrite when no ``acceleration`` is given
ACCELERATION_ENV = "OMICSLENS_CPU_REWRITE"
# Defaults that keep memory modest for ViT-B-sized models; tune per GPU with batch_size.
DEFAULT_BATCH_SIZE = {"cuda": 64, "mps": 32, "cpu": 16}


class Predictor:
    """A bundle's model on one device, ready to predict.

    ``device``: see :func:`choose_device` (None = best available). ``precision``:
    ``"auto"`` is bf16 autocast on CUDA (fp16 on GPUs without bf16) and fp32 elsewhere;
    ``"fp32"`` disables autocast; ``"bf16"``/``"fp16"`` force that autocast dtype.
    Outputs are always returned as float32, and softmax is computed in float32.
    ``acceleration``: the CPU rewrite of a convolutional fp32 model (see
    :mod:`omicslens.models.accelerate`; ``"auto"``, ``"frozen"``, ``"channels-last"`` or
    ``"eager"``); None reads ``$OMICSLENS_CPU_REWRITE``, default ``"auto"``.
    """

    def __init__(
        self,
        bundle: ModelBundle | str | Path,
        device: str | torch.device | None = None,
        batch_size: int | None = None,
        precision: str = "auto",
        trust_code: bool = False,
        pad_batches: bool = True,
        acceleration: str | None = None,
    ) -> None:
        self.bundle = bundle if isinstance(bundle, ModelBundle) else load_bundle(bundle)
        #: the user chose to run TorchScript that calls file or process ops (recorded
        #: in the outputs of ``predict``)
        self.trust_code = trust_code
        self.device = choose_device(device)
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.precision = precision
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE.get(self.device.type, 16)
        #: run every chunk as a full ``batch_size`` batch (blank patches fill the rest):
        #: the kernels a library picks, and so the last bits of a result, depend on the
        #: batch's size (up to 1.5e-5 in log1p expression between a lone patch and a batch
        #: of 16, measured), never on the other patches in it. With padding, a tile's
        #: value is the same whichever tiles it was batched with, so a killed run that
        #: resumes writes the same numbers as an uninterrupted one.
        self.pad_batches = pad_batches
        model = load_model(self.bundle, trust_code=trust_code)
        convolutional = count_convs(model) > 1
        #: weights of the network (counted before a CPU rewrite folds them into constants)
        self.parameter_count = sum(p.numel() for p in model.parameters())
        # channels_last lets cuDNN pick its fastest conv kernels; transformers gain nothing.
        self.channels_last = self.device.type == "cuda" and convolutional
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        #: the CPU rewrite in use (see :mod:`omicslens.models.accelerate`)
        self.acceleration = Acceleration("eager", reason="not a CPU fp32 convolutional model")
        acceleration = acceleration or os.environ.get(ACCELERATION_ENV) or "auto"
        if acceleration not in MODES:
            raise DeviceError(
                f"unknown CPU rewrite {acceleration!r} (argument or {ACCELERATION_ENV}): "
                f"use one of {list(MODES)}"
            )
        if self.device.type == "cpu" and self.autocast_dtype is None and convolutional:
            model, self.acceleration = accelerate(
                model, self.example_batch(self.batch_size), acceleration
            )
        self.model: nn.Module = model
        config = self.bundle.config
        self._mean, self._std = normalisation_tensors(config.mean, config.std, self.device)
        self._staging: torch.Tensor | None = None

    # -- facts about the model ---------------------------------------------------------
    @property
    def output_names(self) -> tuple[str, ...]:
        return self.bundle.output_names

    @property
    def num_outputs(self) -> int:
        """Columns of :meth:`predict`: the model's, plus ``domain_distance`` if any."""
        return len(self.bundle.output_names)

    @property
    def patch_size(self) -> int:
        """Patch side in pixels at :attr:`spacing_um_px` (the tile grid to read)."""
        return self.bundle.config.patch_size_pixels

    @property
    def input_size(self) -> int:
        """Side of the image the network sees (after the bundle's Resize, if any)."""
        return self.bundle.config.input_size

    @property
    def spacing_um_px(self) -> float:
        return self.bundle.config.spacing_um_px

    @property
    def bundle_hash(self) -> str:
        return self.bundle.bundle_hash

    # -- prediction --------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, patches: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB patches -> (N, num_outputs) float32.

        Patches should be ``patch_size`` square at ``spacing_um_px``; other square sizes
        are resized on the device (bilinear, antialiased) to the network's input size.
        Softmax is applied iff the bundle says ``apply_softmax``; regression values stay
        in the model's output space (see ``output_transform``).
        """
        _check_patches(patches)
        results = [self._predict_chunk(chunk) for chunk in self._chunks(patches)]
        if not results:
            return np.empty((0, self.num_outputs), dtype=np.float32)
        return np.concatenate(results, axis=0)

    @torch.inference_mode()
    def predict_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """Model-only forward of an already normalised (N, 3, S, S) tensor on the device.

        For benchmarks that separate model time from the full pipeline: no upload, no
        preprocessing, no softmax; same autocast and memory format as :meth:`predict`.
        Returns float32 on the device (asynchronously on CUDA: synchronise to time it).
        """
        return self._forward(batch)

    def example_batch(self, n: int, seed: int = 0) -> torch.Tensor:
        """A random, already-normalised (n, 3, S, S) float32 batch on the device."""
        generator = torch.Generator(device="cpu").manual_seed(seed)
        batch = torch.randn(n, 3, self.input_size, self.input_size, generator=generator)
        return batch.to(self.device)

    # -- internals ---------------------------------------------------------------------
    def _chunks(self, patches: np.ndarray) -> Iterator[np.ndarray]:
        for start in range(0, len(patches), self.batch_size):
            yield np.ascontiguousarray(patches[start : start + self.batch_size])

    def _predict_chunk(self, chunk: np.ndarray) -> np.ndarray:
        count = len(chunk)
        if self.pad_batches and count < self.batch_size:
            blank = np.zeros((self.batch_size - count, *chunk.shape[1:]), dtype=chunk.dtype)
            chunk = np.concatenate([chunk, blank])
        return self._predict_full_chunk(chunk)[:count]

    def _predict_full_chunk(self, chunk: np.ndarray) -> np.ndarray:
        pixels = self._upload(chunk)
        if not self.channels_last:
            # Reorder the uint8 bytes to NCHW first (a cheap copy): the float passes of
            # to_model_input then run on contiguous memory and _forward copies nothing.
            # Same values; preprocessing takes about half the time on a CPU.
            pixels = pixels.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)
        batch = to_model_input(pixels, self.input_size, self._mean, self._std)
        output = self._forward(batch)
        if self.bundle.config.apply_softmax:
            output = torch.softmax(output, dim=1)
        domain = self.bundle.domain
        colour = colour_features(pixels) if domain is not None else None
        # .cpu() waits for the GPU, so the staging buffer is free for the next chunk.
        values = output.cpu().numpy().astype(np.float32, copy=False)
        if domain is None or colour is None:
            return values
        distance = domain.distance(colour.numpy(), values).astype(np.float32)
        return np.concatenate([values, distance[:, None]], axis=1)

    def _upload(self, chunk: np.ndarray) -> torch.Tensor:
        host = torch.from_numpy(chunk)
        if self.device.type != "cuda":
            return host.to(self.device)
        if (
            self._staging is None
            or self._staging.shape[1:] != host.shape[1:]
            or len(self._staging) < len(host)
        ):
            self._staging = torch.empty(
                (max(self.batch_size, len(host)), *host.shape[1:]),
                dtype=torch.uint8,
                pin_memory=True,
            )
        staged = self._staging[: len(host)]
        staged.copy_(host)
        return staged.to(self.device, non_blocking=True)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        channels_last = self.channels_last or self.acceleration.channels_last_input
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        batch = batch.contiguous(memory_format=memory_format)
        with self._autocast():
            output = self.model(batch)
        return self._check_output(output, len(batch)).float()

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _check_output(self, output: object, n: int) -> torch.Tensor:
        path = self.bundle.weights_path
        if not isinstance(output, torch.Tensor):
            raise WeightsError(path, f"model returned {type(output).__name__}, expected one tensor")
        expected = self.bundle.model_outputs
        if output.ndim == 1 and expected == 1:
            output = output.unsqueeze(1)
        if output.ndim != 2 or output.shape[0] != n or output.shape[1] != expected:
            raise WeightsError(
                path,
                f"model output has shape {tuple(output.shape)} for {n} patches, but "
                f"config.json declares num_classes={expected} "
                f"(expected ({n}, {expected}))",
            )
        return output


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32)."""
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}: use one of {list(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def count_convs(model: nn.Module) -> int:
    """Number of 2-D convolutions, for eager and TorchScript modules alike."""
    return sum(
        1
        for module in model.modules()
        if isinstance(module, nn.Conv2d) or getattr(module, "original_name", None) == "Conv2d"
    )


def _check_patches(patches: np.ndarray) -> None:
    if not isinstance(patches, np.ndarray):
        raise TypeError(f"patches must be a numpy array, got {type(patches).__name__}")
    if patches.dtype != np.uint8:
        raise ValueError(f"patches must be uint8 RGB, got dtype {patches.dtype}")
    if patches.ndim != 4 or patches.shape[-1] != 3:
        raise ValueError(f"patches must have shape (N, H, W, 3), got {patches.shape}")
    if patches.shape[1] != patches.shape[2]:
        raise ValueError(
            f"patches must be square (tiles of patch_size_pixels), got {patches.shape[1]}x"
            f"{patches.shape[2]}; resizing would distort them"
        )
