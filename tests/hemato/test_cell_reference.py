"""The review flag's reference: class-conditional Mahalanobis, checked against numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omicslens.hemato.cell_reference import (
    CellReference,
    CellReferenceError,
    load_cell_reference,
)


def clusters(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0] * 6, [6.0] + [0.0] * 5, [0.0, 6.0] + [0.0] * 4])
    labels = rng.integers(0, 3, n)
    return centres[labels] + rng.normal(0, 1, (n, 6)), labels


def test_distance_is_the_nearest_class_mahalanobis() -> None:
    x, y = clusters(600)
    reference = CellReference.fit(x, y, ["a", "b", "c"], components=6, shrink=0.0)
    probe = np.array([[3.0, 3.0, 0, 0, 0, 0], [0.2, 5.5, 0, 0, 0, 0]])
    projected = (probe - reference.mean) @ reference.components
    direct = np.min(
        [
            np.sqrt(np.einsum("nk,kl,nl->n", projected - c, reference.precision, projected - c))
            for c in reference.class_means
        ],
        axis=0,
    )
    np.testing.assert_allclose(reference.raw_distance(probe), direct)
    # with no shrinkage and all components, this is the textbook distance to class "c"
    pooled = np.cov(np.concatenate([x[y == k] - x[y == k].mean(0) for k in range(3)]).T)
    delta = probe[1] - x[y == 2].mean(0)
    textbook = float(np.sqrt(delta @ np.linalg.inv(pooled) @ delta))
    assert reference.raw_distance(probe[1:])[0] == pytest.approx(textbook, rel=1e-6)


def test_about_one_in_a_hundred_new_cells_of_the_same_kind_is_flagged() -> None:
    x, y = clusters(900)
    reference = CellReference.fit(x, y, ["a", "b", "c"], components=6)
    fresh, _ = clusters(4000, seed=1)
    rate = float(reference.flags(fresh).mean())
    assert 0.002 < rate < 0.04
    far = np.full((1, 6), 8.0)  # between and beyond every class
    assert reference.flags(far)[0]
    assert reference.distance(far)[0] > 2


def test_write_and_load(tmp_path: Path) -> None:
    x, y = clusters(300)
    reference = CellReference.fit(x, y, ["a", "b", "c"], components=4)
    reference.write(tmp_path)
    loaded = load_cell_reference(tmp_path)
    assert loaded is not None
    np.testing.assert_allclose(loaded.distance(x[:20]), reference.distance(x[:20]), rtol=1e-5)
    assert load_cell_reference(tmp_path / "nothing-here") is None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: d.update(spec_version=99),
        lambda d: d.update(scale=0),
        lambda d: d.update(precision=[[1.0]]),
        lambda d: d.pop("mean"),
    ],
)
def test_a_broken_reference_is_a_typed_error(tmp_path: Path, mangle) -> None:
    x, y = clusters(300)
    CellReference.fit(x, y, ["a", "b", "c"], components=4).write(tmp_path)
    path = tmp_path / "cell_reference.json"
    data = json.loads(path.read_text())
    mangle(data)
    path.write_text(json.dumps(data))
    with pytest.raises(CellReferenceError, match=r"cell_reference.json"):
        load_cell_reference(tmp_path)
    (tmp_path / "cell_reference.json").write_text("{")
    with pytest.raises(CellReferenceError, match="not a readable"):
        load_cell_reference(tmp_path)


def test_wrong_embedding_width_is_refused() -> None:
    x, y = clusters(300)
    reference = CellReference.fit(x, y, ["a", "b", "c"], components=4)
    with pytest.raises(ValueError, match="expected"):
        reference.distance(np.zeros((2, 5)))


def _written(tmp_path: Path) -> Path:
    x, y = clusters(200)
    CellReference.fit(x, y, ["a", "b", "c"], components=4).write(tmp_path)
    return tmp_path / "cell_reference.json"


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: None, "expected a JSON object"),
        (lambda d: [d], "expected a JSON object"),
        (lambda d: {**d, "mean": [float("nan")] * len(d["mean"])}, "mean holds NaN"),
        (lambda d: {**d, "class_means": [["x"] * 4] * 3}, "class_means must be"),
        (lambda d: {**d, "scale": float("inf")}, "scale must be a positive"),
        (lambda d: {**d, "scale": "8.8"}, "scale must be a number"),
        (lambda d: {**d, "threshold": float("nan")}, "threshold must be a positive"),
        (lambda d: {**d, "classes": ["a", "b"]}, "class_means has shape"),
        (lambda d: {**d, "classes": [1, 2, 3]}, "classes must be a list"),
        (lambda d: {**d, "components": [[1.0], [2.0, 3.0]]}, "ragged"),
        (lambda d: {**d, "provenance": [1]}, "provenance must be"),
        (lambda d: {k: v for k, v in d.items() if k != "precision"}, "missing field"),
    ],
)
def test_malformed_cell_reference_is_typed_and_named(tmp_path: Path, mutate, problem) -> None:
    path = _written(tmp_path)
    path.write_text(json.dumps(mutate(json.loads(path.read_text()))))
    with pytest.raises(CellReferenceError, match=problem) as raised:
        load_cell_reference(tmp_path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("make", [lambda p: p.mkdir(), lambda p: __import__("os").mkfifo(p)])
def test_a_cell_reference_that_is_not_a_file_is_typed(tmp_path: Path, make) -> None:
    make(tmp_path / "cell_reference.json")
    with pytest.raises(CellReferenceError, match="not a regular file"):
        load_cell_reference(tmp_path)
