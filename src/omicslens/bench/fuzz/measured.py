"""Measured-expression inputs and mutations: HER2ST tables, a Visium folder, an ``.h5ad``.

Sources are written from the real HER2ST cut (``tests/data/her2st-cut``, section C5, 25
spots): the study's own counts/spot tables, a Space Ranger-style Visium folder
(``filtered_feature_bc_matrix.h5``, ``spatial/tissue_positions.csv``,
``scalefactors_json.json``) and an AnnData ``.h5ad`` (``obsm['spatial']``,
``layers['counts']``) holding the same spots and genes (the HDF5 layouts and their
mutations are in :mod:`.measured_h5`). Each case runs
:func:`omicslens.core.measured.load_measured` (what it returns must be usable: finite
positions, finite non-negative counts, unique spot ids, printable gene names, and spots
dropped only with a warning naming the file) and ``omicslens evaluate-expression --json``
with the bundled HER2ST model on the section's image.
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from omicslens.bench.fuzz.runner import (
    Case,
    Context,
    Outcome,
    outcome_of_exception,
    register_check,
    traceback_in,
)
from omicslens.bench.fuzz.slides import Source, _flip, _repo_root, _truncate, classify_json_run

MEASURED_RUNS = ("load", "evaluate")
SECTION = "C5"
MPP = 0.688  # the C5 image's pixel size (measured from the ST array pitch)
Edit = Callable[[Path], object]


class AddCase(Protocol):
    """The ``add(kind, detail, edit, hang=False)`` that each ``*_cases`` function defines."""

    def __call__(self, kind: str, detail: str, edit: Edit, hang: bool = False) -> None: ...


def measured_sources(folder: Path, data_dir: Path | None = None) -> list[Source]:
    from omicslens.core.samples import bundled_models

    data = data_dir or _repo_root() / "tests" / "data"
    cut = data / "her2st-cut"
    if not (cut / "counts" / f"{SECTION}.tsv.gz").is_file():
        return []
    slide = cut / "images" / f"{SECTION}.jpg"
    bundle = bundled_models().get("her2st-expression")
    if bundle is None:
        return []
    her2st = folder / "her2st"
    for part, name in (("counts", f"{SECTION}.tsv.gz"), ("spots", f"{SECTION}_selection.tsv")):
        (her2st / part).mkdir(parents=True, exist_ok=True)
        shutil.copy(cut / part / name, her2st / part / name)
    from omicslens.bench.fuzz.measured_h5 import write_h5ad, write_visium
    from omicslens.core.measured import load_measured

    measured = load_measured(her2st, SECTION)
    keys = (("measured-her2st", her2st), ("measured-visium", write_visium(folder, measured)))
    sources = [Source(k, p, family="measured", slide=slide, bundle=bundle) for k, p in keys]
    h5ad = write_h5ad(folder / "section.h5ad", measured)
    return [*sources, Source("measured-h5ad", h5ad, family="measured", slide=slide, bundle=bundle)]


# -- cases ----------------------------------------------------------------------------
def _case(source: Source, kind: str, detail: str, edit: Edit, hang: bool = False) -> Case:
    def build(folder: Path) -> Path:
        target = folder / source.path.name
        if source.path.is_dir():
            shutil.copytree(source.path, target)
        else:
            shutil.copy(source.path, target)
        edit(target)
        return target

    options = {"slide": str(source.slide), "bundle": str(source.bundle)}
    if source.key == "measured-her2st":
        options["section"] = SECTION
    return Case(source.key, kind, detail, build, None, hang, "measured", options, MEASURED_RUNS)


def _rewrite(relative: str, change: Callable[[bytes], bytes], gz: bool = False) -> Edit:
    def edit(root: Path) -> None:
        file = root / relative
        data = file.read_bytes()
        if gz:
            file.write_bytes(gzip.compress(change(gzip.decompress(data)), mtime=0))
        else:
            file.write_bytes(change(data))

    return edit


def _cells(
    change: Callable[[list[list[str]]], object], sep: str = "\t"
) -> Callable[[bytes], bytes]:
    """Edit a delimited text table as a list of rows of cells."""

    def apply(data: bytes) -> bytes:
        rows = [line.split(sep) for line in data.decode().rstrip("\n").split("\n")]
        change(rows)
        return ("\n".join(sep.join(r) for r in rows) + "\n").encode("utf-8", "surrogatepass")

    return apply


def _set_cell(row: int, column: int, value: str) -> Callable[[list[list[str]]], None]:
    def change(rows: list[list[str]]) -> None:
        rows[row][column] = value

    return change


def _prefixed(add: AddCase, prefix: str) -> AddCase:
    """``add`` with ``prefix-`` put before each case's kind."""

    def add_prefixed(kind: str, detail: str, edit: Edit, hang: bool = False) -> None:
        add(f"{prefix}-{kind}", detail, edit, hang)

    return add_prefixed


