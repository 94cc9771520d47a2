"""TorchScript is code, and architecture_args must not smuggle a checkpoint to timm.

The malicious archives here are made by the test itself (no file from elsewhere): a
module whose ``forward`` (or ``__setstate__``) calls ``torch.from_file`` on a path in the
test's folder. Refusal is proved by the file never being created; running it with
``trust_code=True`` creates the file, so the test would notice a check that passes
everything.
"""

from __future__ import annotations

import json
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from omicslens.cli.main import main
from omicslens.models.architectures import ArchitectureError, build_architecture, check_timm_args
from omicslens.models.bundle import load_bundle
from omicslens.models.predictor import Predictor
from omicslens.models.torchscript_check import UntrustedCodeError, inspect_torchscript
from tests.helpers.bundles import make_bundle


class ReadsAFile(torch.nn.Module):
    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probe = torch.from_file(self.target, shared=True, size=4, dtype=torch.uint8)
        return x.mean((2, 3)) + probe[:1].float()


class ReadsAFileOnLoad(torch.nn.Module):
    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool]:
        return (self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]) -> None:
        self.target = state[0]
        self.training = state[1]
        self.seen = int(torch.from_file(self.target, shared=True, size=4, dtype=torch.uint8).sum())


def _evil_bundle(folder: Path, module: torch.nn.Module) -> Path:
    bundle = make_bundle(folder, outputs=("A", "B", "C"), patch_size=32, spacing=0.5)
    torch.jit.script(module).save(str(bundle / "torchscript_model.pt"))
    return bundle


@pytest.mark.parametrize("kind", [ReadsAFile, ReadsAFileOnLoad], ids=["forward", "setstate"])
def test_a_torchscript_that_touches_files_is_refused_before_it_runs(tmp_path, kind) -> None:
    target = tmp_path / "created-by-the-model.bin"
    bundle = _evil_bundle(tmp_path / "evil", kind(str(target)))
    findings = inspect_torchscript(bundle / "torchscript_model.pt")
    assert any(f.name == "torch.from_file" for f in findings)
    with pytest.raises(UntrustedCodeError, match=r"torch\.from_file") as raised:
        Predictor(bundle, device="cpu")
    assert "Nothing was loaded or run" in str(raised.value)
    assert not target.exists()


def test_trusting_the_code_runs_it_so_the_check_is_real(tmp_path) -> None:
    target = tmp_path / "created-by-the-model.bin"
    bundle = _evil_bundle(tmp_path / "evil", ReadsAFile(str(target)))
    predictor = Predictor(bundle, device="cpu", trust_code=True)
    predictor.predict(np.zeros((1, 32, 32, 3), dtype=np.uint8))
    assert target.exists()  # the op really touches the disk


def test_ordinary_torchscript_passes(tmp_path) -> None:
    bundle = make_bundle(tmp_path / "ok", patch_size=32)
    assert inspect_torchscript(bundle / "torchscript_model.pt") == []
    assert Predictor(bundle, device="cpu").predict(np.zeros((2, 32, 32, 3), np.uint8)).shape[0] == 2


def test_validate_and_predict_refuse_it_and_create_nothing(tmp_path, capsys) -> None:
    from omicslens.core.samples import sample_path

    target = tmp_path / "created-by-the-model.bin"
    bundle = _evil_bundle(tmp_path / "evil", ReadsAFile(str(target)))
    assert main(["model", "validate", str(bundle), "--json"]) == 1
    assert "torch.from_file" in capsys.readouterr().out
    code = main(
        ["predict", str(sample_path("cmu1")), "--model", str(bundle), "--out", str(tmp_path / "o")]
    )
    assert code == 1
    assert "refused to run this TorchScript model" in capsys.readouterr().err
    assert not target.exists()


