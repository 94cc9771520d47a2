"""How many reader threads feed the model: as many as its rate needs, no more.

Why: patches are decoded on the CPU. On a CPU the model and the readers share the same
cores, and two readers were measured best (docs/benchmarks.md, "Threads do not change
the CNN's result"): more would only take cores from the model. On a GPU the model no
longer competes for cores, and a ViT-B/16 in bf16 wants thousands of patches a second
while one reader thread decodes a few hundred, so a fixed two readers would leave the
GPU idle most of the time. There the count follows the two measured rates:
``ceil(HEADROOM * model rate / one reader's rate)``, at least two and at most all cores
but one (which stays for the model thread, the GUI and the writer).

The rates come from a short probe on the slide itself (a few real reads, two batches of
forward passes) when the session opens on an accelerator; see
:func:`measure_rates`. Nothing is measured on a CPU.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: readers on a CPU, and the least anywhere (one can wait on I/O while another decodes)
CPU_READERS = 2
#: readers decode this much faster than the model predicts, so a slow tile or a busy
#: core does not starve it
HEADROOM = 1.25
#: reads timed by the probe (one reader's rate)
PROBE_READS = 16


@dataclass(frozen=True)
class ReaderPlan:
    """The reader count a session uses, and the figures it was chosen from."""

    readers: int
    reason: str
    model_tiles_per_s: float | None = None  # None: not measured (CPU)
    reader_tiles_per_s: float | None = None  # one reader thread alone

    def as_dict(self) -> dict[str, object]:
        return {
            "readers": self.readers,
            "reason": self.reason,
            "model_tiles_per_s": self.model_tiles_per_s,
            "reader_tiles_per_s": self.reader_tiles_per_s,
        }


def usable_cores() -> int:
    """Cores this process may run on (its affinity where the OS says, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def cpu_plan() -> ReaderPlan:
    return ReaderPlan(
        CPU_READERS, f"{CPU_READERS} reader threads: on a CPU the model shares the cores"
    )


def plan_readers(
    model_tiles_per_s: float, reader_tiles_per_s: float, cores: int | None = None
) -> ReaderPlan:
    """Readers for a model on an accelerator, from the two measured rates."""
    if not (model_tiles_per_s > 0 and reader_tiles_per_s > 0):
        raise ValueError(
            f"rates must be positive, got model {model_tiles_per_s}, "
            f"reader {reader_tiles_per_s} tiles/s"
        )
    cores = usable_cores() if cores is None else cores
    most = max(CPU_READERS, cores - 1)
    needed = math.ceil(HEADROOM * model_tiles_per_s / reader_tiles_per_s)
    readers = min(max(needed, CPU_READERS), most)
    reason = (
        f"{readers} reader threads: the model takes {model_tiles_per_s:,.0f} tiles/s, one "
        f"reader decodes {reader_tiles_per_s:,.0f}; {needed} needed at {HEADROOM}x"
    )
    if needed > most:
        reason += f", capped at {most} ({cores} cores, one kept free): decoding bounds the rate"
    return ReaderPlan(readers, reason, model_tiles_per_s, reader_tiles_per_s)


def measure_rates(
    read_patch: Callable[[int], np.ndarray],
    predict_batch: Callable[[np.ndarray], np.ndarray],
    tiles: Sequence[int],
    batch_size: int,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, float]:
    """(model tiles/s, one reader's tiles/s) on ``tiles`` of the slide itself.

    The reads run one after another on this thread, so their rate is one reader's. The
    forward pass runs twice on a full batch made of those patches and the second run is
    timed: the first pays for warm-up (kernel selection, allocator growth).
    """
    tiles = list(tiles)[:PROBE_READS]
    if not tiles:
        raise ValueError("no tile to measure the read rate on")
    start = clock()
    patches = [read_patch(index) for index in tiles]
    read_s = clock() - start
    reps = math.ceil(batch_size / len(patches))
    batch = np.stack((patches * reps)[:batch_size])
    predict_batch(batch)
    start = clock()
    predict_batch(batch)
    predict_s = clock() - start
    tiny = 1e-9  # a clock that did not move still gives a finite, huge rate
    return len(batch) / max(predict_s, tiny), len(patches) / max(read_s, tiny)
