"""Locating bundles: folders, weights discovery, the bundle hash, the local HF cache."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from omicslens.models import hub
from omicslens.models.bundle import load_bundle
from omicslens.models.errors import BundleConfigError, BundleNotFoundError, WeightsNotFoundError
from omicslens.models.schema import validate_against_wsinfer_schema
from tests.helpers.bundles import make_bundle, rewrite_config


@pytest.mark.parametrize(
    ("fmt", "file"),
    [
        ("torchscript", "torchscript_model.pt"),
        ("safetensors", "model.safetensors"),
        ("state_dict", "model.pt"),
    ],
)
def test_each_format_is_discovered_and_recognised(tmp_path: Path, fmt: str, file: str) -> None:
    bundle = load_bundle(make_bundle(tmp_path / fmt, fmt=fmt))
    assert bundle.weights_path.name == file
    assert bundle.weights_format == fmt
    assert bundle.output_names == ("ERBB2", "CD74", "MKI67")
    assert bundle.name == "test-fixture-random-weights"


def test_format_comes_from_content_not_file_name(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b", fmt="state_dict")
    (folder / "model.pt").rename(folder / "torchscript_model.pt")  # misnamed state dict
    assert load_bundle(folder).weights_format == "state_dict"


def test_weights_key_wins_over_discovery_and_missing_file_is_named(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b", fmt="torchscript")
    make_bundle(tmp_path / "other", fmt="safetensors")
    shutil.copy(tmp_path / "other" / "model.safetensors", folder / "chosen.safetensors")
    rewrite_config(folder, {"weights": "chosen.safetensors"})
    bundle = load_bundle(folder)
    assert bundle.weights_path.name == "chosen.safetensors"
    assert bundle.weights_format == "safetensors"
    rewrite_config(folder, {"weights": "gone.safetensors"})
    with pytest.raises(WeightsNotFoundError, match=r"gone\.safetensors") as caught:
        load_bundle(folder)
    assert isinstance(caught.value, FileNotFoundError)


def test_folder_without_weights_lists_what_was_looked_for(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b")
    (folder / "torchscript_model.pt").unlink()
    with pytest.raises(WeightsNotFoundError, match=r"model\.safetensors"):
        load_bundle(folder)


def test_config_json_path_and_folder_give_the_same_bundle(bundle_dir: Path) -> None:
    assert load_bundle(bundle_dir / "config.json").path == load_bundle(bundle_dir).path


def test_missing_folder_and_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(BundleNotFoundError, match="no such bundle folder") as caught:
        load_bundle(tmp_path / "nothing-here")
    assert isinstance(caught.value, FileNotFoundError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleNotFoundError, match=r"no config\.json"):
        load_bundle(tmp_path / "empty")


def test_broken_config_in_bundle_names_the_config_file(bundle_dir: Path) -> None:
    rewrite_config(bundle_dir, {"patch_size_pixels": -3})
    with pytest.raises(BundleConfigError) as caught:
        load_bundle(bundle_dir)
    assert caught.value.field == "patch_size_pixels"
    assert str(caught.value).startswith(str(bundle_dir.resolve() / "config.json"))


def test_bundle_hash_changes_with_weights_or_config_and_is_stable(tmp_path: Path) -> None:
    a = make_bundle(tmp_path / "a", seed=0)
    b = make_bundle(tmp_path / "b", seed=0)
    first = load_bundle(a).bundle_hash
    assert len(first) == 16 and int(first, 16) >= 0
    assert load_bundle(b).bundle_hash == first  # same bytes, same hash, any folder
    make_bundle(a, seed=1)  # same config, different weights
    assert load_bundle(a).bundle_hash != first
    rewrite_config(b, {"spacing_um_px": 0.25})  # same weights, different config
    assert load_bundle(b).bundle_hash != first


def _fake_hf_cache(cache: Path, repo_id: str, source: Path, with_ref: bool = True) -> Path:
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / revision
    shutil.copytree(source, snapshot)
    if with_ref:
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(revision)
    return snapshot


@pytest.mark.parametrize("use_huggingface_hub", [True, False])
def test_repo_id_is_resolved_from_the_local_cache_only(
    tmp_path: Path,
    bundle_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    use_huggingface_hub: bool,
) -> None:
    cache = tmp_path / "hf-cache"
    snapshot = _fake_hf_cache(cache, "omicslens-test/tiny-genes", bundle_dir)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # belt and braces: any network use would fail
    monkeypatch.chdir(tmp_path)  # no local folder of that name
    if not use_huggingface_hub:
        monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import now fails
    bundle = load_bundle("omicslens-test/tiny-genes")
    assert bundle.path == snapshot
    assert bundle.source == "omicslens-test/tiny-genes"
    assert bundle.bundle_hash == load_bundle(bundle_dir).bundle_hash


def test_cache_walk_without_ref_takes_the_snapshot(tmp_path: Path, bundle_dir: Path) -> None:
    snapshot = _fake_hf_cache(tmp_path, "org/name", bundle_dir, with_ref=False)
    assert hub._walk_cache("org/name", tmp_path) == snapshot


def test_repo_id_absent_from_cache_is_a_clear_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BundleNotFoundError) as caught:
        load_bundle("omicslens-test/not-downloaded")
    message = str(caught.value)
    assert "never downloads" in message
    assert "huggingface-cli download omicslens-test/not-downloaded" in message
    assert str(tmp_path / "empty-cache") in message
    assert not (tmp_path / "empty-cache").exists() or not any((tmp_path / "empty-cache").iterdir())


def test_local_folder_wins_over_repo_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_bundle(tmp_path / "org" / "name")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-cache"))
    assert load_bundle("org/name").path == (tmp_path / "org" / "name").resolve()


def test_hub_cache_location_follows_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_HOME", "/data/hf")
    assert hub.hf_hub_cache() == Path("/data/hf/hub")
    monkeypatch.setenv("HF_HUB_CACHE", "/fast/hub")
    assert hub.hf_hub_cache() == Path("/fast/hub")
    assert not hub.looks_like_repo_id("../etc") and not hub.looks_like_repo_id("a/b/c")
    assert hub.looks_like_repo_id("MahmoodLab/UNI")


@pytest.mark.parametrize("task", ["classification", "regression", "embedding"])
def test_our_configs_validate_against_wsinfer_schema(tmp_path: Path, task: str) -> None:
    pytest.importorskip("wsinfer_zoo")
    outputs = ("tumor", "stroma") if task == "classification" else ("ERBB2", "CD74", "MKI67")
    folder = make_bundle(tmp_path / task, task=task, outputs=outputs, output_transform=None)
    config = json.loads((folder / "config.json").read_text())
    assert validate_against_wsinfer_schema(config) == []
    assert load_bundle(folder).config.task == task


def test_wsinfer_schema_check_can_fail(bundle_dir: Path) -> None:
    pytest.importorskip("wsinfer_zoo")
    config = json.loads((bundle_dir / "config.json").read_text())
    del config["spec_version"]
    config["transform"][0]["extra"] = 1
    problems = validate_against_wsinfer_schema(config)
    assert problems is not None and len(problems) == 2
    assert any("spec_version" in problem for problem in problems)
    assert any(problem.startswith("transform[0]") for problem in problems)


def test_schema_check_reports_unchecked_without_wsinfer_zoo(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "wsinfer_zoo", None)
    config = json.loads((bundle_dir / "config.json").read_text())
    assert validate_against_wsinfer_schema(config) is None


def test_bundle_and_config_import_no_torch() -> None:
    code = (
        "import sys; import omicslens.models.bundle, omicslens.models.schema; "
        "from omicslens.models import load_bundle; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_broken_zip_archive_of_weights_is_a_typed_error(tmp_path: Path) -> None:
    """Fuzz (issue 13): a flipped byte in a torch.save zip's central directory made
    ``model inspect`` fail with zipfile.BadZipFile."""
    from omicslens.models.errors import WeightsError

    bundle = make_bundle(tmp_path / "b", fmt="state_dict")
    weights = bundle / "model.pt"
    data = bytearray(weights.read_bytes())
    directory = data.rfind(b"PK\x01\x02")
    data[directory + 2] ^= 0xFF  # the central directory's signature
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError) as raised:
        load_bundle(bundle)
    assert str(weights) in str(raised.value)
