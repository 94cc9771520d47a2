"""``config.json`` of a model bundle: a WSInfer model config plus a few optional keys.

A WSInfer-zoo config (``spec_version``, ``architecture``, ``num_classes``,
``class_names``, ``patch_size_pixels``, ``spacing_um_px``, ``transform``) is a valid
OmicsLens config as is, so WSInfer classification bundles run unchanged. Our extra keys
are all optional and WSInfer's schema ignores them:

``task``
    ``"classification"`` (default), ``"regression"`` (one value per output, e.g. predicted
    expression of one gene) or ``"embedding"`` (the outputs are features).
``apply_softmax``
    Softmax over the outputs; default true for classification only.
``output_transform``
    ``null`` or ``"log1p"``: the model was trained on ``log1p(expression)``. Predictions are
    *kept in the model's output space* (that is what the model's validation scores refer
    to and what is cached); the transform is recorded so a caller can show linear values
    with :func:`invert_output_transform` (``expm1``) when it needs them.
``outputs``
    Per-output metadata aligned with ``class_names``: ``{"name", "gene_id"?, "pearson"?,
    "spearman"?, ...}``; extra keys are kept.
``architecture_args``
    Keyword arguments for the architecture (e.g. ViT depth/width), used when the weights
    are a state dict rather than TorchScript.
``tile_size_um``
    Side of one grid cell in micrometres, when the model looks at more context than the
    tile it predicts: the input window (``patch_size_pixels`` at ``spacing_um_px``) is
    centred on each tile. Default: the input window itself (WSInfer's behaviour).
``name``, ``version``, ``description``, ``citation``, ``weights`` (a file in the bundle).

Parsing never imports torch, so the CLI and the napari plugin can list models cheaply.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, cast

import numpy as np

from omicslens.models.errors import BundleConfigError, ConfigProblem

SPEC_VERSIONS = ("1.0",)
TASKS = ("classification", "regression", "embedding")
OUTPUT_TRANSFORMS = ("log1p",)
TRANSFORM_NAMES = ("Resize", "ToTensor", "Normalize")
SCORE_KEYS = ("pearson", "spearman")

Task = Literal["classification", "regression", "embedding"]

# Keys WSInfer defines plus the ones we add; everything else is kept in ``extra``.
_WSINFER_KEYS = (
    "spec_version",
    "architecture",
    "num_classes",
    "class_names",
    "patch_size_pixels",
    "spacing_um_px",
    "transform",
)
_OUR_KEYS = (
    "tile_size_um",
    "task",
    "apply_softmax",
    "output_transform",
    "outputs",
    "architecture_args",
    "name",
    "version",
    "description",
    "citation",
    "weights",
)
# Transform arguments we honour; anything else would silently change what the model sees.
_TRANSFORM_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "Resize": ("size", "interpolation", "antialias", "max_size"),
    "ToTensor": (),
    "Normalize": ("mean", "std", "inplace"),
}


@dataclass(frozen=True)
class TransformStep:
    """One entry of the ``transform`` list (torchvision names, as in WSInfer)."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BundleConfig:
    """A validated ``config.json``. Build with :meth:`from_file` or :meth:`from_dict`."""

    spec_version: str
    architecture: str
    num_classes: int
    class_names: tuple[str, ...]
    patch_size_pixels: int
    spacing_um_px: float
    transform: tuple[TransformStep, ...]
    task: Task = "classification"
    apply_softmax: bool = True
    output_transform: str | None = None
    outputs: tuple[Mapping[str, Any], ...] | None = None
    architecture_args: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    version: str | None = None
    description: str | None = None
    citation: str | None = None
    weights: str | None = None
    tile_size_um: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> BundleConfig:
        """Read and validate ``config.json``; raises :class:`BundleConfigError` naming it."""
        path = Path(path)
        try:
            if path.is_file() and path.stat().st_size > MAX_CONFIG_BYTES:
                raise BundleConfigError(
                    path, [ConfigProblem("<file>", "larger than 16 MiB; not a model config")]
                )
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BundleConfigError(
                path, [ConfigProblem("<file>", "config.json is missing")]
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise BundleConfigError(
                path, [ConfigProblem("<file>", f"cannot be read: {error}")]
            ) from error
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise BundleConfigError(
                path, [ConfigProblem("<file>", f"is not valid JSON: {error}")]
            ) from error
        except RecursionError:
            raise BundleConfigError(
                path, [ConfigProblem("<file>", "JSON nested too deeply to be a model config")]
            ) from None
        return cls.from_dict(data, source=path)

    @classmethod
    def from_dict(cls, data: Any, source: str | Path = "config.json") -> BundleConfig:
        """Validate a parsed config; every broken field is reported in one error."""
        if not isinstance(data, Mapping):
            raise BundleConfigError(
                source,
                [ConfigProblem("<root>", f"expected a JSON object, got {_describe(data)}")],
            )
        checker = _Checker(data)
        values = checker.check_all()
        if checker.problems:
            raise BundleConfigError(source, checker.problems)
        extra = {key: value for key, value in data.items() if key not in _WSINFER_KEYS + _OUR_KEYS}
        return cls(**values, extra=extra, raw=dict(data))

    # -- derived values ----------------------------------------------------------------
    @property
    def input_size(self) -> int:
        """Side of the square image the model sees: ``Resize``'s size, else the patch size."""
        for step in self.transform:
            if step.name == "Resize":
                size = step.arguments["size"]
                return int(size if isinstance(size, int) else size[0])
        return self.patch_size_pixels

    @property
    def mean(self) -> tuple[float, float, float]:
        """Per-channel mean subtracted after scaling to [0, 1] (0 without ``Normalize``)."""
        step = self._normalize()
        return (0.0, 0.0, 0.0) if step is None else _triple(step.arguments["mean"])

    @property
    def std(self) -> tuple[float, float, float]:
        """Per-channel std divided by after subtracting the mean (1 without ``Normalize``)."""
        step = self._normalize()
        return (1.0, 1.0, 1.0) if step is None else _triple(step.arguments["std"])

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.class_names

    def output_scores(self, key: str = "pearson") -> dict[str, float]:
        """Per-output validation scores (e.g. Pearson r on held-out slides), if recorded."""
        if not self.outputs:
            return {}
        return {
            name: float(meta[key])
            for name, meta in zip(self.class_names, self.outputs, strict=True)
            if key in meta
        }

    def to_dict(self) -> dict[str, Any]:
        """The config as loaded (for display and for checking against WSInfer's schema)."""
        return dict(self.raw)

    def _normalize(self) -> TransformStep | None:
        return next((step for step in self.transform if step.name == "Normalize"), None)


def invert_output_transform(values: np.ndarray, transform: str | None) -> np.ndarray:
    """Map predictions from the model's output space back to linear values.

    ``"log1p"`` -> ``expm1``; ``None`` returns the input unchanged. We store and cache
    predictions untransformed, so this is applied only where linear values are shown.
    """
    if transform is None:
        return values
    if transform == "log1p":
        return np.expm1(values)
    raise ValueError(f"unknown output_transform {transform!r}; known: {OUTPUT_TRANSFORMS}")


# -- validation --------------------------------------------------------------------------
MAX_CONFIG_BYTES = 16 * 2**20
#: microns per pixel a model may ask for (electron microscopy to whole-slide overviews)
SPACING_RANGE = (0.01, 1000.0)
#: sizes beyond which a config is not a real model (and would allocate absurd buffers)
INT_LIMITS = {"patch_size_pixels": 8192, "num_classes": 100_000}
#: side of the image a network may be fed (``Resize``'s size): real models take 224-1024
#: px; 10^6 px would ask for terabytes per patch on the first forward pass
MAX_INPUT_SIZE = 2048


def _too_large_input(size: int) -> str:
    return (
        f"expected at most {MAX_INPUT_SIZE} px (the network's input side), got {size}; "
        "a larger input does not fit in memory for a batch of patches"
    )


class _Checker:
    """Walks a config dict once, collecting every problem instead of stopping at the first."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.problems: list[ConfigProblem] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(ConfigProblem(path, message))

    def check_all(self) -> dict[str, Any]:
        data = self.data
        values: dict[str, Any] = {}
        values["spec_version"] = self.spec_version(data.get("spec_version", _MISSING))
        values["architecture"] = self.string("architecture", required=True)
        num_classes = self.positive_int("num_classes")
        values["num_classes"] = num_classes
        values["class_names"] = self.class_names(num_classes)
        patch = self.positive_int("patch_size_pixels")
        values["patch_size_pixels"] = patch
        values["spacing_um_px"] = self.spacing()
        values["tile_size_um"] = self.tile_size(patch * values["spacing_um_px"])
        values["transform"] = self.transform()
        task = self.task()
        values["task"] = task
        values["apply_softmax"] = self.apply_softmax(task, num_classes)
        values["output_transform"] = self.output_transform(task)
        values["outputs"] = self.outputs(values["class_names"])
        values["architecture_args"] = self.architecture_args()
        for key in ("name", "version", "description", "citation"):
            values[key] = self.string(key, required=False)
        values["weights"] = self.weights()
        return values

    # -- WSInfer fields ----------------------------------------------------------------
    def spec_version(self, value: Any) -> str:
        if value is _MISSING:
            self.fail("spec_version", f"is required (one of {list(SPEC_VERSIONS)})")
        elif value not in SPEC_VERSIONS:
            self.fail("spec_version", f"expected one of {list(SPEC_VERSIONS)}, got {value!r}")
        return str(value)

    def string(self, key: str, *, required: bool) -> str | None:
        value = self.data.get(key, _MISSING)
        if value is _MISSING or (value is None and not required):
            if required:
                self.fail(key, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"expected a non-empty string, got {_describe(value)}")
            return None
        return value

    def positive_int(self, key: str) -> int:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            self.fail(key, "is required (a positive integer)")
            return 0
        if not _is_int(value) or value < 1:
            self.fail(key, f"expected a positive integer, got {_describe(value)}")
            return 0
        limit = INT_LIMITS.get(key)
        if limit is not None and value > limit:
            self.fail(key, f"expected at most {limit}, got {value}")
            return 0
        return int(value)

    def class_names(self, num_classes: int) -> tuple[str, ...]:
        value = self.data.get("class_names", _MISSING)
        if value is _MISSING:
            self.fail("class_names", "is required (a list of unique strings)")
            return ()
        if not isinstance(value, list):
            self.fail("class_names", f"expected a list of strings, got {_describe(value)}")
            return ()
        names: list[str] = []
        seen: set[str] = set()
        for index, name in enumerate(value):
            if not isinstance(name, str) or not name:
                self.fail(f"class_names[{index}]", f"expected a string, got {_describe(name)}")
            elif len(name) > 200 or not name.isprintable():
                # NUL, newlines or lone surrogates break CSV, h5ad and GeoJSON writers
                self.fail(
                    f"class_names[{index}]",
                    f"expected a printable name of at most 200 characters, got {name[:40]!r}",
                )
            elif name in seen:
                self.fail(f"class_names[{index}]", f"duplicate name {name!r}")
            else:
                seen.add(name)
            names.append(str(name))
        if num_classes and len(value) != num_classes:
            self.fail(
                "class_names",
                f"has {len(value)} names but num_classes is {num_classes}; they must match",
            )
        return tuple(names)

    def spacing(self) -> float:
        value = self.data.get("spacing_um_px", _MISSING)
        if value is _MISSING:
            self.fail("spacing_um_px", "is required (microns per pixel, e.g. 0.5)")
            return 0.0
        if not _is_number(value) or not math.isfinite(value) or value <= 0:
            self.fail(
                "spacing_um_px",
                f"expected a positive number of microns per pixel, got {_describe(value)}",
            )
            return 0.0
        if not SPACING_RANGE[0] <= value <= SPACING_RANGE[1]:
            # 1e-9 um/px would plan a tile grid of ~10^17 cells (129 GiB asked of numpy)
            self.fail(
                "spacing_um_px",
                f"expected {SPACING_RANGE[0]:g}-{SPACING_RANGE[1]:g} microns per pixel "
                f"(microscopy), got {value:g}",
            )
            return 0.0
        return float(value)

    def tile_size(self, window_um: float) -> float | None:
        value = self.data.get("tile_size_um")
        if value is None:
            return None
        if not _is_number(value) or not math.isfinite(value) or value <= 0:
            self.fail("tile_size_um", f"expected a positive number of um, got {_describe(value)}")
            return None
        if window_um > 0 and value > window_um * (1 + 1e-9):
            self.fail(
                "tile_size_um",
                f"expected at most the input window ({window_um:g} um), got {value:g}",
            )
            return None
        return float(value)

    def transform(self) -> tuple[TransformStep, ...]:
        value = self.data.get("transform", _MISSING)
        if value is _MISSING:
            self.fail("transform", "is required (a list of Resize/ToTensor/Normalize steps)")
            return ()
        if not isinstance(value, list):
            self.fail("transform", f"expected a list of steps, got {_describe(value)}")
            return ()
        steps: list[TransformStep] = []
        for index, item in enumerate(value):
            step = self.transform_step(f"transform[{index}]", item)
            if step is not None:
                steps.append(step)
        self.transform_order(steps)
        return tuple(steps)

    def transform_step(self, path: str, item: Any) -> TransformStep | None:
        if not isinstance(item, Mapping):
            self.fail(path, f"expected an object with 'name', got {_describe(item)}")
            return None
        name = item.get("name")
        if name not in TRANSFORM_NAMES:
            self.fail(f"{path}.name", f"expected one of {list(TRANSFORM_NAMES)}, got {name!r}")
            return None
        for key in item:
            if key not in ("name", "arguments"):
                self.fail(f"{path}.{key}", "unknown key (a step has only 'name' and 'arguments')")
        arguments = item.get("arguments", {})
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, Mapping):
            self.fail(f"{path}.arguments", f"expected an object, got {_describe(arguments)}")
            return None
        for key in arguments:
            if key not in _TRANSFORM_ARGUMENTS[name]:
                self.fail(
                    f"{path}.arguments.{key}",
                    f"{name} argument not supported by OmicsLens "
                    f"(supported: {list(_TRANSFORM_ARGUMENTS[name]) or 'none'})",
                )
        if name == "Resize":
            self.resize_arguments(f"{path}.arguments", arguments)
        elif name == "Normalize":
            self.normalize_arguments(f"{path}.arguments", arguments)
        return TransformStep(name, dict(arguments))

    def resize_arguments(self, path: str, arguments: Mapping[str, Any]) -> None:
        size = arguments.get("size", _MISSING)
        if size is _MISSING:
            self.fail(f"{path}.size", "is required")
        elif _is_int(size):
            if size < 1:
                self.fail(f"{path}.size", f"expected a positive integer, got {_describe(size)}")
            elif size > MAX_INPUT_SIZE:
                self.fail(f"{path}.size", _too_large_input(size))
        elif (
            isinstance(size, list)
            and len(size) == 2
            and all(_is_int(side) and side >= 1 for side in size)
        ):
            if size[0] != size[1]:
                self.fail(f"{path}.size", f"patches are square; got a non-square size {size}")
            elif size[0] > MAX_INPUT_SIZE:
                self.fail(f"{path}.size", _too_large_input(size[0]))
        else:
            self.fail(
                f"{path}.size",
                f"expected a positive integer or [h, w] with h == w, got {_describe(size)}",
            )
        interpolation = arguments.get("interpolation", "bilinear")
        if interpolation not in ("bilinear", 2):  # 2 is PIL/torchvision's BILINEAR code
            self.fail(
                f"{path}.interpolation",
                f"only bilinear resizing is implemented, got {interpolation!r}",
            )
        antialias = arguments.get("antialias", True)
        if antialias is not True and antialias is not None:
            self.fail(f"{path}.antialias", "only antialiased resizing is implemented")
        if arguments.get("max_size") is not None:
            self.fail(f"{path}.max_size", "is not supported (patches are square)")

    def normalize_arguments(self, path: str, arguments: Mapping[str, Any]) -> None:
        for key in ("mean", "std"):
            value = arguments.get(key, _MISSING)
            if value is _MISSING:
                self.fail(f"{path}.{key}", "is required (three numbers, one per RGB channel)")
                continue
            if not isinstance(value, list) or len(value) != 3:
                self.fail(
                    f"{path}.{key}", f"expected a list of 3 numbers (RGB), got {_describe(value)}"
                )
                continue
            for index, number in enumerate(value):
                if not _is_number(number) or not math.isfinite(number):
                    self.fail(
                        f"{path}.{key}[{index}]",
                        f"expected a finite number, got {_describe(number)}",
                    )
                elif key == "std" and number <= 0:
                    self.fail(
                        f"{path}.{key}[{index}]",
                        f"expected a positive number (it divides), got {number!r}",
                    )

    def transform_order(self, steps: Sequence[TransformStep]) -> None:
        names = [step.name for step in steps]
        for name in TRANSFORM_NAMES:
            if names.count(name) > 1:
                self.fail("transform", f"{name} appears {names.count(name)} times; at most once")
        if "ToTensor" not in names:
            self.fail("transform", "needs a ToTensor step (uint8 pixels -> floats in [0, 1])")
        elif "Normalize" in names and names.index("Normalize") < names.index("ToTensor"):
            self.fail("transform", "Normalize must come after ToTensor")

    # -- our fields --------------------------------------------------------------------
    def task(self) -> Task:
        value = self.data.get("task", "classification")
        if value not in TASKS:
            self.fail("task", f"expected one of {list(TASKS)}, got {_describe(value)}")
            return "classification"
        return cast(Task, value)

    def apply_softmax(self, task: Task, num_classes: int) -> bool:
        value = self.data.get("apply_softmax", task == "classification")
        if not isinstance(value, bool):
            self.fail("apply_softmax", f"expected true or false, got {_describe(value)}")
            return False
        if value and task != "classification":
            self.fail("apply_softmax", f"softmax only makes sense for classification, not {task}")
        if value and num_classes == 1:
            self.fail("apply_softmax", "softmax over a single output is always 1")
        return value

    def output_transform(self, task: Task) -> str | None:
        value = self.data.get("output_transform")
        if value is None:
            return None
        if value not in OUTPUT_TRANSFORMS:
            self.fail(
                "output_transform",
                f"expected null or one of {list(OUTPUT_TRANSFORMS)}, got {_describe(value)}",
            )
            return None
        if task != "regression":
            self.fail("output_transform", f"only applies to regression, not {task}")
        return str(value)

    def outputs(self, class_names: tuple[str, ...]) -> tuple[Mapping[str, Any], ...] | None:
        value = self.data.get("outputs")
        if value is None:
            return None
        if not isinstance(value, list):
            self.fail("outputs", f"expected a list of objects, got {_describe(value)}")
            return None
        if class_names and len(value) != len(class_names):
            self.fail(
                "outputs",
                f"has {len(value)} entries but there are {len(class_names)} class_names; "
                "they must be aligned one to one",
            )
        result: list[Mapping[str, Any]] = []
        for index, meta in enumerate(value):
            path = f"outputs[{index}]"
            if not isinstance(meta, Mapping):
                self.fail(path, f"expected an object, got {_describe(meta)}")
                continue
            name = meta.get("name")
            if name is not None and index < len(class_names) and name != class_names[index]:
                self.fail(
                    f"{path}.name",
                    f"{name!r} does not match class_names[{index}] {class_names[index]!r}",
                )
            gene_id = meta.get("gene_id")
            if gene_id is not None and not isinstance(gene_id, str):
                self.fail(f"{path}.gene_id", f"expected a string, got {_describe(gene_id)}")
            for key in SCORE_KEYS:
                score = meta.get(key)
                if score is None:
                    continue
                if not _is_number(score) or not -1.0 <= score <= 1.0:
                    self.fail(
                        f"{path}.{key}",
                        f"expected a correlation between -1 and 1, got {_describe(score)}",
                    )
            result.append(dict(meta))
        return tuple(result)

    def architecture_args(self) -> dict[str, Any]:
        value = self.data.get("architecture_args")
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail("architecture_args", f"expected an object, got {_describe(value)}")
            return {}
        return dict(value)

    def weights(self) -> str | None:
        value = self.string("weights", required=False)
        if value is None:
            return None
        pure = PurePosixPath(value.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts or ":" in value:
            self.fail("weights", f"must be a file inside the bundle folder, got {value!r}")
            return None
        return value


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    """``-3``, ``'224' (a string)``, ``true (a boolean)``: what the user wrote and its type."""
    text = json.dumps(value) if _json_safe(value) else repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if isinstance(value, bool):
        return f"{text} (a boolean)"
    if isinstance(value, str):
        return f"{text} (a string)"
    if value is None:
        return "null"
    if isinstance(value, list):
        return f"{text} (a list of {len(value)})"
    if isinstance(value, Mapping):
        return f"{text} (an object)"
    return text


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _triple(values: Sequence[Any]) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))