def _table_cases(add: AddCase, relative: str, gz: bool, columns: dict[str, int]) -> None:
    """Text-level mutations shared by the counts, spot and position tables."""
    sep = "," if relative.endswith(".csv") else "\t"

    def cells(change: Callable[[list[list[str]]], object]) -> Edit:
        return _rewrite(relative, _cells(change, sep), gz)

    for name, column in columns.items():
        for token in ("NaN", "inf", "-inf", "-5", "abc", "", "1e39", "1e300", "0x10"):
            add("value", f"{name}={token or 'empty'}", cells(_set_cell(2, column, token)))
    add("rows", "header-only", cells(lambda r: r.__delitem__(slice(1, None))))
    add("rows", "duplicate-row", cells(lambda r: r.insert(2, list(r[1]))))
    add("rows", "short-row", cells(lambda r: r[3].pop()))
    add("rows", "long-row", cells(lambda r: r[3].append("7")))
    add("rows", "blank-line", cells(lambda r: r.insert(3, [""])))
    add("rows", "no-header", cells(lambda r: r.pop(0)))
    add("rows", "header-renamed", cells(lambda r: r.__setitem__(0, [f"c{i}" for i in r[0]])))
    add("rows", "one-column", cells(lambda r: r.__setitem__(slice(None), [x[:1] for x in r])))
    add("rows", "crlf", _rewrite(relative, lambda b: b.replace(b"\n", b"\r\n"), gz))
    add("rows", "semicolons", _rewrite(relative, lambda b: b.replace(sep.encode(), b";"), gz))
    add("encoding", "latin1", _rewrite(relative, lambda b: b.replace(b"\n", b"\xe9\xff\n", 2), gz))
    add("encoding", "bom", _rewrite(relative, lambda b: b"\xef\xbb\xbf" + b, gz))
    add("encoding", "utf16", _rewrite(relative, lambda b: b.decode().encode("utf-16"), gz))
    add("encoding", "surrogate", cells(_set_cell(1, 0, "\udcff")))
    add("encoding", "nul", cells(_set_cell(1, 0, "a\x00b")))
    for cut in (0, 1, 40, 200):
        add("file", f"truncate-{cut}", _rewrite(relative, partial(_truncate, cut=cut)))
    add("file", "empty", lambda root: (root / relative).write_bytes(b""))
    add("file", "missing", lambda root: (root / relative).unlink())
    add("file", "directory", lambda root: _to_directory(root / relative))
    add("file", "50mb-line", _rewrite(relative, lambda b: b + b"9" * 50_000_000, gz), True)


