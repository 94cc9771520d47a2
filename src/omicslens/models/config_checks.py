"""Validation of a parsed ``config.json``: one pass that collects every problem.

Split out of :mod:`omicslens.models.config`: :class:`BundleConfig` is the validated value,
this module is the rule book that decides what is valid and words each complaint (the
field's path and what was expected). :meth:`BundleConfig.from_dict` runs it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, cast

from omicslens.models.config_spec import (
    _TRANSFORM_ARGUMENTS,
    INT_LIMITS,
    MAX_INPUT_SIZE,
    SCORE_KEYS,
    SPACING_RANGE,
    SPEC_VERSIONS,
    TASKS,
    TRANSFORM_NAMES,
    Task,
    TransformStep,
)
from omicslens.models.errors import ConfigProblem
from omicslens.models.json_values import _MISSING, _describe, _is_int, _is_number
from omicslens.models.output_transforms import OUTPUT_TRANSFORMS


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
