"""Part 1 of the inference benchmark: the whole pipeline against the model alone.

Split out of :mod:`omicslens.bench.inference`: the contestants (pipeline, model only,
decode only, predict without I/O), how each is timed (off the main thread, wall and CPU
seconds, the load of other processes) and the interleaved rounds that give one row of the
throughput table. The CLI and the other parts live in :mod:`omicslens.bench.inference`.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from omicslens.app.progress import run_job
from omicslens.app.tiles import predict_tiles
from omicslens.bench.inference_models import RATIO_TARGET, Log, ModelSpec
from omicslens.core import open_slide
from omicslens.core.store import PredictionStore
from omicslens.core.stream_decode import stream_usage
from omicslens.models.predictor import Predictor
from omicslens.models.session import InferenceSession


@dataclass
class _Clock:
    """Wall and process CPU seconds of one contestant, summed over rounds."""

    tiles: int = 0
    wall: float = 0.0
    cpu: float = 0.0

    def add(self, tiles: int, wall: float, cpu: float) -> None:
        self.tiles += tiles
        self.wall += wall
        self.cpu += cpu

    @property
    def rate(self) -> float:
        return self.tiles / self.wall if self.wall > 0 else 0.0

    @property
    def cpu_ms_per_tile(self) -> float:
        return self.cpu / self.tiles * 1e3 if self.tiles else 0.0


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Contestants:
    """The four ways of turning tiles into numbers, sharing one session and predictor."""

    def __init__(self, session: InferenceSession, readers: int, tensor_batches: int = 2):
        self.session = session
        self.predictor = session.predictor
        self.readers = readers
        self.pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="bench-read")
        bs = self.predictor.batch_size
        self.tensors = [self.predictor.example_batch(bs, seed=i) for i in range(tensor_batches)]
        self.patches: np.ndarray | None = None
        self.first_result_s: list[float] = []

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def pipeline(self, tiles: np.ndarray) -> None:
        """``request_all`` over exactly ``tiles`` with a fresh in-memory store."""
        session = self.session
        mask = np.zeros(session.grid.size, dtype=bool)
        mask[tiles] = True
        run = dataclasses.replace(
            session,
            tissue_tiles=mask.reshape(session.grid.shape),
            store=PredictionStore(session.grid, session.bundle.output_names),
        )
        first: list[float] = []
        start = time.perf_counter()

        def on_result(result: Any) -> None:
            if not first:
                first.append(time.perf_counter() - start)

        start = time.perf_counter()
        outcome = run_job(
            predict_tiles(run, tiles, readers=self.readers, poll_seconds=0.05, on_result=on_result)
        )
        if outcome.failures:
            raise RuntimeError(
                f"pipeline failed on {len(outcome.failures)} tiles: "
                f"{outcome.failures[0].describe()}"
            )
        if run.store.done_count != len(tiles):
            raise RuntimeError(f"pipeline predicted {run.store.done_count} of {len(tiles)} tiles")
        self.first_result_s += first

    def model(self, tiles: np.ndarray) -> None:
        """``predict_tensor`` on ready-made normalised batches: the model alone."""
        bs = self.predictor.batch_size
        for index in range(len(tiles) // bs):
            self.predictor.predict_tensor(self.tensors[index % len(self.tensors)])
        _synchronise(self.predictor.device)

    def decode(self, tiles: np.ndarray) -> None:
        """``read_patch`` alone on ``readers`` threads (the scheduler's reader pool)."""
        patches = list(self.pool.map(self.session.read_patch, tiles.tolist()))
        self.patches = np.stack(patches)

    def predict(self, tiles: np.ndarray) -> None:
        """``Predictor.predict`` on the decoded patches: upload, preprocess, model, copy."""
        assert self.patches is not None and len(self.patches) == len(tiles)
        self.predictor.predict(self.patches)


def _timed(fn: Callable[[np.ndarray], None], tiles: np.ndarray, clock: _Clock) -> float:
    """Run ``fn(tiles)`` on a fresh thread, as the scheduler runs its model on its own.

    Where the model runs matters on a busy CPU: torch's OpenMP team of the main thread
    and that of a worker thread do not behave alike when another process holds a core
    (see docs/benchmarks.md), so every contestant computes off the main thread.
    """
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn(tiles)
        except BaseException as error:  # re-raised on the calling thread
            errors.append(error)

    thread = threading.Thread(target=target, name="bench-contestant")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    thread.start()
    thread.join()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if errors:
        raise errors[0]
    clock.add(len(tiles), wall, cpu)
    return len(tiles) / wall


class _OtherLoad:
    """CPU used by other processes while we run, in cores (the machine is shared)."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.start()

    def start(self) -> None:
        self._sys = psutil.cpu_times()
        self._own = self.process.cpu_times()
        self._wall = time.perf_counter()

    def cores(self) -> float:
        sys_now, own_now = psutil.cpu_times(), self.process.cpu_times()
        busy = _busy(sys_now) - _busy(self._sys)
        own = (own_now.user + own_now.system) - (self._own.user + self._own.system)
        wall = time.perf_counter() - self._wall
        return max(0.0, (busy - own) / wall) if wall > 0 else 0.0


def _busy(times: Any) -> float:
    """CPU seconds spent running anything (guest time is already inside user time)."""
    fields = ("user", "nice", "system", "irq", "softirq")
    return sum(getattr(times, name, 0.0) for name in fields)


def bench_throughput(
    slide_path: Path,
    spec: ModelSpec,
    bundle: Path,
    *,
    device: str = "cpu",
    batch_size: int | None = None,
    precision: str = "auto",
    readers: int = 2,
    torch_threads: int | None = None,
    rounds: int = 8,
    round_seconds: float = 4.0,
    min_batches: int = 2,
    max_tiles_per_round: int | None = None,
    decode: str = "auto",
    log: Log | None = None,
) -> dict[str, Any]:
    """Pipeline vs model-only (and decode / predict for information) for one model.

    Each round takes the next tissue tiles of the slide, row by row, and every contestant
    processes those same tiles; the contestants' order rotates every round. A round's
    size comes from a one-batch calibration, so that the slower of pipeline and model
    needs about ``round_seconds`` (at least ``min_batches`` full batches).
    """
    log = log or (lambda message: None)
    previous_threads = torch.get_num_threads()
    if torch_threads:
        torch.set_num_threads(torch_threads)
    wall0 = time.perf_counter()
    try:
        slide = open_slide(slide_path)
        predictor = Predictor(bundle, device=device, batch_size=batch_size, precision=precision)
        session = InferenceSession.open(
            slide, predictor.bundle, cache=False, predictor=predictor, decode=decode
        )
        decode_plan = session.decode_plan.as_dict()
        contestants = _Contestants(session, readers)
        try:
            result = _run_rounds(
                session, contestants, rounds, round_seconds, min_batches, max_tiles_per_round, log
            )
            decode_plan["usage"] = stream_usage(slide)
        finally:
            contestants.close()
            session.close()
            slide.close()
    finally:
        threads_used = torch.get_num_threads()
        torch.set_num_threads(previous_threads)
    params = predictor.parameter_count
    return {
        "model": spec.name,
        "summary": spec.summary,
        "architecture": spec.architecture,
        "parameters": int(params),
        "patch_size": spec.patch_size,
        "spacing_um_px": spec.spacing,
        "device": str(predictor.device),
        "precision": "fp32" if predictor.autocast_dtype is None else str(predictor.autocast_dtype),
        "batch_size": predictor.batch_size,
        "torch_threads": threads_used,
        "readers": readers,
        "decode": decode,
        "decode_plan": decode_plan,
        "slide": str(slide_path),
        "grid": list(session.grid.shape),
        "wall_s": time.perf_counter() - wall0,
        **result,
    }


def _run_rounds(
    session: InferenceSession,
    contestants: _Contestants,
    rounds: int,
    round_seconds: float,
    min_batches: int,
    max_tiles_per_round: int | None,
    log: Log,
) -> dict[str, Any]:
    predictor = session.predictor
    bs = predictor.batch_size
    tissue = np.flatnonzero(session.tissue_tiles.ravel())
    cursor = len(tissue) // 4  # start a quarter into the slide, away from its edge

    def take(n: int) -> np.ndarray:
        nonlocal cursor
        if cursor + n > len(tissue):
            cursor = 0
        if n > len(tissue):
            raise ValueError(f"the slide has {len(tissue)} tissue tiles, {n} are needed")
        tiles = tissue[cursor : cursor + n]
        cursor += n
        return tiles

    # warm-up (not counted): weights in cache, allocator, codec tables, reader threads
    warm = take(bs)
    contestants.model(warm)
    contestants.pipeline(warm)
    contestants.decode(warm)
    contestants.predict(warm)
    contestants.first_result_s.clear()
    # calibration, one more batch each: size rounds so the slowest contestant (the
    # pipeline, or the model where decoding is cheap) takes about ``round_seconds``
    calibration = {name: _Clock() for name in ("model", "pipeline")}
    _timed(contestants.model, take(bs), calibration["model"])
    _timed(contestants.pipeline, take(bs), calibration["pipeline"])
    contestants.first_result_s.clear()
    slowest = min(clock.rate for clock in calibration.values())
    batches = max(min_batches, round(slowest * round_seconds / bs))
    tiles_per_round = batches * bs
    if max_tiles_per_round:
        tiles_per_round = max(bs, min(tiles_per_round, max_tiles_per_round // bs * bs))
    log(
        f"  calibration: model ~{calibration['model'].rate:.1f}, pipeline "
        f"~{calibration['pipeline'].rate:.1f} tiles/s: {rounds} rounds of {tiles_per_round} "
        f"tiles (batch {bs})"
    )
    other = _OtherLoad()
    clocks = {name: _Clock() for name in ("pipeline", "model", "decode", "predict")}
    runs: dict[str, Callable[[np.ndarray], None]] = {
        "pipeline": contestants.pipeline,
        "model": contestants.model,
        "decode": contestants.decode,
        "predict": contestants.predict,
    }
    order = ["pipeline", "model", "decode+predict"]
    per_round = []
    for index in range(rounds):
        tiles = take(tiles_per_round)
        shift = index % len(order)
        rates: dict[str, float] = {}
        for name in order[shift:] + order[:shift]:
            for part in name.split("+"):  # decode then predict, on the decoded patches
                rates[part] = _timed(runs[part], tiles, clocks[part])
        rates["ratio"] = rates["pipeline"] / rates["model"]
        per_round.append(rates)
        log(
            f"  round {index + 1}/{rounds}: pipeline {rates['pipeline']:.1f}, model "
            f"{rates['model']:.1f}, decode {rates['decode']:.1f}, predict "
            f"{rates['predict']:.1f} tiles/s (ratio {rates['ratio']:.3f})"
        )
    load = other.cores()
    rate = {name: clock.rate for name, clock in clocks.items()}
    ratio = rate["pipeline"] / rate["model"]
    ratios = [r["ratio"] for r in per_round]
    cpu = {name: clock.cpu_ms_per_tile for name, clock in clocks.items()}
    return {
        "rounds": rounds,
        "tiles_per_round": tiles_per_round,
        "pipeline_tiles_s": rate["pipeline"],
        "model_tiles_s": rate["model"],
        "decode_tiles_s": rate["decode"],
        "predict_tiles_s": rate["predict"],
        "ratio": ratio,
        "ratio_min_round": min(ratios),
        "ratio_max_round": max(ratios),
        "ratio_median_round": statistics.median(ratios),
        # CPU seconds per tile hardly depend on what else runs on the machine: on a CPU,
        # where both contestants use every core, this predicts the ratio with less noise
        "cpu_ratio": cpu["model"] / cpu["pipeline"] if cpu["pipeline"] > 0 else 0.0,
        "predict_ratio": rate["predict"] / rate["model"],
        "cpu_ms_per_tile": cpu,
        "first_batch_ms": statistics.median(contestants.first_result_s) * 1e3,
        "other_processes_cores": load,
        "per_round": per_round,
        "meets_target": ratio >= RATIO_TARGET,
    }
