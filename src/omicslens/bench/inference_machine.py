"""Where the inference benchmark runs: the machine's facts and whether there is a display.

Split out of :mod:`omicslens.bench.inference` because they describe the machine, not the
benchmark; :func:`has_display` is also what :mod:`omicslens.bench.first_screen` asks
before it opens a viewer.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import psutil
import torch

from omicslens.bench import io as bench_io


def machine_info() -> dict[str, Any]:
    """The I/O benchmark's facts plus torch, its threads, the CPU model and any GPU."""
    import napari
    import PIL

    info = bench_io.machine_info()
    info.update(
        {
            "cpu_model": _cpu_model(),
            "torch": torch.__version__,
            "torch_threads_default": torch.get_num_threads(),
            "torch_parallel_backend": "OpenMP" if torch.backends.openmp.is_available() else "?",
            "env": {
                name: os.environ.get(name)
                for name in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
            },
            "napari": napari.__version__,
            "pillow": PIL.__version__,
            "psutil": psutil.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        }
    )
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
