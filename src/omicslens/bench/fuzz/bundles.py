"""Model bundle inputs and mutations: a small real bundle's ``config.json`` and weights.

The source bundles are written here: the project's tiny CNN (``omicslens-tinycnn``, three
outputs, 32 px patches at 2 um/px) with seeded weights, saved as safetensors, TorchScript
and a plain ``torch.save`` state dict, plus a 1024 px OME-TIFF of real CMU-1 pixels to
predict on. Each case runs ``omicslens model inspect --json``, ``model validate --json``
and ``omicslens predict`` on that slide (csv and geojson); a prediction must write valid
outputs (see :mod:`omicslens.bench.fuzz.outputs`).
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from omicslens.bench.fuzz.outputs import classify_predict
from omicslens.bench.fuzz.runner import Case, Context, Outcome, register_check, traceback_in
from omicslens.bench.fuzz.slides import (
    Source,
    _flip,
    _truncate,
    classify_json_run,
    classify_refusal,
)

OUTPUTS = ("ERBB2", "CD74", "MKI67")
PATCH, SPACING, SLIDE_MPP, SLIDE_SIDE = 32, 2.0, 0.5, 1024
WEIGHTS_FILES = {
    "safetensors": "model.safetensors",
    "torchscript": "torchscript_model.pt",
    "state-dict": "model.pt",
}
#: a file the pickle cases create if anything unpickles them
MARKER = "UNPICKLED-MARKER"
BUNDLE_RUNS = ("inspect", "validate", "predict")


def tiny_config() -> dict[str, Any]:
    return {
        "spec_version": "1.0",
        "name": "fuzz-tiny-random-weights",
        "version": "0.0.0",
        "description": "Fuzz source: random weights, predicts nothing meaningful.",
        "architecture": "omicslens-tinycnn",
        "architecture_args": {"width": 8, "depth": 3},
        "num_classes": len(OUTPUTS),
        "class_names": list(OUTPUTS),
        "patch_size_pixels": PATCH,
        "spacing_um_px": SPACING,
        "transform": [
            {"name": "Resize", "arguments": {"size": PATCH}},
            {"name": "ToTensor"},
            {"name": "Normalize", "arguments": {"mean": [0.7, 0.55, 0.68], "std": [0.15] * 3}},
        ],
        "task": "regression",
        "outputs": [{"name": n, "pearson": 0.1 * (i + 1)} for i, n in enumerate(OUTPUTS)],
    }


def write_tiny_bundle(folder: Path, fmt: str = "safetensors") -> Path:
    """A tiny-CNN bundle with seeded random weights in ``fmt`` (see WEIGHTS_FILES)."""
    import warnings

    import torch

    from omicslens.models.architectures import build_architecture

    folder.mkdir(parents=True, exist_ok=True)
    config = tiny_config()
    torch.manual_seed(0)
    model = build_architecture(config["architecture"], len(OUTPUTS), **config["architecture_args"])
    model.eval()
    target = folder / WEIGHTS_FILES[fmt]
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(target))
    elif fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
            torch.jit.save(torch.jit.script(model), str(target))
    else:
        torch.save(model.state_dict(), target)
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


def write_tiny_slide(folder: Path) -> Path:
    """A 1024 px, 0.5 um/px OME-TIFF of real CMU-1 pixels (the slide ``predict`` runs on)."""
    import tifffile

    from omicslens.core import open_slide
    from omicslens.core.samples import sample_path

    with open_slide(sample_path("cmu1")) as slide:
        pixels = slide.read_region(600, 600, SLIDE_SIDE, SLIDE_SIDE)[..., :3]
    path = folder / "fuzz-tiny-slide.ome.tif"
    tifffile.imwrite(
        path,
        pixels,
        tile=(256, 256),
        photometric="rgb",
        metadata={"axes": "YXS", "PhysicalSizeX": SLIDE_MPP, "PhysicalSizeY": SLIDE_MPP},
    )
    return path


def bundle_sources(folder: Path) -> list[Source]:
    folder.mkdir(parents=True, exist_ok=True)
    slide = write_tiny_slide(folder)
    return [
        Source(
            f"bundle-{fmt}",
            write_tiny_bundle(folder / f"bundle-{fmt}", fmt),
            family="bundles",
            slide=slide,
        )
        for fmt in WEIGHTS_FILES
    ]


# -- cases ----------------------------------------------------------------------------
def _bundle_case(
    source: Source, kind: str, detail: str, edit: Callable[[Path], object], hang: bool = False
) -> Case:
    def build(folder: Path) -> Path:
        target = folder / "bundle"
        shutil.copytree(source.path, target)
        edit(target)
        return target

    return Case(
        source.key,
        kind,
        detail,
        build,
        hang_prone=hang,
        check="bundle",
        options={"slide": str(source.slide), "marker": MARKER},
        runs=BUNDLE_RUNS,
    )


def _config_text(text: str | bytes) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        (root / "config.json").write_bytes(data)

    return edit


def _config_edit(change: Callable[[dict[str, Any]], object]) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        config = json.loads((root / "config.json").read_text(encoding="utf-8"))
        change(config)
        (root / "config.json").write_text(json.dumps(config), encoding="utf-8")

    return edit


def _set(key: str, value: Any) -> Callable[[Path], None]:
    def change(config: dict[str, Any]) -> None:
        config[key] = value

    return _config_edit(change)


def _set_raw(key: str, raw: str) -> Callable[[Path], None]:
    """Set ``key`` to raw JSON text (NaN, Infinity, lone surrogate escapes...)."""

    def edit(root: Path) -> None:
        config = json.loads((root / "config.json").read_text(encoding="utf-8"))
        config[key] = "@@RAW@@"
        text = json.dumps(config).replace('"@@RAW@@"', raw)
        (root / "config.json").write_text(text, encoding="utf-8")

    return edit


def _delete(key: str) -> Callable[[Path], None]:
    return _config_edit(lambda config: config.pop(key, None))


def _set_path(keys: list[Any], value: Any) -> Callable[[Path], None]:
    def change(config: dict[str, Any]) -> None:
        node: Any = config
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return _config_edit(change)


_WRONG_TYPES: list[tuple[str, str]] = [
    ("null", "null"),
    ("list", "[1, 2]"),
    ("string", '"x"'),
    ("object", "{}"),
    ("huge-int", str(10**30)),
    ("negative", "-1"),
    ("nan", "NaN"),
    ("infinity", "Infinity"),
    ("1e308", "1e308"),
]


def _special(path: Path, how: str) -> None:
    """Replace ``path`` by a directory, a symlink loop or a FIFO."""
    path.unlink(missing_ok=True)
    if how == "directory":
        path.mkdir()
    elif how == "symlink-loop":
        os.symlink(path.name + ".loop", path)
        os.symlink(path.name, path.with_name(path.name + ".loop"))
    else:
        os.mkfifo(path)


def _special_at(relative: str, how: str) -> Callable[[Path], None]:
    """An edit replacing ``relative`` (under the bundle folder) as :func:`_special` does."""

    def edit(root: Path) -> None:
        _special(root / relative, how)

    return edit


class _Trap:
    """Unpickling this opens (creates) the marker file: proof that a pickle was run."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.target, "w"))