def _to_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def her2st_cases(source: Source) -> list[Case]:
    cases: list[Case] = []

    def add(kind: str, detail: str, edit: Edit, hang: bool = False) -> None:
        cases.append(_case(source, kind, detail, edit, hang))

    counts = f"counts/{SECTION}.tsv.gz"
    spots = f"spots/{SECTION}_selection.tsv"
    _table_cases(_prefixed(add, "counts"), counts, True, {"count": 3})
    _table_cases(_prefixed(add, "spots"), spots, False, {"x": 0, "pixel_x": 4, "selected": 6})
    size = (source.path / counts).stat().st_size
    for cut in (10, size // 2, size - 4):
        add("counts-gzip", f"truncate-{cut}", _rewrite(counts, partial(_truncate, cut=cut)))
    add("counts-gzip", "flip", _rewrite(counts, lambda b: _flip(b, [size // 2], [0xFF])))
    add("counts-gzip", "not-gzip", _rewrite(counts, gzip.decompress))
    add("counts-gzip", "empty-gzip", _rewrite(counts, lambda b: gzip.compress(b"")))
    add("counts-ids", "malformed", _rewrite(counts, _cells(_set_cell(1, 0, "spotA")), gz=True))
    add("counts-ids", "none-match", _rewrite(counts, _ids(lambda i: f"9{i}"), gz=True))
    add("counts-genes", "duplicate", _rewrite(counts, _cells(_set_cell(0, 2, "NBL1")), gz=True))
    wide = _cells(_widen)
    add("counts-genes", "20k-extra", _rewrite(counts, wide, gz=True), True)
    for detail, x, y in (("negative", "-5000", "-5000"), ("far", "1e9", "1e9")):
        change = _cells(_set_pixels(x, y))
        add("spots-outside", f"all-{detail}", _rewrite(spots, change))
        add("spots-outside", f"one-{detail}", _rewrite(spots, _cells(_set_cell(3, 4, x))))
    add(
        "spots-selected",
        "none",
        _rewrite(spots, _cells(lambda r: [x.__setitem__(6, "0") for x in r[1:]])),
    )
    return cases


def _widen(rows: list[list[str]]) -> None:
    """20 000 more columns on every row."""
    for row in rows:
        row.extend(["1"] * 20_000)


def _set_pixels(x: str, y: str) -> Callable[[list[list[str]]], None]:
    """Every spot (rows after the header) at pixel ``x``, ``y`` (columns 4 and 5)."""

    def change(rows: list[list[str]]) -> None:
        for row in rows[1:]:
            row[4:6] = [x, y]

    return change


def _ids(rename: Callable[[str], str]) -> Callable[[bytes], bytes]:
    return _cells(lambda rows: [row.__setitem__(0, rename(row[0])) for row in rows[1:]])


def measured_cases(source: Source) -> list[Case]:
    from omicslens.bench.fuzz.measured_h5 import h5ad_cases, visium_cases

    if source.key == "measured-her2st":
        return her2st_cases(source)
    return visium_cases(source) if source.key == "measured-visium" else h5ad_cases(source)


# -- the check ------------------------------------------------------------------------
def validate_measured(measured: Any, path: Path, caught: list[Any], expected: int) -> Outcome:
    """What a successful load must hold (``expected``: spots of the unmutated source)."""
    import numpy as np

    n = measured.n_spots
    if n == 0:
        return "invalid-output", "no spots and no error"
    shapes = (len(measured.x), len(measured.y), measured.counts.shape)
    if shapes != (n, n, (n, len(measured.genes))):
        return "invalid-output", f"inconsistent shapes {shapes} for {n} spots"
    if not (np.isfinite(measured.x).all() and np.isfinite(measured.y).all()):
        return "invalid-output", "a spot position that is not finite"
    counts = np.asarray(measured.counts)
    if not np.isfinite(counts).all() or (counts < 0).any():
        return "invalid-output", "counts that are negative, NaN or infinite"
    if len(set(measured.spot_ids)) != n:
        return "invalid-output", "duplicate spot ids"
    names = [*measured.genes, *measured.spot_ids]
    if not all(isinstance(g, str) and g.isprintable() and g.strip() for g in names):
        return "invalid-output", "a gene name or spot id that is not printable text"
    told = [w for w in caught if str(path) in str(w.message)]
    if n < expected and not told:
        return "invalid-output", f"{expected - n} spot(s) dropped silently"
    return "ok", f"{n} spots"


def load_case(path: Path, section: str | None, expected: int) -> Outcome:
    from omicslens.core.measured import load_measured

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            measured = load_measured(path, section)
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt):
                raise
            return outcome_of_exception(error, path)
    try:
        return validate_measured(measured, path, list(caught), expected)
    except (TypeError, ValueError) as error:  # e.g. positions held as Python objects
        return "invalid-output", f"unusable result: {type(error).__name__}: {error}"


def _classify_evaluate(rc: int, out: str, err: str, path: Path) -> Outcome:
    outcome = classify_json_run(rc, out, err, path, ("n_spots", "pearson"))
    if rc != 0 or outcome[0] != "ok" or traceback_in(err):
        return outcome

    def refuse(token: str) -> Any:
        raise ValueError(f"bare {token} token")

    try:
        report = json.loads(out, parse_constant=refuse)
    except ValueError as error:
        return "invalid-output", f"--json output is not strict JSON ({error})"
    values = [v for v in report["pearson"].values() if v is not None]
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        return "invalid-output", "a Pearson r that is not a finite number"
    return "ok", f"{report['n_spots']} spots"


@register_check(
    "measured",
    preload=("omicslens.core.measured", "omicslens.app.measured", "anndata", "h5py", "torch"),
)
def check_measured(ctx: Context, path: Path, options: dict[str, Any]) -> dict[str, Outcome]:
    import torch

    torch.set_num_threads(1)
    section = options.get("section")
    runs = {"load": load_case(path, section, 25)}
    argv = ["evaluate-expression", options["slide"], "--measured", str(path)]
    argv += ["--model", options["bundle"], "--device", "cpu", "--json"]
    argv += ["--section", section, "--mpp-from-spots"] if section else ["--mpp", str(MPP)]
    runs["evaluate"] = ctx.run_cli(
        argv, path, lambda rc, out, err: _classify_evaluate(rc, out, err, path)
    )
    return runs
