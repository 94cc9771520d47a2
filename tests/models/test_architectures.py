"""Architecture registry: our nets by name, timm names without timm, timm when present."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from omicslens.models.architectures import (
    REGISTRY,
    TIMM_FALLBACKS,
    architecture_source,
    build_architecture,
)
from omicslens.models.errors import ArchitectureError
from omicslens.models.vit import VisionTransformer


@pytest.fixture
def no_timm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("omicslens.models.architectures.timm_available", lambda: False)


@pytest.fixture
def fake_timm(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, object]]]:
    calls: list[tuple[str, dict[str, object]]] = []

    def create_model(name: str, **kwargs: object) -> torch.nn.Module:
        if name == "does_not_exist":
            raise RuntimeError(f"Unknown model ({name})")
        calls.append((name, kwargs))
        return torch.nn.Linear(1, 1)

    module = types.ModuleType("timm")
    module.create_model = create_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "timm", module)
    monkeypatch.setattr("omicslens.models.architectures.timm_available", lambda: True)
    return calls


RUN_ON_CPU = {
    "omicslens-tinycnn": 32,
    "omicslens-resnet-ish": 32,
    "omicslens-vit-tiny16": 224,
    "omicslens-expression": 320,
}
# ViT-S/16 and ViT-B/16 without a head have ~21.7M and ~85.8M parameters (timm's counts
# minus the 1000-class head); counted, not run, to keep the suite fast on a CPU.
PARAMETERS_M = {"omicslens-vit": 21.7, "omicslens-vit-small16": 21.7, "omicslens-vit-base16": 85.8}


def test_every_registered_architecture_is_covered() -> None:
    assert set(RUN_ON_CPU) | set(PARAMETERS_M) == set(REGISTRY)


@pytest.mark.parametrize(("name", "size"), sorted(RUN_ON_CPU.items()))
def test_small_architectures_build_and_run(name: str, size: int) -> None:
    model = build_architecture(name, 5).eval()
    with torch.inference_mode():
        assert model(torch.rand(2, 3, size, size)).shape == (2, 5)


@pytest.mark.parametrize(("name", "millions"), sorted(PARAMETERS_M.items()))
def test_vit_presets_have_the_published_sizes(name: str, millions: float) -> None:
    model = build_architecture(name, 0)
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert count == pytest.approx(millions, abs=0.1)


def test_zero_outputs_gives_features() -> None:
    model = build_architecture("omicslens-tinycnn", 0, width=8).eval()
    with torch.inference_mode():
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, 32)  # 8 * 2**2


def test_architecture_arguments_are_passed_and_checked() -> None:
    model = build_architecture(
        "omicslens-vit", 3, img_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=3
    )
    assert isinstance(model, VisionTransformer) and len(model.blocks) == 1
    with pytest.raises(ArchitectureError, match="not divisible"):
        build_architecture("omicslens-vit", 3, embed_dim=50, num_heads=3)
    with pytest.raises(ArchitectureError, match="unexpected keyword"):
        build_architecture("omicslens-tinycnn", 3, dropout=0.1)


def test_timm_names_use_our_vit_without_timm(no_timm: None) -> None:
    model = build_architecture("vit_small_patch16_224", 2)
    assert isinstance(model, VisionTransformer) and model.num_features == 384
    assert architecture_source("vit_small_patch16_224") == "omicslens"
    assert set(TIMM_FALLBACKS) >= {"vit_small_patch16_224", "vit_base_patch16_224"}


def test_unknown_name_without_timm_says_timm_is_needed(no_timm: None) -> None:
    with pytest.raises(ArchitectureError, match=r"need timm installed \(pip install timm\)"):
        build_architecture("resnet34", 2)
    assert architecture_source("resnet34") is None


def test_timm_is_used_for_other_names_when_installed(fake_timm: list) -> None:
    build_architecture("resnet34", 2)
    build_architecture("vit_small_patch16_224", 7)  # timm's real module when available
    assert fake_timm == [
        ("resnet34", {"pretrained": False, "num_classes": 2}),
        ("vit_small_patch16_224", {"pretrained": False, "num_classes": 7}),
    ]
    assert isinstance(build_architecture("omicslens-tinycnn", 2), torch.nn.Module)  # ours
    assert len(fake_timm) == 2
    with pytest.raises(ArchitectureError, match="timm cannot build 'does_not_exist'"):
        build_architecture("does_not_exist", 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 10**9}, "cannot build"),
        ({"depth": 10**6}, "cannot build"),
        ({"width": 65536}, "parameters; at most"),
        ({"width": -1}, "negative dimension"),
    ],
)
def test_absurd_architecture_args_are_refused_without_allocating(kwargs, message) -> None:
    """Fuzz (issue 13): width 10^9 raised a bare RuntimeError, depth 10^6 ran past 20 s."""
    import time

    started = time.perf_counter()
    with pytest.raises(ArchitectureError, match=message):
        build_architecture("omicslens-tinycnn", 3, **kwargs)
    assert time.perf_counter() - started < 5
