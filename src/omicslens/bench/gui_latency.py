"""GUI parts of the inference benchmark: a real napari viewer driven by a script.

Needs a display (``xvfb-run``); imported by :mod:`omicslens.bench.inference` only when
the ``gui`` or ``memory`` part runs. Everything here happens on the Qt main thread, in
a running Qt event loop (``QEventLoop.exec``), as in ``napari.run()``:

- **latency**: the camera jumps to a random place and zoom; we record when the overlay
  first receives a newly visible tile and when it holds every visible tissue tile. The
  path timed is the real one: napari's camera event, ``LiveInference``'s throttled
  planning, the scheduler (a small first batch for a new view), and the worker's
  signal that drains each finished batch into the overlay layer.
- **stall**: a 5 ms precise ``QTimer`` records its ticks while a whole-slide job runs;
  the largest gap between ticks is the longest the event loop was unable to run.
- **memory**: RSS (psutil) while the camera pans and zooms at random for a while,
  with ``LiveInference`` following the view and a prediction cache on disk.
"""

from __future__ import annotations

import contextlib
import gc
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from qtpy.QtCore import QEventLoop, Qt, QTimer

from omicslens._napari.layers import slide_layer_data
from omicslens._napari.live_inference import LiveInference, visible_rect
from omicslens.core import open_slide
from omicslens.models.session import InferenceSession

Log = Callable[[str], None]
#: Camera zoom (screen px per um) for the latency moves: 0.5 to 2 is about 5x to 20x
#: on a 0.5 um/px slide; drawn log-uniform.
LATENCY_ZOOM = (0.5, 2.0)
#: The memory run also zooms far out (many tiles planned, low pyramid levels drawn).
MEMORY_ZOOM = (0.1, 2.0)
WINDOW = (1400, 900)


def run_loop(seconds: float, until: Callable[[], bool] | None = None, poll_ms: int = 2) -> bool:
    """Run the Qt event loop for ``seconds`` or until ``until()``; True if it came true."""
    loop = QEventLoop()
    satisfied = [False]
    check = QTimer()
    check.setTimerType(Qt.TimerType.PreciseTimer)
    check.setInterval(poll_ms)

    def poll() -> None:
        if until is not None and until():
            satisfied[0] = True
            loop.quit()

    check.timeout.connect(poll)
    stop = QTimer()
    stop.setSingleShot(True)
    stop.timeout.connect(loop.quit)
    stop.start(max(1, int(seconds * 1000)))
    if until is not None:
        if until():
            return True
        check.start()
    loop.exec_()
    check.stop()
    stop.stop()
    return satisfied[0]


class _Bench:
    """One viewer with the slide; builds ``LiveInference`` instances on it."""

    def __init__(self, slide_path: Path, bundle: Path, log: Log) -> None:
        import napari

        self.log = log
        self.viewer = napari.Viewer(title="OmicsLens inference benchmark", show=True)
        self.viewer.window._qt_window.resize(*WINDOW)
        self.slide = open_slide(slide_path)
        data, kwargs, _ = slide_layer_data(self.slide)
        self.layer = self.viewer.add_image(data, **kwargs)
        self.bundle = bundle
        self.viewer.reset_view()
        run_loop(1.5)
        self.width_um = self.slide.dimensions[0] * self.slide.mpp_x
        self.height_um = self.slide.dimensions[1] * self.slide.mpp_y

    def live(self, cache: Path | bool) -> LiveInference:
        session = InferenceSession.open(self.slide, self.bundle, device="cpu", cache=cache)
        raster = session.store.raster(0)
        return LiveInference(self.viewer, self.layer, session, raster, follow_view=True)

    def drop(self, live: LiveInference) -> None:
        live.close()
        live.wait_closed(30.0)
        with contextlib.suppress(ValueError, KeyError):
            self.viewer.layers.remove(live.overlay.layer)
        run_loop(0.3)
        gc.collect()

    def random_view(self, rng: np.random.Generator, zoom_range: tuple[float, float]) -> Any:
        zoom = math.exp(rng.uniform(math.log(zoom_range[0]), math.log(zoom_range[1])))
        height, width = self.viewer.canvas.size
        half_w, half_h = width / zoom / 2, height / zoom / 2
        cx = rng.uniform(min(half_w, self.width_um / 2), max(self.width_um - half_w, 0.0))
        cy = rng.uniform(min(half_h, self.height_um / 2), max(self.height_um - half_h, 0.0))
        return (cy, cx), zoom

    def move(self, centre: tuple[float, float], zoom: float) -> None:
        self.viewer.scene.camera.center = centre
        self.viewer.scene.camera.zoom = zoom

    def close(self) -> None:
        self.viewer.close()
        self.slide.close()


