"""Cases, outcomes and the runners that execute each case in a limited child process.

A :class:`Case` builds one mutated input in a folder; its ``check`` names a registered
function (:func:`register_check`) that runs the operations on it (``omicslens info``, a
bundle's ``model inspect``/``validate``/``predict``, a region import, ...) and returns one
``(outcome, detail)`` per operation. A case's outcome is the worst of them.

:class:`ForkRunner` forks each case from a forkserver that imported everything once (a
case costs milliseconds of start-up); :class:`ExecRunner` runs each case in a fresh
``python -m omicslens.bench.fuzz --check-worker`` process whose CLI operations are fresh
``python -m omicslens.cli.main`` processes (slow, but nothing shared). Both apply a
wall-time limit and an address-space limit (``RLIMIT_AS``).
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Outcome classes, best first; a case's outcome is the worst of its runs.
OUTCOMES = (
    "ok",
    "typed",
    "unnamed",
    "invalid-output",
    "traceback",
    "hang",
    "memory",
    "crash",
    "unsafe",
)
FAILURES = ("unnamed", "invalid-output", "traceback", "hang", "memory", "crash", "unsafe")
#: the columns of the slide-only table (the classes slides can end in)
SLIDE_FAILURES = ("unnamed", "traceback", "hang", "memory", "crash")

DEFAULT_TIMEOUT_S = 20.0
#: Address space a case may use: above the interpreter's own footprint in forkserver mode
#: (the preloaded server already maps ~1 GiB), absolute in exec mode.
DEFAULT_MEMORY_GIB = 3.0

InfoEntry = Callable[[list[str]], int]
Outcome = tuple[str, str]


@dataclass
class Case:
    """One mutated input; ``build(folder)`` writes it and returns the path to check."""

    source: str
    kind: str
    detail: str
    build: Callable[[Path], Path] = field(repr=False)
    mpp: float | None = None
    hang_prone: bool = False  # absurd sizes, entity tricks: always isolated in the tests
    check: str = "slide"  # the registered check run on the built path
    options: dict[str, Any] = field(default_factory=dict)  # plain values for the check
    runs: tuple[str, ...] = ("cli", "read")  # the operations the check reports

    @property
    def name(self) -> str:
        return f"{self.source}/{self.kind}/{self.detail}"


@dataclass
class Result:
    case: str
    source: str
    kind: str
    outcome: str
    runs: dict[str, Outcome]
    seconds: float

    @property
    def cli(self) -> Outcome:
        """The ``omicslens info`` run of a slide case (else the worst run)."""
        return self.runs.get("cli") or worst(*self.runs.values())

    @property
    def read(self) -> Outcome:
        """The Python read of a slide case (else ``ok``)."""
        return self.runs.get("read", ("ok", ""))

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "source": self.source,
            "kind": self.kind,
            "outcome": self.outcome,
            **{name: list(outcome) for name, outcome in self.runs.items()},
            "seconds": round(self.seconds, 3),
        }


def worst(*outcomes: Outcome) -> Outcome:
    return max(outcomes, key=lambda o: OUTCOMES.index(o[0])) if outcomes else ("ok", "")


# -- checks -------------------------------------------------------------------------
@dataclass
class Context:
    """What a check needs from its runner: how to run a CLI command."""

    entry: InfoEntry | None  # the CLI entry point (in-process); None: a fresh process
    timeout: float = DEFAULT_TIMEOUT_S

    def run_cli(
        self, argv: list[str], path: Path, classify: Callable[[int, str, str], Outcome]
    ) -> Outcome:
        """Run ``omicslens ARGV`` and classify its exit code and output."""
        if self.entry is None:
            return self._exec_cli(argv, classify)
        out, err = io.StringIO(), io.StringIO()
        try:
            with redirect_stdout(out), redirect_stderr(err):
                rc = self.entry(argv)
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt):
                raise
            return outcome_of_exception(error, path)
        return classify(rc, out.getvalue(), err.getvalue())

    def _exec_cli(self, argv: list[str], classify: Callable[[int, str, str], Outcome]) -> Outcome:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "omicslens.cli.main", *argv],
                capture_output=True,
                text=True,
                timeout=self.timeout + 30.0,  # start-up: importing the CLI takes seconds
            )
        except subprocess.TimeoutExpired:
            return "hang", f"no result after {self.timeout + 30:g} s"
        if done.returncode < 0:
            return signal_outcome(done.returncode)
        return classify(done.returncode, done.stdout, done.stderr)


Check = Callable[[Context, Path, dict[str, Any]], dict[str, Outcome]]
#: check name -> (function, modules the forkserver should import before forking)
CHECKS: dict[str, tuple[Check, tuple[str, ...]]] = {}


def register_check(name: str, preload: Sequence[str] = ()) -> Callable[[Check], Check]:
    def register(function: Check) -> Check:
        CHECKS[name] = (function, tuple(preload))
        return function

    return register


def run_check(ctx: Context, check: str, path: Path, options: dict[str, Any]) -> dict[str, Outcome]:
    function, _ = CHECKS[check]
    return function(ctx, path, options)


def outcome_of_exception(error: BaseException, path: Path) -> Outcome:
    from omicslens.core.errors import OmicsLensError

    text = f"{type(error).__name__}: {error}"
    if isinstance(error, OmicsLensError):
        return ("typed" if str(path) in str(error) else "unnamed"), text
    if isinstance(error, MemoryError):
        return "memory", text
    frames = traceback.extract_tb(error.__traceback__)[-3:]
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames))
    return "traceback", f"{text} [{where}]"


def traceback_in(stderr: str) -> Outcome | None:
    """A traceback printed on stderr, as an outcome (None when there is none)."""
    if "Traceback (most recent call last)" not in stderr:
        return None
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return ("memory" if last.startswith("MemoryError") else "traceback"), last


def signal_outcome(code: int) -> Outcome:
    number = -code
    name = signal.Signals(number).name if number in signal.valid_signals() else str(number)
    return ("memory" if number == signal.SIGKILL else "crash"), f"killed by {name}"


# -- limits ---------------------------------------------------------------------------
def limit_memory(limit_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def vm_size() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _child(
    conn: Any,
    entry: InfoEntry,
    check: str,
    path: str,
    options: dict[str, Any],
    memory: int,
    timeout: float,
) -> None:
    """Body of a forked case: limit memory, silence fds 1 and 2, run the check, send it."""
    limit_memory(vm_size() + memory)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        conn.send(run_check(Context(entry, timeout), check, Path(path), options))
    except MemoryError as error:
        conn.send({"all": ("memory", str(error))})
    conn.close()


def _options(case: Case) -> dict[str, Any]:
    return {"mpp": case.mpp, **case.options}


# -- runners --------------------------------------------------------------------------
class ForkRunner:
    """Runs cases in children forked from a preloaded forkserver, a few at a time."""

    def __init__(
        self,
        entry: InfoEntry,
        timeout: float = DEFAULT_TIMEOUT_S,
        memory_gib: float = DEFAULT_MEMORY_GIB,
        jobs: int = 1,
        preload: Sequence[str] = (),
    ) -> None:
        self.entry = entry
        self.timeout = timeout
        self.memory = int(memory_gib * 2**30)
        self.jobs = max(1, jobs)
        self.context = multiprocessing.get_context("forkserver")
        modules = ["omicslens.bench.fuzz", entry.__module__, "omicslens.core", *preload]
        self.context.set_forkserver_preload(list(dict.fromkeys(modules)))

    def run(self, cases: Sequence[Case], folder: Path) -> Iterator[Result]:
        pending = list(enumerate(cases))
        running: list[tuple[Case, Path, Any, Any, float]] = []
        while pending or running:
            while pending and len(running) < self.jobs:
                index, case = pending.pop(0)
                case_dir = folder / f"case-{index:05d}"
                case_dir.mkdir()
                path = case.build(case_dir).resolve()
                parent, child = self.context.Pipe(duplex=False)
                process = self.context.Process(
                    target=_child,
                    args=(
                        child,
                        self.entry,
                        case.check,
                        str(path),
                        _options(case),
                        self.memory,
                        self.timeout,
                    ),
                )
                process.start()
                child.close()
                running.append((case, case_dir, process, parent, time.perf_counter()))
            time.sleep(0.01)
            for item in list(running):
                case, case_dir, process, parent, started = item
                elapsed = time.perf_counter() - started
                message = None
                if parent.poll():
                    try:
                        message = parent.recv()
                    except EOFError:
                        message = None
                if message is None and process.is_alive() and elapsed < self.timeout:
                    continue
                if message is None and process.is_alive():  # ran out of time
                    process.kill()
                process.join()
                if message is not None:
                    runs = {str(k): (str(v[0]), str(v[1])) for k, v in message.items()}
                else:
                    if elapsed >= self.timeout:
                        failed = ("hang", f"no result after {self.timeout:g} s")
                    elif (process.exitcode or 0) >= 0:
                        failed = ("crash", f"exited {process.exitcode} without a result")
                    else:
                        failed = signal_outcome(process.exitcode or 0)
                    runs = dict.fromkeys(case.runs, failed)
                parent.close()
                _remove(case_dir)
                running.remove(item)
                outcome = worst(*runs.values())[0]
                yield Result(case.name, case.source, case.kind, outcome, runs, elapsed)


class ExecRunner:
    """Runs each case in a fresh ``python -m omicslens.bench.fuzz --check-worker`` process
    whose CLI operations are fresh ``python -m omicslens.cli.main`` processes."""

    def __init__(
        self, timeout: float = DEFAULT_TIMEOUT_S, memory_gib: float = DEFAULT_MEMORY_GIB
    ) -> None:
        self.timeout = timeout
        self.memory = int(memory_gib * 2**30)

    def run(self, cases: Sequence[Case], folder: Path) -> Iterator[Result]:
        for index, case in enumerate(cases):
            case_dir = folder / f"case-{index:05d}"
            case_dir.mkdir()
            path = case.build(case_dir).resolve()
            started = time.perf_counter()
            argv = [sys.executable, "-m", "omicslens.bench.fuzz", "--check-worker", case.check]
            argv += [str(path), "--check-options", json.dumps(_options(case))]
            argv += ["--timeout", str(self.timeout)]
            # every operation may take the whole limit, plus the start-ups
            limit = (self.timeout + 30.0) * (len(case.runs) + 1)
            runs = self._exec(argv, limit, case.runs)
            _remove(case_dir)
            elapsed = time.perf_counter() - started
            outcome = worst(*runs.values())[0]
            yield Result(case.name, case.source, case.kind, outcome, runs, elapsed)

    def _exec(self, argv: list[str], limit: float, names: Sequence[str]) -> dict[str, Outcome]:
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=limit,
                preexec_fn=lambda: limit_memory(self.memory),
            )
        except subprocess.TimeoutExpired:
            return dict.fromkeys(names, ("hang", f"no result after {limit:g} s"))
        if done.returncode < 0:
            return dict.fromkeys(names, signal_outcome(done.returncode))
        try:
            runs = json.loads(done.stdout.strip().splitlines()[-1])
            return {str(k): (str(v[0]), str(v[1])) for k, v in runs.items()}
        except (ValueError, IndexError, AttributeError, TypeError):
            err = done.stderr.strip()
            last = err.splitlines()[-1] if err else f"exit {done.returncode}"
            failed = ("memory" if "MemoryError" in last else "traceback"), last
            return dict.fromkeys(names, failed)


def check_worker(check: str, path: Path, options: dict[str, Any], timeout: float) -> int:
    """Exec mode: run one check in this (fresh) process, print its runs as one JSON line."""
    print(json.dumps(run_check(Context(None, timeout), check, path, options)))
    return 0


def _remove(folder: Path) -> None:
    # a case may leave a FIFO or a read-only tree: rmtree copes, errors are ignored
    shutil.rmtree(folder, ignore_errors=True)


def preload_for(cases: Sequence[Case]) -> list[str]:
    modules: list[str] = []
    for check in dict.fromkeys(case.check for case in cases):
        modules += CHECKS[check][1]
    return list(dict.fromkeys(modules))


def run_fuzz(
    cases: Sequence[Case],
    entry: InfoEntry | None,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_gib: float = DEFAULT_MEMORY_GIB,
    jobs: int = 1,
    isolation: str = "forkserver",
    progress: Callable[[Result], None] | None = None,
) -> list[Result]:
    runner: ForkRunner | ExecRunner
    if isolation == "forkserver" and entry is not None:
        runner = ForkRunner(entry, timeout, memory_gib, jobs, preload_for(cases))
    else:
        runner = ExecRunner(timeout, memory_gib)
    results = []
    with tempfile.TemporaryDirectory(prefix="omicslens-fuzz-") as folder:
        for result in runner.run(cases, Path(folder)):
            results.append(result)
            if progress:
                progress(result)
    return results


def spread(cases: Sequence[Case], limit: int | None) -> list[Case]:
    """At most ``limit`` cases, shared evenly over the inputs and spread over each one's kinds."""
    if limit is None or limit >= len(cases):
        return list(cases)
    by_source: dict[str, list[Case]] = {}
    for case in cases:
        by_source.setdefault(case.source, []).append(case)
    quota = dict.fromkeys(by_source, 0)
    left = limit
    while left > 0:  # one more case to every input that still has some, in turn
        for key, items in by_source.items():
            if left > 0 and quota[key] < len(items):
                quota[key] += 1
                left -= 1
    picked = []
    for key, items in by_source.items():
        count = quota[key]
        picked += [items[i * len(items) // count] for i in range(count)] if count else []
    return picked
