"""Patient-level aggregators: mechanics, GenBloom's published layout, safe loading, retrieval.

Every aggregator here has RANDOM weights: these tests check the machinery (shapes,
normalisation, key layout, loading rules), never predictions. OmicsLens ships no genetic
weights.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from omicslens.hemato.aggregators import (
    DEFAULT_GENETIC_LABELS,
    AggregatorConfig,
    EncoderSpec,
    GenBloomAggregator,
    build_aggregator,
    build_timm_encoder,
    genbloom_encoder_keys,
    load_aggregator,
    load_genbloom_checkpoint,
    retrieve_similar,
    write_reference_bank,
)
from omicslens.hemato.errors import AggregatorBundleError, EncoderUnavailableError

SMALL_GENBLOOM = {"embed_dim": 32, "depth": 2, "num_heads": 4}


def write_bundle(folder: Path, config: dict[str, Any], state: dict[str, torch.Tensor]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def mil_config(kind: str, feature_dim: int, **extra: Any) -> dict[str, Any]:
    return {
        "spec_version": "1.0",
        "task": "mil",
        "aggregator": kind,
        "name": "test-fixture-random-weights",
        "description": "TEST FIXTURE: random weights, predicts nothing.",
        "feature_dim": feature_dim,
        "class_names": list(DEFAULT_GENETIC_LABELS),
        "num_classes": len(DEFAULT_GENETIC_LABELS),
        **extra,
    }


def random_gated(tmp_path: Path, feature_dim: int = 16) -> Path:
    torch.manual_seed(0)
    model = build_aggregator("gated-attention", 5, feature_dim, hidden_dim=24, attention_dim=8)
    config = mil_config(
        "gated-attention", feature_dim, architecture_args={"hidden_dim": 24, "attention_dim": 8}
    )
    return write_bundle(tmp_path / "gated", config, model.state_dict())


@pytest.mark.parametrize("cells", [1, 2, 37])
def test_gated_attention_probabilities_and_attention_sum_to_one(tmp_path: Path, cells: int) -> None:
    bundle = load_aggregator(random_gated(tmp_path))
    features = np.random.default_rng(cells).normal(size=(cells, 16)).astype(np.float32)
    scores = bundle.score(features)
    assert scores.probabilities.shape == (5,)
    assert scores.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    assert scores.attention.shape == (cells,)
    assert scores.attention.sum() == pytest.approx(1.0, abs=1e-6)
    assert (scores.attention >= 0).all()
    assert scores.predicted in DEFAULT_GENETIC_LABELS


def test_gated_attention_is_permutation_invariant(tmp_path: Path) -> None:
    bundle = load_aggregator(random_gated(tmp_path))
    features = np.random.default_rng(1).normal(size=(20, 16)).astype(np.float32)
    order = np.random.default_rng(2).permutation(20)
    a, b = bundle.score(features), bundle.score(features[order])
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
    np.testing.assert_allclose(a.attention[order], b.attention, atol=1e-6)


def test_genbloom_encoder_has_the_published_layout() -> None:
    model = GenBloomAggregator(5, feature_dim=24, **SMALL_GENBLOOM)
    encoder_keys = sorted(
        k[len("encoder.") :] for k in model.state_dict() if k.startswith("encoder.")
    )
    assert encoder_keys == genbloom_encoder_keys(depth=2)
    # GenBloom's exact names, spot-checked (DinoVisionTransformerNoPos, one block chunk)
    state = model.state_dict()
    assert state["encoder.patch_embed.project.weight"].shape == (32, 24)
    assert state["encoder.blocks.0.1.attn.qkv.weight"].shape == (96, 32)
    assert state["encoder.blocks.0.0.ls1.gamma"].shape == (32,)
    assert state["encoder.mask_token"].shape == (1, 32)
    assert state["encoder.cls_token"].shape == (1, 1, 32)
    assert set(k for k in state if not k.startswith("encoder.")) == {"head.weight", "head.bias"}
    # and GenBloom's default size (DinoBloom-B features, 6 blocks of 768, 12 heads)
    full = GenBloomAggregator(5)
    assert full.state_dict()["encoder.blocks.0.5.mlp.fc1.weight"].shape == (3072, 768)


def test_genbloom_probabilities_and_attention(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = GenBloomAggregator(5, feature_dim=24, **SMALL_GENBLOOM)
    config = mil_config("genbloom", 24, architecture_args=SMALL_GENBLOOM)
    bundle = load_aggregator(write_bundle(tmp_path / "gb", config, model.state_dict()))
    for cells in (1, 9):
        scores = bundle.score(np.random.default_rng(cells).normal(size=(cells, 24)))
        assert scores.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
        assert scores.attention.shape == (cells,)
        assert scores.attention.sum() == pytest.approx(1.0, abs=1e-6)
        assert scores.embedding.shape == (32,)


def _genbloom_g_checkpoint(path: Path, depth: int = 2, projection: bool = True) -> dict[str, Any]:
    """A checkpoint saved the way GenBloom-G's training saves one (random weights)."""
    torch.manual_seed(1)
    encoder = GenBloomAggregator(5, feature_dim=24, **SMALL_GENBLOOM, projection_dim=16).encoder
    vision_model = dict(encoder.state_dict())
    vision_model["pos_embed"] = torch.zeros(1, 24 * 24 + 1, 32)  # GenBloom's zeroed pos_embed
    checkpoint: dict[str, Any] = {"vision_tower": "transformer", "vision_model": vision_model}
    if projection:
        head = GenBloomAggregator(5, feature_dim=24, **SMALL_GENBLOOM, projection_dim=16)
        assert head.projection_head is not None
        checkpoint["projection_head"] = head.projection_head.state_dict()
    torch.save(checkpoint, path)
    return checkpoint


