"""Reference-bank inputs and mutations: a bundle's ``domain.json``, ``robustness.json`` and
a typing bundle's ``cell_reference.json``.

Sources are copies of the bundled models: ``her2st-expression`` (its domain reference and
its stored robustness report) and ``bccd-wbc-typing`` (its cell reference). Each case
mutates one bank (values, types, sizes, nesting, the file itself) and runs ``omicslens
model validate --json`` plus what reads that bank: ``model inspect --json`` (robustness
grades), ``check-domain --json`` and ``predict`` on a 512 px crop of a HER2ST image
(domain), ``smear --json`` on the BCCD sample (cell reference).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any

from omicslens.bench.fuzz.bundles import _WRONG_TYPES, _classify_validate, _one_thread, _special
from omicslens.bench.fuzz.outputs import classify_predict
from omicslens.bench.fuzz.runner import Case, Context, Outcome, register_check
from omicslens.bench.fuzz.slides import Source, _repo_root, classify_json_run

BANKS = {
    "references-domain": ("her2st-expression", "domain.json"),
    "references-robustness": ("her2st-expression", "robustness.json"),
    "references-cell": ("bccd-wbc-typing", "cell_reference.json"),
}
#: the operations each bank's cases report
RUNS = {
    "references-domain": ("validate", "check-domain", "predict"),
    "references-robustness": ("inspect", "validate"),
    "references-cell": ("validate", "smear"),
}
CROP, CROP_MPP = 512, 0.688
RAW = '"@@RAW@@"'


def write_crop(folder: Path, data_dir: Path) -> Path:
    """A 512 px OME-TIFF cut from the HER2ST C5 image, at its 0.688 um/px."""
    import numpy as np
    import tifffile
    from PIL import Image

    pixels = np.asarray(Image.open(data_dir / "her2st-cut" / "images" / "C5.jpg").convert("RGB"))
    path = folder / "her2st-crop.ome.tif"
    top = (pixels.shape[0] - CROP) // 2
    left = (pixels.shape[1] - CROP) // 2
    crop = np.ascontiguousarray(pixels[top : top + CROP, left : left + CROP])
    metadata = {"axes": "YXS", "PhysicalSizeX": CROP_MPP, "PhysicalSizeY": CROP_MPP}
    tifffile.imwrite(path, crop, photometric="rgb", metadata=metadata)
    return path


def reference_sources(folder: Path, data_dir: Path | None = None) -> list[Source]:
    # the installed package's bundles and sample (a wheel has no assets/ folder)
    from omicslens.core.samples import bundled_models, sample_path

    data = data_dir or _repo_root() / "tests" / "data"
    models = bundled_models()
    folder.mkdir(parents=True, exist_ok=True)
    crop = write_crop(folder, data) if (data / "her2st-cut").is_dir() else None
    smear: Path | None = None
    with suppress(FileNotFoundError):
        smear = sample_path("bccd-smear")
    sources = []
    for key, (model, bank) in BANKS.items():
        slide = smear if key == "references-cell" else crop
        bundle = models.get(model)
        if bundle is not None and (bundle / bank).is_file() and slide is not None:
            sources.append(Source(key, bundle, family="references", slide=slide))
    return sources


# -- cases ----------------------------------------------------------------------------
def _case(
    source: Source, kind: str, detail: str, edit: Callable[[Path], object], hang: bool
) -> Case:
    bank = BANKS[source.key][1]

    def build(folder: Path) -> Path:
        target = folder / source.path.name
        shutil.copytree(source.path, target)
        edit(target / bank)
        return target / bank

    options = {"slide": str(source.slide), "bank": source.key}
    runs = RUNS[source.key]
    return Case(source.key, kind, detail, build, None, hang, "references", options, runs)


def _walk(node: Any, at: list[Any], depth: int = 0) -> list[tuple[list[Any], Any]]:
    """(path, value) of every list and number in ``node`` (lists: the list itself and its
    first item; dicts: a few keys), down to depth 3."""
    found: list[tuple[list[Any], Any]] = []
    if depth > 3:
        return found
    if isinstance(node, dict):
        for key in list(node)[:8]:
            found.append(([*at, key], node[key]))
            found += _walk(node[key], [*at, key], depth + 1)
    elif isinstance(node, list) and node:
        found.append(([*at, 0], node[0]))
        if isinstance(node[0], dict | list):
            found += _walk(node[0], [*at, 0], depth + 1)
    return found


def _raw_at(keys: list[Any], raw: str | Callable[[Any], Any]) -> Callable[[Path], None]:
    """Set the value at ``keys`` to raw JSON text, or to ``raw(old value)``."""

    def edit(path: Path) -> None:
        document = json.loads(path.read_text(encoding="utf-8"))
        node: Any = document
        for key in keys[:-1]:
            node = node[key]
        if callable(raw):
            node[keys[-1]] = raw(node[keys[-1]])
            path.write_text(json.dumps(document), encoding="utf-8")
        else:
            node[keys[-1]] = "@@RAW@@"
            path.write_text(json.dumps(document).replace(RAW, raw, 1), encoding="utf-8")

    return edit


def _delete_at(keys: list[Any]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        document = json.loads(path.read_text(encoding="utf-8"))
        node: Any = document
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
        path.write_text(json.dumps(document), encoding="utf-8")

    return edit


_LIST_EDITS: list[tuple[str, Callable[[list[Any]], Any]]] = [
    ("empty", lambda v: []),
    ("drop-last", lambda v: v[:-1]),
    ("extra", lambda v: [*v, v[-1]]),
    ("nested", lambda v: [v]),
    ("strings", lambda v: [str(x) for x in v]),
    ("nulls", lambda v: [None] * len(v)),
    ("ragged", lambda v: [v[0], [v[0]]] if len(v) > 1 else [[v[0]], 1]),
    ("dict", lambda v: {"a": v}),
]


def _write_text_cut(text: str, cut: int) -> Callable[[Path], None]:
    """An edit writing the first ``cut`` characters of ``text`` as the bank."""

    def edit(path: Path) -> None:
        path.write_text(text[:cut], encoding="utf-8")

    return edit


def _write_bytes(data: bytes) -> Callable[[Path], None]:
    """An edit writing ``data`` as the bank."""

    def edit(path: Path) -> None:
        path.write_bytes(data)

    return edit


def reference_cases(source: Source) -> list[Case]:
    bank = BANKS[source.key][1]
    document = json.loads((source.path / bank).read_text(encoding="utf-8"))
    cases: list[Case] = []

    def add(kind: str, detail: str, edit: Callable[[Path], object], hang: bool = False) -> None:
        cases.append(_case(source, kind, detail, edit, hang))

    for keys, value in _walk(document, []):
        name = ".".join(str(k) for k in keys)
        if len(keys) == 1:
            add("delete", name, _delete_at(keys))
            for label, raw in _WRONG_TYPES:
                add("type", f"{name}={label}", _raw_at(keys, raw))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            for label in ("NaN", "Infinity", "-1", '"x"', "null", "1e308"):
                add("value", f"{name}={label.strip(chr(34))}", _raw_at(keys, label))
        if isinstance(value, list) and value:
            for label, change in _LIST_EDITS:
                add("array", f"{name}-{label}", _raw_at(keys, change))
            add("array", f"{name}-nan", _raw_at(keys, lambda v: _poison(v)))
            add("array", f"{name}-1e6", _raw_at(keys, lambda v: [0.5] * 1_000_000), True)
    text = json.dumps(document)
    for cut in (0, 1, len(text) // 2, len(text) - 1):
        add("file", f"truncate-{cut}", _write_text_cut(text, cut))
    raw_files: list[tuple[str, bytes]] = [
        ("not-utf8", text.encode().replace(b'"', b'"\xff', 1)),
        ("utf16", text.encode("utf-16")),
        ("null", b"null"),
        ("list", b"[]"),
        ("string", b'"x"'),
        ("nul", b"\x00" * 8),
        ("deep-100k", b"[" * 100_000 + b"]" * 100_000),
    ]
    for detail, data in raw_files:
        add("file", detail, _write_bytes(data), detail.startswith("deep"))
    add(
        "file",
        "50mb",
        lambda p: p.write_text(text[:-1] + ', "pad": "' + "x" * 50_000_000 + '"}'),
        True,
    )
    for how in ("directory", "fifo"):
        add("file", how, partial(_special, how=how), True)
    add("file", "missing", lambda p: p.unlink())
    return cases


def _poison(values: list[Any]) -> list[Any]:
    """The first number (however deep) in ``values`` replaced by NaN."""
    out = json.loads(json.dumps(values))
    node: Any = out
    while isinstance(node, list) and node and isinstance(node[0], list):
        node = node[0]
    if isinstance(node, list) and node:
        node[0] = float("nan")
    return out


# -- the check ------------------------------------------------------------------------
@register_check(
    "references",
    preload=("omicslens.app.predict", "omicslens.models.loading", "omicslens.hemato", "torch"),
)
def check_references(ctx: Context, path: Path, options: dict[str, Any]) -> dict[str, Outcome]:
    """What reads the bank at ``path`` (see the module docstring)."""
    _one_thread()
    bundle = path.parent
    slide = options["slide"]
    runs: dict[str, Outcome] = {}

    def run(name: str, argv: list[str], classify: Callable[[int, str, str], Outcome]) -> None:
        runs[name] = ctx.run_cli(argv, path, classify)

    if options["bank"] == "references-robustness":
        run(
            "inspect",
            ["model", "inspect", "--json", str(bundle)],
            lambda rc, out, err: classify_json_run(rc, out, err, path, ("name", "num_outputs")),
        )
    run(
        "validate",
        ["model", "validate", "--json", str(bundle)],
        lambda rc, out, err: _classify_validate(rc, out, err, path),
    )
    if options["bank"] == "references-domain":
        argv = ["check-domain", slide, "--model", str(bundle), "--tiles", "4", "--json"]
        run(
            "check-domain",
            [*argv, "--device", "cpu"],
            lambda rc, out, err: classify_json_run(rc, out, err, path, ("verdict",)),
        )
        out_dir = bundle.parent / "out"
        argv = ["predict", slide, "--model", str(bundle), "--out", str(out_dir)]
        run(
            "predict",
            [*argv, "--format", "csv", "--device", "cpu"],
            lambda rc, out, err: classify_predict(rc, out, err, path, out_dir / Path(slide).name),
        )
    if options["bank"] == "references-cell":
        argv = ["smear", slide, "--out", str(bundle.parent / "smear"), "--model", str(bundle)]
        run(
            "smear",
            [*argv, "--device", "cpu", "--json", "--force"],
            lambda rc, out, err: classify_json_run(rc, out, err, path, ("typing_model",)),
        )
    return runs