def _pickle_trap(name: str, torch_zip: bool) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        marker = str(root.parent / MARKER)
        payload = {"features.0.0.weight": _Trap(marker)}
        if torch_zip:
            import torch

            torch.save(payload, root / name)
        else:
            (root / name).write_bytes(pickle.dumps(payload))

    return edit


def config_cases(source: Source) -> list[Case]:
    cases: list[Case] = []

    def add(kind: str, detail: str, edit: Callable[[Path], object], hang: bool = False) -> None:
        cases.append(_bundle_case(source, kind, detail, edit, hang))

    config = tiny_config()
    for key in config:
        add("config-delete", key, _delete(key))
        for name, raw in _WRONG_TYPES:
            add("config-type", f"{key}={name}", _set_raw(key, raw), name == "huge-int")
    names = list(OUTPUTS)
    value: object  # each loop below sets values of other JSON types
    for detail, value in (
        ("empty", []),
        ("duplicated", [names[0], names[0], names[2]]),
        ("nul", ["ER\x00BB2", *names[1:]]),
        ("newline", ["ER\nBB2", *names[1:]]),
        ("comma", ["ER,BB2", *names[1:]]),
        ("quote", ['ER"BB2', *names[1:]]),
        ("space-only", [" ", *names[1:]]),
        ("ints", [1, 2, 3]),
        ("long-name", ["E" * 1000, *names[1:]]),
    ):
        add("class-names", detail, _set("class_names", value))
    add("class-names", "lone-surrogate", _set_raw("class_names", '["\\ud800", "CD74", "MKI67"]'))
    add("class-names", "lone-surrogate-low", _set_raw("class_names", '["A\\udfff", "B", "C"]'))
    many = [f"G{i}" for i in range(100_000)]
    add("class-names", "100k", _set("class_names", many), True)

    def many_matched(config: dict[str, Any]) -> None:
        config.update(class_names=many, num_classes=len(many))
        config.pop("outputs", None)

    add("class-names", "100k-matched", _config_edit(many_matched), True)
    for value in (0, 1e-9, 1e9, 0.01, 1000, "0.5", True):
        add("spacing", str(value), _set("spacing_um_px", value), True)
    for value in (0, 1, 10**6, 8192, 2.5):
        add("patch-size", str(value), _set("patch_size_pixels", value), True)
    transform = ["transform"]
    for detail, value in (
        ("resize-0", 0),
        ("resize-1e6", 10**6),
        ("resize-8192", 8192),
        ("resize-str", "x"),
        ("resize-nonsquare", [32, 64]),
    ):
        add("transform", detail, _set_path([*transform, 0, "arguments", "size"], value), True)
    for detail, value in (
        ("mean-nan", [float("nan")] * 3),
        ("std-zero", [0, 0, 0]),
        ("std-two", [1, 1]),
        ("mean-str", ["a", "b", "c"]),
    ):
        key = "mean" if detail.startswith("mean") else "std"
        add("transform", detail, _set_path([*transform, 2, "arguments", key], value))
    for detail, value in (
        ("empty", []),
        ("unknown", [{"name": "RandomCrop", "arguments": {"size": 8}}, {"name": "ToTensor"}]),
        ("entry-null", [None, {"name": "ToTensor"}]),
        ("entry-int", [1]),
        ("entry-str", ["Resize"]),
        ("order", [{"name": "Normalize", "arguments": {"mean": [0] * 3, "std": [1] * 3}}]),
        ("tototensor-twice", [{"name": "ToTensor"}, {"name": "ToTensor"}]),
        ("arguments-list", [{"name": "Resize", "arguments": [32]}, {"name": "ToTensor"}]),
        ("unknown-argument", [{"name": "ToTensor", "arguments": {"x": 1}}]),
        ("name-missing", [{"arguments": {}}, {"name": "ToTensor"}]),
    ):
        add("transform", detail, _set("transform", value))
    for architecture in ("nope", "", "../../etc/passwd", "resnet50", "omicslens-vit"):
        add("architecture", architecture or "empty", _set("architecture", architecture))
    for detail, value in (
        ("width-1e9", {"width": 10**9, "depth": 3}),
        ("depth-1e6", {"width": 8, "depth": 10**6}),
        ("width-65536", {"width": 65536, "depth": 3}),
        ("depth-0", {"width": 8, "depth": 0}),
        ("width-negative", {"width": -1, "depth": 3}),
        ("width-float", {"width": 8.5, "depth": 3}),
        ("width-str", {"width": "8", "depth": 3}),
        ("unknown-key", {"width": 8, "depth": 3, "nope": 1}),
        ("path", {"width": 8, "depth": 3, "checkpoint_path": "/etc/passwd"}),
        ("nested-path", {"pretrained_cfg_overlay": {"file": "/etc/passwd"}}),
    ):
        add("architecture-args", detail, _set("architecture_args", value), True)
    for weights in ("../config.json", "/etc/passwd", "config.json", "nope.pt", "", "a\x00b"):
        add("weights-key", weights.replace("/", "_") or "empty", _set("weights", weights))
    add("outputs", "pearson-nan", _set_path(["outputs", 0, "pearson"], float("nan")))
    add("outputs", "short", _set("outputs", [{"name": "ERBB2"}]))
    add("outputs", "null-item", _set("outputs", [None, None, None]))
    add("outputs", "name-mismatch", _set_path(["outputs", 0, "name"], "X"))
    add("task", "embedding", _set("task", "embedding"))
    add("task", "classification", _set("task", "classification"))
    add("num-classes", "2", _set("num_classes", 2))
    add("num-classes", "1e5", _set("num_classes", 100_000))
    add("spec-version", "2.0", _set("spec_version", "2.0"))
    add("spec-version", "number", _set("spec_version", 1.0))
    add("name", "newline-nul", _set("name", "a\nb\x00c"))
    add("name", "10k", _set("name", "n" * 10_000))
    text = json.dumps(config, indent=2)
    for cut in (0, 1, len(text) // 3, len(text) // 2, len(text) - 1):
        add("json", f"truncate-{cut}", _config_text(text[:cut]))
    add("json", "not-utf8", _config_text(text.encode().replace(b"tiny", b"ti\xff\xfe", 1)))
    add("json", "bom", _config_text(b"\xef\xbb\xbf" + text.encode()))
    add("json", "utf16", _config_text(text.encode("utf-16")))
    add("json", "null", _config_text("null"))
    add("json", "list", _config_text("[]"))
    add("json", "nul", _config_text("\x00"))
    add("json", "deep-100k", _config_text("[" * 100_000 + "]" * 100_000), True)
    deep_key = text[:-1].rstrip() + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    add("json", "deep-100k-in-key", _config_text(deep_key), True)
    add(
        "json", "deep-500-in-key", _config_text(text[:-1] + ', "x": ' + "[" * 500 + "]" * 500 + "}")
    )
    big = text[:-1].rstrip() + ', "padding": "' + "x" * 50_000_000 + '"}'
    add("json", "50mb", _config_text(big), True)
    add("json", "10mb-description", _set("description", "d" * 10_000_000), True)
    add("json", "duplicate-keys", _config_text(text[:-1] + ', "num_classes": 7}'))
    for how in ("directory", "symlink-loop", "fifo"):
        add("config-file", how, _special_at("config.json", how), True)
    add("config-file", "missing", lambda root: (root / "config.json").unlink())
    return cases


def weights_cases(source: Source, rng: random.Random) -> list[Case]:
    cases: list[Case] = []
    name = next(n for n in WEIGHTS_FILES.values() if (source.path / n).exists())
    size = (source.path / name).stat().st_size

    def add(kind: str, detail: str, edit: Callable[[Path], object], hang: bool = False) -> None:
        cases.append(_bundle_case(source, kind, detail, edit, hang))

    def rewrite(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
        def edit(root: Path) -> None:
            (root / name).write_bytes(change((root / name).read_bytes()))

        return edit

    for cut in sorted({0, 8, 64, size // 2, size - 1}):
        add("weights-truncate", f"at-{cut}", rewrite(partial(_truncate, cut=cut)))
    for index in range(3):
        head = [rng.randrange(0, min(size, 128)) for _ in range(2)]
        add(
            "weights-flip",
            f"head-{index}",
            rewrite(partial(_flip, positions=head, masks=[0xFF] * 2)),
        )
    for index in range(4):
        body = [rng.randrange(size // 4, size) for _ in range(6)]
        add(
            "weights-flip",
            f"body-{index}",
            rewrite(partial(_flip, positions=body, masks=[0x7F] * 6)),
        )
    add("weights-flip", "garbage", rewrite(lambda d: random.Random(1).randbytes(len(d))))
    add("weights-file", "doubled", rewrite(lambda d: d + d))
    add("weights-file", "missing", lambda root: (root / name).unlink())
    for how in ("directory", "symlink-loop", "fifo"):
        add("weights-file", how, _special_at(name, how), True)

    def named_fifo(root: Path) -> None:
        _special(root / name, "fifo")
        config = json.loads((root / "config.json").read_text(encoding="utf-8"))
        config["weights"] = name
        (root / "config.json").write_text(json.dumps(config), encoding="utf-8")

    add("weights-file", "named-fifo", named_fifo, True)
    add("weights-pickle", "raw", _pickle_trap(name, torch_zip=False))
    add("weights-pickle", "torch-save", _pickle_trap(name, torch_zip=True))
    if name != "model.pt":  # a pickle beside the real weights, where discovery looks
        add("weights-pickle", "model-pt-only", lambda r: _only_pickle(r, name))
    return cases


def _only_pickle(root: Path, name: str) -> None:
    (root / name).unlink()
    _pickle_trap("model.pt", torch_zip=True)(root)


def bundle_cases(source: Source, rng: random.Random) -> list[Case]:
    config = config_cases(source) if source.key == "bundle-safetensors" else []
    return config + weights_cases(source, rng)


# -- the check ------------------------------------------------------------------------
def _classify_validate(rc: int, out: str, err: str, path: Path) -> Outcome:
    printed = traceback_in(err)
    if printed is not None:
        return printed
    try:
        report = json.loads(out)
    except ValueError:
        return "traceback", f"exit {rc} without valid JSON"
    if rc == 0:
        return ("ok", "") if report.get("valid") is True else ("traceback", "exit 0, not valid")
    return classify_refusal(rc, out, err, path, json_error=False)


@register_check("bundle", preload=("omicslens.app.predict", "omicslens.models.loading", "torch"))
def check_bundle(ctx: Context, path: Path, options: dict[str, Any]) -> dict[str, Outcome]:
    """``model inspect``, ``model validate`` and ``predict`` with the bundle at ``path``."""
    _one_thread()
    bundle = str(path)
    runs = {
        "inspect": ctx.run_cli(
            ["model", "inspect", "--json", bundle],
            path,
            lambda rc, out, err: classify_json_run(rc, out, err, path, ("name", "num_outputs")),
        ),
        "validate": ctx.run_cli(
            ["model", "validate", "--json", bundle],
            path,
            lambda rc, out, err: _classify_validate(rc, out, err, path),
        ),
    }
    slide = Path(options["slide"])
    out_dir = path.parent / "out"
    argv = ["predict", str(slide), "--model", bundle, "--out", str(out_dir)]
    argv += ["--format", "csv,geojson", "--device", "cpu"]
    runs["predict"] = ctx.run_cli(
        argv, path, lambda rc, out, err: classify_predict(rc, out, err, path, out_dir / slide.name)
    )
    if (path.parent / options["marker"]).exists():
        runs["predict"] = ("unsafe", "a pickle in the weights was executed")
    return runs


def _one_thread() -> None:
    # two cases run at once on a shared machine; a forked child needs no thread pool
    import torch

    torch.set_num_threads(1)
