"""The domain reference: distances, verdicts and the domain.json file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from omicslens.core.domain import (
    DomainReference,
    DomainReferenceError,
    VerdictRules,
    fit_reference,
    load_reference,
    slide_verdict,
)


def _training(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tiles of one fixed distribution; ``seed`` draws new tiles from it."""
    mixing = np.random.default_rng(42)
    to_colour, to_outputs = mixing.normal(size=(3, 12)), mixing.normal(size=(3, 20))
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 3))
    colour = latent @ to_colour + 0.3 * rng.normal(size=(n, 12))
    outputs = latent @ to_outputs + 0.3 * rng.normal(size=(n, 20))
    return colour, outputs


def test_unseen_tiles_of_the_training_distribution_are_in_domain() -> None:
    colour, outputs = _training()
    reference = fit_reference(colour, outputs, output_components=4)
    new_colour, new_outputs = _training(400, seed=1)  # same distribution, new draws
    distances = reference.distance(new_colour, new_outputs)
    assert np.mean(distances <= 1) > 0.9  # the default scale: 95 % of held-out tiles
    assert slide_verdict(distances).verdict == "in-domain"


def test_shifted_tiles_are_out_of_domain_in_colour_or_in_outputs() -> None:
    colour, outputs = _training()
    reference = fit_reference(colour, outputs, output_components=4)
    new_colour, new_outputs = _training(400, seed=1)
    colour_shift = reference.distance(new_colour + 3 * colour.std(0), new_outputs)
    output_shift = reference.distance(new_colour, new_outputs * 5)
    for distances in (colour_shift, output_shift):
        assert np.mean(distances <= 1) < 0.2
        verdict = slide_verdict(distances)
        assert verdict.verdict == "out-of-domain"
        assert verdict.warning and "outside what the model has seen" in verdict.warning


def test_the_scale_comes_from_held_out_tiles() -> None:
    colour, outputs = _training()
    held = np.zeros(len(colour), bool)
    held[::5] = True
    reference = fit_reference(colour, outputs, holdout=held, quantile=0.9)
    inside = reference.distance(colour[held], outputs[held]) <= 1
    assert inside.mean() == pytest.approx(0.9, abs=0.01)
    assert reference.provenance["tiles_held_out"] == held.sum()


def test_verdict_rules() -> None:
    rules = VerdictRules(in_domain=0.8, out_of_domain=0.5, min_tiles=20)
    assert rules.verdict(0.9, 100) == "in-domain"
    assert rules.verdict(0.6, 100) == "uncertain"
    assert rules.verdict(0.3, 100) == "out-of-domain"
    assert rules.verdict(1.0, 5) == "uncertain"  # few tiles never vouch for a slide
    assert rules.verdict(0.0, 4) == "out-of-domain"  # ...but can warn about it
    empty = slide_verdict(np.array([np.nan, np.nan]))
    assert empty.verdict == "uncertain" and empty.tiles_checked == 0


def test_file_round_trip_gives_the_same_distances(tmp_path) -> None:
    colour, outputs = _training()
    reference = fit_reference(colour, outputs, provenance={"slides": ["a.svs"]})
    reference.save(tmp_path)
    again = load_reference(tmp_path)
    assert again is not None
    np.testing.assert_allclose(
        again.distance(colour, outputs), reference.distance(colour, outputs), rtol=1e-5
    )
    assert again.provenance["slides"] == ["a.svs"]
    assert load_reference(tmp_path / "nowhere") is None


def test_non_finite_features_are_infinitely_far() -> None:
    colour, outputs = _training()
    reference = fit_reference(colour, outputs)
    colour = colour[:3].copy()
    colour[1, 0] = np.nan
    distances = reference.distance(colour, outputs[:3])
    assert np.isinf(distances[1]) and np.isfinite(distances[[0, 2]]).all()


@pytest.mark.parametrize(
    "mutate, problem",
    [
        (lambda d: d.update(whitening=[[1.0]]), "whitening has shape"),
        (lambda d: d.update(spec_version=7), "spec_version"),
        (lambda d: d.pop("scale"), "missing or malformed"),
        (lambda d: d.update(scale=-1), "scale must be a positive"),
        (lambda d: d["output_std"].__setitem__(0, 0.0), "standard deviations"),
        (lambda d: d["feature_mean"].__setitem__(0, float("nan")), "NaN"),
        (lambda d: d.update(colour_features=float("inf")), "colour_features must be a whole"),
        (lambda d: d.update(colour_features=True), "colour_features must be a whole"),
        (lambda d: d["output_mean"].__setitem__(0, 1e308), "absurdly large"),
        (lambda d: d.update(output_mean=[str(v) for v in d["output_mean"]]), "list of numbers"),
        (lambda d: d.update(output_mean=None), "list of numbers"),
        (lambda d: d.update(scale="0.9"), "scale must be a number"),
        (lambda d: d.update(rules={"in_domain": "x"}), "rules.in_domain must be a number"),
        (lambda d: d.update(rules={"in_domain": 0.2, "out_of_domain": 0.9}), "rules need"),
        (lambda d: d.update(rules={"min_tiles": -1}), "rules.min_tiles"),
        (lambda d: d.update(rules=[1]), "rules must be a JSON object"),
        (lambda d: d.update(quantiles={"q50": "x"}), "quantiles.q50 must be a number"),
        (lambda d: d.update(provenance=[1, 2]), "provenance must be a JSON object"),
    ],
)
def test_a_broken_domain_json_is_a_typed_error_naming_the_file(tmp_path, mutate, problem):
    colour, outputs = _training()
    data = fit_reference(colour, outputs).to_json()
    mutate(data)
    path = tmp_path / "domain.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DomainReferenceError, match=problem) as raised:
        DomainReference.from_file(path)
    assert str(path) in str(raised.value)


def test_unreadable_domain_json(tmp_path) -> None:
    path = tmp_path / "domain.json"
    path.write_text("[" * 100_000)
    with pytest.raises(DomainReferenceError, match="unreadable"):
        DomainReference.from_file(path)
    path.write_text("[]")
    with pytest.raises(DomainReferenceError, match="JSON object"):
        DomainReference.from_file(path)


@pytest.mark.parametrize("make", [lambda p: p.mkdir(), lambda p: __import__("os").mkfifo(p)])
def test_a_domain_json_that_is_not_a_file_is_typed(tmp_path, make):
    make(tmp_path / "domain.json")  # a FIFO would block the read; neither is "no reference"
    with pytest.raises(DomainReferenceError, match="not a regular file"):
        load_reference(tmp_path)