def gl_renderer(viewer: Any) -> str | None:
    """OpenGL renderer and version of the viewer's canvas (llvmpipe: software, on the CPU)."""
    try:
        from vispy.gloo import gl

        viewer.window._qt_viewer.canvas._scene_canvas.set_current()
        return f"{gl.glGetParameter(gl.GL_RENDERER)} | {gl.glGetParameter(gl.GL_VERSION)}"
    except Exception:  # pragma: no cover - no context, napari internals moved
        return None


def _record_updates(live: LiveInference) -> tuple[list[tuple[float, np.ndarray]], dict]:
    """Log (time, tile indices) of every overlay update, and when views are planned and
    batches come back (instance attributes shadow the methods the code calls)."""
    records: list[tuple[float, np.ndarray]] = []
    stages: dict[str, list[float]] = {"planned": [], "results": []}
    update_tiles = live.overlay.update_tiles
    request_view = live.scheduler.request_view
    on_result = live.scheduler._on_result

    def recording(indices: np.ndarray, values: np.ndarray, refresh: bool = True) -> None:
        update_tiles(indices, values, refresh=refresh)
        records.append((time.perf_counter(), np.asarray(indices).copy()))

    def planned(x0: float, y0: float, x1: float, y1: float) -> int:
        stages["planned"].append(time.perf_counter())
        return request_view(x0, y0, x1, y1)

    def result(batch: Any) -> None:
        stages["results"].append(time.perf_counter())
        if on_result is not None:
            on_result(batch)

    live.overlay.update_tiles = recording  # type: ignore[method-assign]
    live.scheduler.request_view = planned  # type: ignore[method-assign]
    live.scheduler._on_result = result
    return records, stages


class _Arrivals:
    """Which of the ``wanted`` tiles the overlay has received, and when."""

    def __init__(self, records: list[tuple[float, np.ndarray]], wanted: set[int]) -> None:
        self.records = records
        self.wanted = wanted
        self.seen: set[int] = set()
        self.first = math.nan
        self.last = math.nan

    def complete(self) -> bool:
        while self.records:
            stamp, indices = self.records.pop(0)
            new = self.wanted.intersection(indices.tolist())
            if new and math.isnan(self.first):
                self.first = stamp
            self.seen.update(new)
            if new and len(self.seen) == len(self.wanted):
                self.last = stamp
        return not self.wanted or len(self.seen) == len(self.wanted)


