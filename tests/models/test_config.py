"""config.json validation: every broken field is rejected, named, and all are listed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from omicslens.models.config import BundleConfig, invert_output_transform
from omicslens.models.errors import BundleConfigError, BundleError


def valid() -> dict[str, Any]:
    return {
        "spec_version": "1.0",
        "architecture": "omicslens-tinycnn",
        "num_classes": 3,
        "class_names": ["ERBB2", "CD74", "MKI67"],
        "patch_size_pixels": 224,
        "spacing_um_px": 0.5,
        "transform": [
            {"name": "Resize", "arguments": {"size": 224}},
            {"name": "ToTensor"},
            {"name": "Normalize", "arguments": {"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}},
        ],
        "task": "regression",
    }


def broken(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(valid())
    for key, value in changes.items():
        if value is REMOVE:
            config.pop(key)
        else:
            config[key] = value
    return config


REMOVE = object()


def rejected(config: dict[str, Any]) -> BundleConfigError:
    with pytest.raises(BundleConfigError) as caught:
        BundleConfig.from_dict(config, source="/bundles/demo/config.json")
    return caught.value


def test_valid_config_parses_with_defaults_and_derived_values() -> None:
    config = BundleConfig.from_dict(valid())
    assert config.task == "regression"
    assert config.apply_softmax is False  # default is true only for classification
    assert config.input_size == 224
    assert config.mean == (0.5, 0.5, 0.5) and config.std == (0.2, 0.2, 0.2)
    assert config.output_names == ("ERBB2", "CD74", "MKI67")


def test_classification_defaults_to_softmax_and_unknown_keys_are_kept() -> None:
    config = BundleConfig.from_dict(broken(task=REMOVE, num_classes=3, my_lab_note="hello"))
    assert config.task == "classification"
    assert config.apply_softmax is True
    assert config.extra == {"my_lab_note": "hello"}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"spec_version": REMOVE}, "spec_version", "required"),
        ({"spec_version": "2.0"}, "spec_version", "'2.0'"),
        ({"num_classes": 4}, "class_names", "num_classes is 4"),
        ({"patch_size_pixels": -3}, "patch_size_pixels", "expected a positive integer, got -3"),
        ({"patch_size_pixels": "224"}, "patch_size_pixels", '"224" (a string)'),
        ({"num_classes": True}, "num_classes", "true (a boolean)"),
        ({"spacing_um_px": 0}, "spacing_um_px", "positive number"),
        ({"architecture": 5}, "architecture", "non-empty string"),
        ({"class_names": ["A", "A", "B"]}, "class_names[1]", "duplicate"),
        ({"task": "segmentation"}, "task", "segmentation"),
        ({"apply_softmax": "yes"}, "apply_softmax", "true or false"),
        ({"apply_softmax": True}, "apply_softmax", "only makes sense for classification"),
        ({"output_transform": "log2"}, "output_transform", "log2"),
        ({"outputs": [{"name": "ERBB2"}]}, "outputs", "aligned"),
        ({"weights": "../../etc/passwd"}, "weights", "inside the bundle folder"),
        ({"transform": "Resize"}, "transform", "list of steps"),
    ],
)
def test_each_broken_field_is_rejected_and_named(
    changes: dict[str, Any], field: str, words: str
) -> None:
    error = rejected(broken(**changes))
    assert error.field == field
    assert words in str(error)
    assert str(error).startswith(f"{Path('/bundles/demo/config.json')}: field '{field}'")
    assert isinstance(error, BundleError) and isinstance(error, ValueError)


def test_message_format_matches_documentation() -> None:
    error = rejected(broken(patch_size_pixels=-3))
    assert str(error) == (
        f"{Path('/bundles/demo/config.json')}: field 'patch_size_pixels': "
        "expected a positive integer, got -3"
    )


@pytest.mark.parametrize(
    ("transform", "field"),
    [
        (
            [
                {"name": "Resize", "arguments": {"size": 224}},
                {"name": "ToTensor"},
                {"name": "ColorJitter"},
            ],
            "transform[2].name",
        ),
        (
            [
                {"name": "ToTensor"},
                {"name": "Normalize", "arguments": {"mean": [0.5, 0.5, 0.5], "std": [0.2, 0, 0.2]}},
            ],
            "transform[1].arguments.std[1]",
        ),
        (
            [
                {"name": "ToTensor"},
                {"name": "Normalize", "arguments": {"mean": [0.5, 0.5], "std": [0.2, 0.2, 0.2]}},
            ],
            "transform[1].arguments.mean",
        ),
        (
            [{"name": "ToTensor"}, {"name": "Normalize", "arguments": {"std": [1, 1, 1]}}],
            "transform[1].arguments.mean",
        ),
        (
            [{"name": "Resize", "arguments": {"size": 0}}, {"name": "ToTensor"}],
            "transform[0].arguments.size",
        ),
        (
            [{"name": "Resize", "arguments": {"size": [224, 112]}}, {"name": "ToTensor"}],
            "transform[0].arguments.size",
        ),
        (
            [
                {"name": "Resize", "arguments": {"size": 224, "interpolation": "nearest"}},
                {"name": "ToTensor"},
            ],
            "transform[0].arguments.interpolation",
        ),
        (
            [
                {"name": "Normalize", "arguments": {"mean": [0, 0, 0], "std": [1, 1, 1]}},
                {"name": "ToTensor"},
            ],
            "transform",
        ),
        ([{"name": "Resize", "arguments": {"size": 224}}], "transform"),
    ],
)
def test_broken_transforms_name_the_json_path(transform: list[Any], field: str) -> None:
    assert rejected(broken(transform=transform)).field == field


def test_every_broken_field_is_listed_in_one_error() -> None:
    config = broken(spec_version=REMOVE, patch_size_pixels=-3, spacing_um_px="half")
    config["transform"][2]["arguments"]["std"] = [0.2, 0.0, 0.2]
    error = rejected(config)
    assert error.fields == (
        "spec_version",
        "patch_size_pixels",
        "spacing_um_px",
        "transform[2].arguments.std[1]",
    )
    assert error.field == "spec_version"
    assert "4 problems" in str(error)
    for field in error.fields:
        assert f"field '{field}'" in str(error)


def test_from_file_names_the_file_for_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(BundleConfigError, match="not valid JSON") as caught:
        BundleConfig.from_file(path)
    assert caught.value.path == path and str(path) in str(caught.value)


def test_root_must_be_an_object() -> None:
    assert rejected(json.loads("[1, 2]")).field == "<root>"  # type: ignore[arg-type]


def test_output_metadata_and_scores() -> None:
    outputs = [
        {"name": "ERBB2", "gene_id": "ENSG00000141736", "pearson": 0.61},
        {"name": "CD74", "pearson": 0.42, "n_spots": 1200},
        {"name": "MKI67"},
    ]
    config = BundleConfig.from_dict(broken(outputs=outputs))
    assert config.output_scores("pearson") == {"ERBB2": 0.61, "CD74": 0.42}
    assert config.outputs is not None and config.outputs[1]["n_spots"] == 1200
    bad = [dict(outputs[0], pearson=1.7), dict(outputs[1], name="CD4"), outputs[2]]
    assert rejected(broken(outputs=bad)).fields == ("outputs[0].pearson", "outputs[1].name")


def test_log1p_outputs_are_recorded_not_applied() -> None:
    config = BundleConfig.from_dict(broken(output_transform="log1p"))
    assert config.output_transform == "log1p"
    values = np.log1p(np.array([0.0, 1.0, 99.0], dtype=np.float32))
    np.testing.assert_allclose(
        invert_output_transform(values, config.output_transform), [0, 1, 99], rtol=1e-6
    )
    assert invert_output_transform(values, None) is values
    with pytest.raises(BundleConfigError, match="only applies to regression"):
        BundleConfig.from_dict(broken(task="classification", output_transform="log1p"))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("spacing_um_px", 1e-09, "microns per pixel"),
        ("spacing_um_px", 1e6, "microns per pixel"),
        ("patch_size_pixels", 10**6, "at most 8192"),
        ("class_names", ["a\x00b", "c", "d"], "printable"),
        ("class_names", ["a\nb", "c", "d"], "printable"),
        ("class_names", ["\udcff", "c", "d"], "printable"),
    ],
)
def test_bounds_on_sizes_spacings_and_names(tmp_path, field, value, message) -> None:
    from omicslens.models.config import BundleConfig
    from omicslens.models.errors import BundleConfigError

    data = {
        "spec_version": "1.0",
        "architecture": "omicslens-tinycnn",
        "num_classes": 3,
        "class_names": ["a", "b", "c"],
        "patch_size_pixels": 32,
        "spacing_um_px": 0.5,
        "transform": [{"name": "ToTensor"}],
        field: value,
    }
    with pytest.raises(BundleConfigError, match=message):
        BundleConfig.from_dict(data, tmp_path / "config.json")


def test_deeply_nested_or_huge_configs_are_typed_errors(tmp_path) -> None:
    from omicslens.models.config import BundleConfig
    from omicslens.models.errors import BundleConfigError

    path = tmp_path / "config.json"
    path.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(BundleConfigError, match="nested too deeply"):
        BundleConfig.from_file(path)
    path.write_bytes(b" " * (16 * 2**20 + 1))
    with pytest.raises(BundleConfigError, match="16 MiB"):
        BundleConfig.from_file(path)


@pytest.mark.parametrize("size", [2049, 10**6, [4096, 4096]])
def test_resize_to_a_huge_input_is_refused_before_any_forward_pass(size: Any) -> None:
    """Fuzz (issue 13): Resize size 10^6 asked the allocator for 192 TB per batch."""
    config = copy.deepcopy(valid())
    config["transform"][0]["arguments"]["size"] = size
    error = rejected(config)
    assert error.field == "transform[0].arguments.size"
    assert "at most 2048 px" in str(error)