def test_a_genbloom_g_checkpoint_loads_into_a_bundle(tmp_path: Path) -> None:
    folder = tmp_path / "genbloom-g"
    folder.mkdir()
    checkpoint = _genbloom_g_checkpoint(folder / "genbloom_g_fold0.pth")
    torch.manual_seed(2)
    save_file(
        {"weight": torch.randn(5, 32), "bias": torch.zeros(5)}, str(folder / "head.safetensors")
    )
    config = mil_config(
        "genbloom",
        24,
        architecture_args={**SMALL_GENBLOOM, "projection_dim": 16},
        weights="genbloom_g_fold0.pth",
        head_weights="head.safetensors",
    )
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    bundle = load_aggregator(folder)
    loaded = bundle.model.state_dict()
    for key, value in checkpoint["vision_model"].items():
        if key != "pos_embed":
            torch.testing.assert_close(loaded[f"encoder.{key}"], value)
    torch.testing.assert_close(
        loaded["projection_head.net.4.weight"], checkpoint["projection_head"]["net.4.weight"]
    )
    scores = bundle.score(np.random.default_rng(0).normal(size=(12, 24)))
    assert scores.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.linalg.norm(scores.embedding) == pytest.approx(1.0, abs=1e-5)  # projected, normalised


def test_a_genbloom_v_teacher_checkpoint_maps_to_the_encoder(tmp_path: Path) -> None:
    encoder = GenBloomAggregator(5, feature_dim=24, **SMALL_GENBLOOM).encoder
    teacher = {}
    for key, value in encoder.state_dict().items():
        flat = key.replace("blocks.0.", "blocks.", 1)  # the teacher stores unchunked blocks
        teacher[f"backbone.{flat}"] = value
    teacher["backbone.pos_embed"] = torch.zeros(1, 5, 32)
    teacher["dino_head.mlp.0.weight"] = torch.zeros(4, 32)
    path = tmp_path / "teacher_checkpoint.pth"
    torch.save({"teacher": teacher}, path)
    state = load_genbloom_checkpoint(path)
    assert sorted(k[len("encoder.") :] for k in state) == genbloom_encoder_keys(depth=2)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    class Sneaky:
        def __reduce__(self) -> Any:
            return (print, ("this must never run",))

    path = tmp_path / "bad.pth"
    with path.open("wb") as handle:
        pickle.dump({"vision_model": Sneaky()}, handle)
    with pytest.raises(AggregatorBundleError, match="weights_only"):
        load_genbloom_checkpoint(path)


def test_mismatched_weights_name_the_keys(tmp_path: Path) -> None:
    folder = random_gated(tmp_path, feature_dim=16)
    config = json.loads((folder / "config.json").read_text())
    config["feature_dim"] = 20  # the encoder layer no longer fits
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(AggregatorBundleError, match=r"encoder\.0\.weight"):
        load_aggregator(folder)


def test_wrong_embedding_width_is_explained(tmp_path: Path) -> None:
    bundle = load_aggregator(random_gated(tmp_path, feature_dim=16))
    with pytest.raises(AggregatorBundleError, match=r"\(N, 16\)"):
        bundle.score(np.zeros((3, 8), np.float32))
    with pytest.raises(AggregatorBundleError, match="0 white cells"):
        bundle.score(np.zeros((0, 16), np.float32))


def test_config_problems_are_listed() -> None:
    with pytest.raises(AggregatorBundleError) as caught:
        AggregatorConfig.from_dict(
            {"task": "classification", "aggregator": "nope", "weights": "../x.pt"}
        )
    text = str(caught.value)
    assert "'task'" in text and "'aggregator'" in text and "'feature_dim'" in text
    assert "'weights'" in text