def measure_latency(
    bench: _Bench,
    moves: int,
    rng: np.random.Generator,
    stall_seconds: float = 20.0,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Camera move -> first newly visible tile, and -> all visible tiles, in the overlay.

    Then, on the same live overlay, the event-loop stall during a whole-slide job.
    """
    live = bench.live(cache=False)
    records, stages = _record_updates(live)
    session = live.session
    tissue = session.tissue_tiles.ravel()
    rows = []
    try:
        for index in range(moves + 1):  # the first move warms up and is not counted
            centre, zoom = bench.random_view(rng, LATENCY_ZOOM)
            done_before = session.store.done_mask().ravel()
            records.clear()
            for times in stages.values():
                times.clear()
            start = time.perf_counter()
            bench.move(centre, zoom)
            rect = visible_rect(bench.viewer, bench.layer)
            expected = session.grid.tiles_in_rect(*rect)
            expected = expected[tissue[expected] & ~done_before[expected]]
            arrivals = _Arrivals(records, set(expected.tolist()))
            if not run_loop(timeout, arrivals.complete):
                raise RuntimeError(
                    f"move {index}: {len(arrivals.seen)} of {len(arrivals.wanted)} tiles shown"
                )
            if index == 0 or not arrivals.wanted:
                continue
            # the first plan after the move (the throttle may plan again ~100 ms later,
            # after the first tiles are back: the last plan would hide the split)
            planned = stages["planned"][0] if stages["planned"] else math.nan
            results = [t for t in stages["results"] if t >= planned]
            rows.append(
                {
                    "zoom": zoom,
                    "tiles": len(arrivals.wanted),
                    "first_ms": (arrivals.first - start) * 1e3,
                    "all_ms": (arrivals.last - start) * 1e3,
                    # where the first tile's time goes: camera -> plan (debounce),
                    # plan -> first batch back from the worker, -> drained into the overlay
                    "planned_ms": (planned - start) * 1e3,
                    "first_batch_ms": ((results[0] if results else math.nan) - planned) * 1e3,
                    "drained_ms": (arrivals.first - (results[0] if results else math.nan)) * 1e3,
                }
            )
            bench.log(
                f"  move {index}: zoom {zoom:.2f}, {len(arrivals.wanted)} tiles, first "
                f"{rows[-1]['first_ms']:.0f} ms, all {rows[-1]['all_ms']:.0f} ms"
            )
        stall = measure_stall(bench, live, stall_seconds)
    finally:
        bench.drop(live)
    if not rows:
        raise RuntimeError("no camera move showed new tissue tiles: use more moves")
    first = [r["first_ms"] for r in rows]
    every = [r["all_ms"] for r in rows]
    tiles = [r["tiles"] for r in rows]
    latency = {
        "moves": len(rows),
        "planned_median_ms": statistics_median([r["planned_ms"] for r in rows]),
        "first_batch_median_ms": statistics_median([r["first_batch_ms"] for r in rows]),
        "drained_median_ms": statistics_median([r["drained_ms"] for r in rows]),
        "first_median_ms": statistics_median(first),
        "first_max_ms": max(first),
        "all_median_ms": statistics_median(every),
        "all_max_ms": max(every),
        "tiles_median": statistics_median(tiles),
        "tiles_min": min(tiles),
        "tiles_max": max(tiles),
        "canvas_size": list(bench.viewer.canvas.size),
        "zoom_range": list(LATENCY_ZOOM),
        "per_move": rows,
    }
    return {"latency": latency, "stall": stall}


def statistics_median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=float)))


def _tick_gaps(seconds: float, frames: list[float]) -> dict[str, Any]:
    """Run the event loop ``seconds`` with a 5 ms precise timer; statistics of its gaps."""
    ticks: list[float] = []
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    frames.clear()
    start = time.perf_counter()
    timer.start()
    run_loop(seconds)
    timer.stop()
    elapsed = time.perf_counter() - start
    gaps = np.diff(np.asarray(ticks)) * 1e3
    if len(gaps) == 0:
        raise RuntimeError("the 5 ms timer never ticked twice")
    return {
        "seconds": elapsed,
        "ticks": len(ticks),
        "max_ms": float(gaps.max()),
        "p99_ms": float(np.percentile(gaps, 99)),
        "median_ms": float(np.median(gaps)),
        "over_50ms": int(np.count_nonzero(gaps > 50.0)),
        "over_20ms": int(np.count_nonzero(gaps > 20.0)),
        "frames": len(frames),
    }


def _count_frames(viewer: Any, frames: list[float]) -> Callable[[], None]:
    """Log each canvas draw into ``frames``; returns a function that stops logging."""
    try:
        draw = viewer.window._qt_viewer.canvas._scene_canvas.events.draw
    except AttributeError:  # pragma: no cover - napari internals moved
        return lambda: None

    def on_draw(event: Any) -> None:
        frames.append(time.perf_counter())

    draw.connect(on_draw)
    return lambda: draw.disconnect(on_draw)


def measure_stall(bench: _Bench, live: LiveInference, seconds: float) -> dict[str, Any]:
    """Largest gap between ticks of a 5 ms timer, in three situations of ``seconds`` each.

    - ``full``: a whole-slide job runs and the overlay is drawn as it fills (the real
      thing; the target applies here);
    - ``no_render``: the same job and the same overlay updates (drain, layer data,
      contrast, napari's refresh) with the window's painting switched off, which leaves
      the plugin's own share of main-thread work;
    - ``render_only``: no inference; the overlay layer is refreshed every 100 ms (the
      fastest the draw pacer allows), an upper bound on ``full``'s redraws: the cost of
      drawing alone.

    Under Xvfb every frame is rasterised by Mesa's llvmpipe on the CPU, on the cores the
    inference uses; that is what separates ``full`` from ``no_render``.
    """
    frames: list[float] = []
    stop_counting = _count_frames(bench.viewer, frames)
    window = bench.viewer.window._qt_window
    result: dict[str, Any] = {}
    try:
        live.whole_slide_tiles()
        run_loop(1.0)  # let the job reach its steady state
        done0 = live.stats().done
        result["full"] = _tick_gaps(seconds, frames)
        done1 = live.stats().done
        window.setUpdatesEnabled(False)
        try:
            result["no_render"] = _tick_gaps(seconds, frames)
        finally:
            window.setUpdatesEnabled(True)
        done2 = live.stats().done
        live.cancel()
        run_loop(1.0)  # the running batch finishes and is drained
        result["full"]["tiles"] = done1 - done0
        result["no_render"]["tiles"] = done2 - done1
        refresh = QTimer()
        refresh.setInterval(100)
        refresh.timeout.connect(live.overlay.layer.refresh)
        refresh.start()
        try:
            result["render_only"] = _tick_gaps(seconds, frames)
        finally:
            refresh.stop()
        result["render_only"]["tiles"] = 0
    finally:
        stop_counting()
    for name, row in result.items():
        row["tiles_per_s"] = row["tiles"] / row["seconds"]
        bench.log(
            f"  event loop, {name}: max gap {row['max_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, "
            f"median {row['median_ms']:.1f} ms, {row['frames']} frames, {row['tiles']} tiles"
        )
    return result


def _dask_cache_bytes() -> int:
    try:
        from napari.utils._dask_utils import _DASK_CACHE

        return int(_DASK_CACHE.cache.total_bytes)
    except (ImportError, AttributeError):  # pragma: no cover - napari internals moved
        return 0


@contextlib.contextmanager
def napari_dask_cache(enabled: bool) -> Iterator[int]:
    """napari's opportunistic dask cache as is, or switched off (size 0) for a while.

    napari keeps computed chunks of every dask-backed layer (our slide levels) in one
    global cache of 25 % of the RAM by default (Preferences > Dask cache). It is
    napari's, not the plugin's; switching it off shows what the rest of the process uses.
    Yields the cache size in bytes while inside.
    """
    from napari.utils import resize_dask_cache
    from napari.utils._dask_utils import _DASK_CACHE

    before = int(_DASK_CACHE.cache.available_bytes)
    if not enabled:
        resize_dask_cache(0)
    try:
        yield int(_DASK_CACHE.cache.available_bytes)
    finally:
        if not enabled:
            resize_dask_cache(before)


def measure_memory(
    bench: _Bench,
    seconds: float,
    rng: np.random.Generator,
    marks: Sequence[float] = (0.0, 30.0, 60.0, 120.0),
    pause: tuple[float, float] = (0.3, 1.5),
) -> dict[str, Any]:
    """RSS while the camera moves at random every ``pause`` seconds for ``seconds``."""
    process = psutil.Process()
    marks = [m for m in marks if m <= seconds] or [0.0]
    if marks[-1] < seconds:
        marks.append(seconds)
    with tempfile.TemporaryDirectory(prefix="omicslens-bench-cache-") as cache:
        live = bench.live(cache=Path(cache))
        try:
            samples: list[dict[str, float]] = []
            start = time.perf_counter()

            def sample() -> None:
                samples.append(
                    {
                        "t": time.perf_counter() - start,
                        "rss_mib": process.memory_info().rss / 2**20,
                        "dask_cache_mib": _dask_cache_bytes() / 2**20,
                        "store_mib": live.session.store.memory_bytes() / 2**20,
                        "queued": live.stats().queued,
                    }
                )

            sample()
            sampler = QTimer()
            sampler.setInterval(1000)
            sampler.timeout.connect(sample)
            sampler.start()
            moves = 0
            done0 = live.stats().done
            while time.perf_counter() - start < seconds:
                centre, zoom = bench.random_view(rng, MEMORY_ZOOM)
                bench.move(centre, zoom)
                moves += 1
                remaining = seconds - (time.perf_counter() - start)
                run_loop(max(0.0, min(rng.uniform(*pause), remaining)))
            sample()
            sampler.stop()
            tiles = live.stats().done - done0
        finally:
            bench.drop(live)
    chosen = [_nearest(samples, mark) for mark in marks]
    peak = max(s["rss_mib"] for s in samples)
    result = {
        "seconds": seconds,
        "moves": moves,
        "tiles": int(tiles),
        "zoom_range": list(MEMORY_ZOOM),
        "marks": chosen,
        "growth_mib": chosen[-1]["rss_mib"] - chosen[0]["rss_mib"],
        "growth_after_30s_mib": (
            chosen[-1]["rss_mib"] - chosen[1]["rss_mib"] if len(chosen) > 2 else None
        ),
        "peak_rss_mib": peak,
        "samples": samples,
    }
    bench.log(
        "  RSS "
        + ", ".join(f"{m['t']:.0f} s {m['rss_mib']:.0f} MiB" for m in chosen)
        + f"; {moves} moves, {tiles} tiles"
    )
    return result


def _nearest(samples: list[dict[str, float]], t: float) -> dict[str, float]:
    """The sample taken closest to ``t`` seconds."""
    return min(samples, key=lambda sample: abs(sample["t"] - t))


def run_gui_parts(
    slide_path: Path,
    bundle: Path,
    *,
    parts: Sequence[str] = ("gui", "memory"),
    moves: int = 10,
    stall_seconds: float = 20.0,
    memory_seconds: float = 120.0,
    memory_variants: Sequence[str] = ("off", "default"),
    seed: int = 0,
    log: Log | None = None,
) -> dict[str, Any]:
    """Open one viewer on the slide and run the chosen parts; returns their results.

    ``memory_variants``: napari's dask cache "off" and/or as napari sets it ("default"),
    one memory run each, in that order (the cache-off run first, in a fresh process).
    """
    log = log or (lambda message: None)
    rng = np.random.default_rng(seed)
    result: dict[str, Any] = {}
    bench = _Bench(Path(slide_path), Path(bundle), log)
    try:
        result["gui_setup"] = {
            "canvas_size": list(bench.viewer.canvas.size),
            "window": list(WINDOW),
            "gl_renderer": gl_renderer(bench.viewer),
        }
        if "gui" in parts:
            log(f"GUI latency: {moves} camera moves, then {stall_seconds:.0f} s of event loop")
            result.update(measure_latency(bench, moves, rng, stall_seconds))
        if "memory" in parts:
            result["memory"] = {}
            for cache in memory_variants:
                with napari_dask_cache(cache == "default") as size:
                    log(
                        f"memory: {memory_seconds:.0f} s of random panning and zooming, napari "
                        f"dask cache {size / 2**20:.0f} MiB"
                    )
                    row = measure_memory(bench, memory_seconds, rng)
                row["napari_dask_cache_mib"] = size / 2**20
                result["memory"][f"napari_cache_{cache}"] = row
    finally:
        bench.close()
    return result
