"""Reader threads follow the model's measured rate on an accelerator; two on a CPU."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from omicslens.core.readers import (
    CPU_READERS,
    HEADROOM,
    PROBE_READS,
    cpu_plan,
    measure_rates,
    plan_readers,
)


def test_a_cpu_keeps_two_readers_and_measures_nothing() -> None:
    plan = cpu_plan()
    assert plan.readers == CPU_READERS == 2
    assert plan.model_tiles_per_s is None and "CPU" in plan.reason


def test_a_fast_gpu_model_gets_the_readers_its_rate_needs() -> None:
    # ViT-B/16 in bf16 on a large GPU against 350 patches/s per reader
    plan = plan_readers(model_tiles_per_s=3000, reader_tiles_per_s=350, cores=16)
    assert plan.readers == 11  # ceil(1.25 * 3000 / 350)
    assert plan.readers * plan.reader_tiles_per_s >= plan.model_tiles_per_s * HEADROOM * 0.99
    assert "11 reader threads" in plan.reason and "capped" not in plan.reason


def test_the_count_is_capped_at_all_cores_but_one_and_says_decoding_bounds_it() -> None:
    plan = plan_readers(model_tiles_per_s=20000, reader_tiles_per_s=350, cores=16)
    assert plan.readers == 15
    assert "capped at 15" in plan.reason and "decoding bounds" in plan.reason


def test_a_slow_model_still_gets_two_readers_and_a_small_machine_two() -> None:
    assert plan_readers(model_tiles_per_s=40, reader_tiles_per_s=350, cores=16).readers == 2
    assert plan_readers(model_tiles_per_s=3000, reader_tiles_per_s=350, cores=2).readers == 2


@pytest.mark.parametrize("rates", [(0.0, 350.0), (3000.0, 0.0), (float("nan"), 1.0)])
def test_rates_that_are_not_positive_are_refused(rates: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="rates must be positive"):
        plan_readers(*rates, cores=16)


def test_the_probe_times_serial_reads_and_the_second_of_two_forward_passes() -> None:
    ticks = itertools.count()
    clock = lambda: float(next(ticks))  # noqa: E731 - each call advances one second
    reads: list[int] = []
    batches: list[int] = []

    def read(index: int) -> np.ndarray:
        reads.append(index)
        return np.full((4, 4, 3), index, dtype=np.uint8)

    def predict(batch: np.ndarray) -> np.ndarray:
        batches.append(len(batch))
        return np.zeros((len(batch), 1), dtype=np.float32)

    model_rate, reader_rate = measure_rates(read, predict, range(100), batch_size=64, clock=clock)
    assert reads == list(range(PROBE_READS))  # only the first few tiles are read
    assert batches == [64, 64]  # a full batch, warm-up then timed
    assert reader_rate == PROBE_READS / 1.0  # one clock tick around all the reads
    assert model_rate == 64 / 1.0


def test_the_probe_needs_a_tile() -> None:
    with pytest.raises(ValueError, match="no tile"):
        measure_rates(lambda i: np.zeros((1, 1, 3), np.uint8), lambda b: b, [], batch_size=4)