def test_timm_gets_no_checkpoint_path(tmp_path, monkeypatch) -> None:
    """A pickle behind ``checkpoint_path`` never reaches timm (a stand-in records calls)."""
    payload = tmp_path / "ran.txt"
    evil = tmp_path / "evil.pth"

    class Payload:
        def __reduce__(self):
            return (Path.write_text, (payload, "pwned"))

    evil.write_bytes(pickle.dumps(Payload()))
    calls: list[dict] = []
    fake = types.ModuleType("timm")
    fake.create_model = lambda name, **kw: calls.append(kw) or torch.nn.Identity()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "timm", fake)
    monkeypatch.setattr("omicslens.models.architectures.timm_available", lambda: True)
    with pytest.raises(ArchitectureError, match="checkpoint_path"):
        build_architecture("resnet18", 3, checkpoint_path=str(evil))
    with pytest.raises(ArchitectureError, match="short names"):
        build_architecture("resnet18", 3, act_layer="../../etc/passwd")
    assert calls == [] and not payload.exists()
    build_architecture("vit_small_patch16_224", 3, img_size=224, drop_path_rate=0.1)
    assert calls == [
        {"pretrained": False, "num_classes": 3, "img_size": 224, "drop_path_rate": 0.1}
    ]


def test_timm_arg_rules() -> None:
    check_timm_args("vit", {"img_size": [224, 224], "global_pool": "token", "qkv_bias": True})
    for bad in (
        {"pretrained": True},
        {"pretrained_cfg_overlay": {"file": "x"}},
        {"cache_dir": "/"},
    ):
        with pytest.raises(ArchitectureError):
            check_timm_args("vit", bad)


def test_a_config_naming_a_checkpoint_is_refused_through_the_bundle(tmp_path) -> None:
    bundle = make_bundle(tmp_path / "b", fmt="safetensors", patch_size=32)
    config = json.loads((bundle / "config.json").read_text())
    config["architecture_args"] = {"checkpoint_path": "evil.pth"}
    (bundle / "config.json").write_text(json.dumps(config))
    from omicslens.core import OmicsLensError

    with pytest.raises(OmicsLensError):
        Predictor(load_bundle(bundle), device="cpu")


def test_a_damaged_deflate_stream_in_the_code_is_a_weights_error(tmp_path, capsys) -> None:
    """A bit flip that turns a stored code member into a broken deflated one (the CI fuzz
    case ``bundle-torchscript/weights-flip``) is a typed error from validate and predict."""
    import zipfile

    from omicslens.core.samples import sample_path
    from omicslens.models.errors import WeightsError

    bundle = make_bundle(tmp_path / "ok", patch_size=32)
    path = bundle / "torchscript_model.pt"
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info.filename)) for info in archive.infolist()]
    rebuilt = tmp_path / "rebuilt.pt"
    with zipfile.ZipFile(rebuilt, "w") as archive:
        for info, data in members:
            method = zipfile.ZIP_DEFLATED if "/code/" in info.filename else zipfile.ZIP_STORED
            archive.writestr(info.filename, data, compress_type=method)
    raw = bytearray(rebuilt.read_bytes())
    with zipfile.ZipFile(rebuilt) as archive:
        code = next(i for i in archive.infolist() if "/code/" in i.filename)
    start = code.header_offset + 30 + len(code.filename.encode()) + len(code.extra)
    for offset in range(start, start + code.compress_size):  # garble the deflate stream
        raw[offset] ^= 0x5A
    path.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="not a readable TorchScript archive"):
        inspect_torchscript(path)
    assert main(["model", "validate", str(bundle), "--json"]) == 1
    capsys.readouterr()
    slide, out = str(sample_path("cmu1")), str(tmp_path / "o")
    assert main(["predict", slide, "--model", str(bundle), "--out", out]) == 1
    err = capsys.readouterr().err
    assert "not a readable TorchScript archive" in err and "Traceback" not in err


def test_trust_code_on_the_command_line_runs_it_and_the_outputs_say_so(tmp_path) -> None:
    import anndata

    from omicslens.core.samples import sample_path

    target = tmp_path / "read-by-the-model.bin"
    target.write_bytes(bytes(4))
    bundle = _evil_bundle(tmp_path / "evil", ReadsAFile(str(target)))
    out = tmp_path / "o"
    slide = str(sample_path("cmu1"))
    args = ["predict", slide, "--model", str(bundle), "--out", str(out), "--format", "h5ad"]
    assert main([*args, "--trust-code"]) == 0
    done = json.loads(next(out.rglob("done.json")).read_text())
    assert done["trusted_code"] is True
    table = anndata.read_h5ad(next(out.rglob("tiles.h5ad")))
    assert bool(table.uns["omicslens"]["trusted_code"]) is True