def test_timm_encoder_needs_timm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import omicslens.hemato.aggregators as aggregators

    monkeypatch.setattr(aggregators, "timm_available", lambda: False)
    spec = EncoderSpec(kind="timm", architecture="vit_base_patch14_dinov2", weights="db.pth")
    with pytest.raises(EncoderUnavailableError, match="timm is not installed"):
        build_timm_encoder(spec, tmp_path)
    config = AggregatorConfig.from_dict(
        mil_config(
            "gated-attention",
            768,
            encoder={
                "kind": "timm",
                "architecture": "vit_base_patch14_dinov2",
                "weights": "dinobloom-b.pth",
                "architecture_args": {"img_size": 224},
            },
        )
    )
    assert config.encoder.kind == "timm" and config.encoder.architecture_args == {"img_size": 224}


def test_timm_encoder_loads_local_weights_strictly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a (stand-in) timm, the encoder is built by name and DINOv2 teacher weights load."""
    import sys
    import types

    import omicslens.hemato.aggregators as aggregators

    class TinyEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Conv2d(3, 8, 4, stride=4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.proj(x).mean(dim=(2, 3))

    calls: list[tuple[str, dict[str, Any]]] = []

    def create_model(name: str, **kwargs: Any) -> torch.nn.Module:
        calls.append((name, kwargs))
        return TinyEncoder()

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    monkeypatch.setattr(aggregators, "timm_available", lambda: True)
    weights = {f"backbone.{k}": v for k, v in TinyEncoder().state_dict().items()}
    torch.save({"teacher": weights}, tmp_path / "dinobloom.pth")
    spec = EncoderSpec(
        kind="timm", architecture="vit_small_patch14_dinov2", weights="dinobloom.pth"
    )
    network = build_timm_encoder(spec, tmp_path)
    assert calls == [("vit_small_patch14_dinov2", {"pretrained": False, "num_classes": 0})]
    assert network(torch.zeros(2, 3, 16, 16)).shape == (2, 8)


def test_retrieval_ranks_by_cosine(tmp_path: Path) -> None:
    bank = write_reference_bank(
        tmp_path / "bank.h5",
        np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]], np.float32),
        ["AML-NPM1", "SCD", "AML-PML-RARA", "AML-RUNX1-RUNX1T1"],
        ["p1", "p2", "p3", "p4"],
    )
    hits = retrieve_similar(np.array([2.0, 0.1]), bank, top_k=3)
    assert [h["patient_id"] for h in hits] == ["p1", "p3", "p2"]
    assert hits[0]["label"] == "AML-NPM1"
    assert hits[0]["cosine_similarity"] == pytest.approx(0.99875, abs=1e-4)
    with pytest.raises(AggregatorBundleError, match="shape"):
        retrieve_similar(np.zeros(3), bank)


def test_genbloom_v_encoder_with_genbloom_g_projection(tmp_path: Path) -> None:
    """GenBloom-G checkpoints without a fine-tuned encoder: teacher + projection head."""
    folder = tmp_path / "genbloom-vg"
    folder.mkdir()
    torch.manual_seed(3)
    source = GenBloomAggregator(5, feature_dim=24, **SMALL_GENBLOOM, projection_dim=16)
    teacher = {
        f"backbone.{k.replace('blocks.0.', 'blocks.', 1)}": v
        for k, v in source.encoder.state_dict().items()
    }
    torch.save({"teacher": teacher}, folder / "genbloom_v.pth")
    assert source.projection_head is not None
    projection = source.projection_head.state_dict()
    torch.save({"vision_tower": "transformer", "projection_head": projection}, folder / "g.pth")
    with pytest.raises(AggregatorBundleError, match="projection_weights"):
        load_genbloom_checkpoint(folder / "g.pth")
    save_file(
        {"weight": torch.randn(5, 32), "bias": torch.zeros(5)}, str(folder / "head.safetensors")
    )
    config = mil_config(
        "genbloom",
        24,
        architecture_args={**SMALL_GENBLOOM, "projection_dim": 16},
        weights="genbloom_v.pth",
        projection_weights="g.pth",
        head_weights="head.safetensors",
    )
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    bundle = load_aggregator(folder)
    torch.testing.assert_close(
        bundle.model.state_dict()["encoder.blocks.0.1.mlp.fc2.weight"],
        source.state_dict()["encoder.blocks.0.1.mlp.fc2.weight"],
    )
    scores = bundle.score(np.ones((4, 24), np.float32))
    assert scores.attention.sum() == pytest.approx(1.0, abs=1e-6)
