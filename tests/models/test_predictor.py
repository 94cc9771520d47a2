"""Predictor: same numbers as a hand-written torch computation, whatever the batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from omicslens.models.bundle import load_bundle
from omicslens.models.errors import DeviceError, WeightsError
from omicslens.models.predictor import Predictor, count_convs
from tests.helpers.bundles import MEAN, STD, make_bundle, random_model, rewrite_config

CLASSES = ("tumor", "stroma", "immune", "necrosis")


def patches(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """Smooth-ish random RGB patches (a real-looking range of values, not pure noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(n, size // 4, size // 4, 3), dtype=np.uint8)
    return np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)


def manual(model: torch.nn.Module, pixels: np.ndarray, softmax: bool) -> np.ndarray:
    """The computation spelled out independently of omicslens' preprocessing code."""
    x = torch.from_numpy(pixels.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        out = model(x)
    return (torch.softmax(out, dim=1) if softmax else out).numpy()


def test_classification_matches_manual_normalise_forward_softmax(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b", task="classification", outputs=CLASSES, seed=3)
    predictor = Predictor(folder, device="cpu")
    pixels = patches(6)
    result = predictor.predict(pixels)
    assert result.dtype == np.float32 and result.shape == (6, 4)
    expected = manual(random_model("omicslens-tinycnn", 4, 3), pixels, softmax=True)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.sum(axis=1), 1.0, atol=1e-6)


def test_regression_is_not_softmaxed_and_log1p_is_not_applied(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b", output_transform="log1p", seed=4)
    predictor = Predictor(folder, device="cpu")
    pixels = patches(5)
    expected = manual(random_model("omicslens-tinycnn", 3, 4), pixels, softmax=False)
    np.testing.assert_allclose(predictor.predict(pixels), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected.sum(axis=1), 1.0, atol=1e-2)  # really not a softmax


def test_batch_size_does_not_change_results(bundle_dir: Path) -> None:
    pixels = patches(11)
    whole = Predictor(bundle_dir, device="cpu", batch_size=64).predict(pixels)
    for batch_size in (1, 3, 5):
        split = Predictor(bundle_dir, device="cpu", batch_size=batch_size).predict(pixels)
        np.testing.assert_allclose(split, whole, rtol=1e-5, atol=1e-6)
    # the rows really differ, so a mix-up between chunks would be caught
    assert not np.allclose(whole[0], whole[1], atol=1e-4)


def test_a_tiles_value_does_not_depend_on_what_it_was_batched_with() -> None:
    """Bit for bit, with the bundled expression model (an ensemble of real CNNs): a resumed
    run predicts its remaining tiles in other batches than an uninterrupted one would."""
    from tests.conftest import ROOT

    predictor = Predictor(ROOT / "assets" / "models" / "her2st-expression", device="cpu")
    predictor.batch_size = 8
    pixels = patches(13, size=predictor.patch_size, seed=5)
    whole = predictor.predict(pixels)
    one_by_one = np.concatenate([predictor.predict(pixels[i : i + 1]) for i in range(13)])
    uneven = np.concatenate([predictor.predict(pixels[:3]), predictor.predict(pixels[3:])])
    assert np.array_equal(one_by_one, whole)
    assert np.array_equal(uneven, whole)
    # without padding the last bits do move (so the test above can fail)
    predictor.pad_batches = False
    unpadded = np.concatenate([predictor.predict(pixels[i : i + 1]) for i in range(13)])
    assert not np.array_equal(unpadded, whole)
    np.testing.assert_allclose(unpadded, whole, atol=1e-4)


def test_larger_patches_are_resized_like_pil_does(bundle_dir: Path) -> None:
    predictor = Predictor(bundle_dir, device="cpu")
    big = patches(4, size=64, seed=1)
    result = predictor.predict(big)
    assert result.shape == (4, 3)
    # WSInfer resizes with PIL (antialiased bilinear, uint8); we resize floats in torch.
    small = np.stack(
        [np.asarray(Image.fromarray(p).resize((32, 32), Image.Resampling.BILINEAR)) for p in big]
    )
    np.testing.assert_allclose(result, predictor.predict(small), atol=1e-3)
    # uniform patches stay uniform whatever the size
    flat_big = np.full((1, 64, 64, 3), (200, 120, 180), dtype=np.uint8)
    flat_small = np.full((1, 32, 32, 3), (200, 120, 180), dtype=np.uint8)
    np.testing.assert_allclose(
        predictor.predict(flat_big), predictor.predict(flat_small), atol=1e-5
    )


def test_wsinfer_style_bundle_runs_and_probabilities_sum_to_one(wsinfer_bundle_dir: Path) -> None:
    bundle = load_bundle(wsinfer_bundle_dir)
    assert bundle.weights_format == "torchscript"
    assert bundle.config.task == "classification" and bundle.config.apply_softmax
    predictor = Predictor(bundle, device="cpu")
    assert predictor.patch_size == 256 and predictor.input_size == 224
    probabilities = predictor.predict(patches(3, size=256))
    assert probabilities.shape == (3, 2)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_embedding_task_returns_features(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b", task="embedding", seed=2)
    predictor = Predictor(folder, device="cpu")
    assert predictor.num_outputs == 64  # tinycnn's pooled width
    pixels = patches(3)
    expected = manual(random_model("omicslens-tinycnn", 0, 2), pixels, softmax=False)
    np.testing.assert_allclose(predictor.predict(pixels), expected, rtol=1e-5, atol=1e-6)


def test_predict_tensor_is_the_model_only_part_of_predict(bundle_dir: Path) -> None:
    predictor = Predictor(bundle_dir, device="cpu")
    pixels = patches(4)
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    np.testing.assert_allclose(
        predictor.predict_tensor(x).numpy(), predictor.predict(pixels), rtol=1e-5, atol=1e-6
    )
    example = predictor.example_batch(2)
    assert example.shape == (2, 3, 32, 32) and predictor.predict_tensor(example).shape == (2, 3)


def test_properties_describe_the_bundle(bundle_dir: Path) -> None:
    predictor = Predictor(bundle_dir, device="cpu", acceleration="eager")
    assert predictor.output_names == ("ERBB2", "CD74", "MKI67")
    assert predictor.spacing_um_px == 0.5 and predictor.patch_size == 32
    assert predictor.bundle_hash == load_bundle(bundle_dir).bundle_hash
    assert predictor.device == torch.device("cpu") and not predictor.channels_last
    assert count_convs(predictor.model) == 3  # works on the TorchScript module too


def test_empty_input_and_bad_inputs(bundle_dir: Path) -> None:
    predictor = Predictor(bundle_dir, device="cpu")
    empty = predictor.predict(np.zeros((0, 32, 32, 3), dtype=np.uint8))
    assert empty.shape == (0, 3) and empty.dtype == np.float32
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict(np.zeros((1, 32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        predictor.predict(np.zeros((32, 32, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="square"):
        predictor.predict(np.zeros((1, 32, 48, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="batch_size"):
        Predictor(bundle_dir, device="cpu", batch_size=0)
    with pytest.raises(DeviceError, match="precision"):
        Predictor(bundle_dir, device="cpu", precision="int8")


def test_output_width_must_match_num_classes(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b", outputs=("A", "B", "C", "D"))
    rewrite_config(folder, {"num_classes": 3, "class_names": ["A", "B", "C"]}, remove=["outputs"])
    with pytest.raises(WeightsError, match="num_classes=3") as caught:
        Predictor(folder, device="cpu").predict(patches(2))
    assert "torchscript_model.pt" in str(caught.value)


def test_bf16_autocast_on_cpu_stays_close_to_fp32(bundle_dir: Path) -> None:
    pixels = patches(4)
    fp32 = Predictor(bundle_dir, device="cpu", precision="fp32").predict(pixels)
    bf16 = Predictor(bundle_dir, device="cpu", precision="bf16").predict(pixels)
    assert bf16.dtype == np.float32
    np.testing.assert_allclose(bf16, fp32, atol=0.05 * np.abs(fp32).max())
    assert not np.array_equal(bf16, fp32)  # autocast really ran in reduced precision


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_channels_last_matches_cpu(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "b", architecture="omicslens-resnet-ish", fmt="safetensors")
    pixels = patches(70, size=32)
    cpu = Predictor(folder, device="cpu", precision="fp32").predict(pixels)
    gpu = Predictor(folder, device="cuda", batch_size=32)  # auto precision: bf16 autocast
    assert gpu.channels_last and gpu.autocast_dtype in (torch.bfloat16, torch.float16)
    result = gpu.predict(pixels)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, cpu, atol=0.05 * np.abs(cpu).max())
    exact = Predictor(folder, device="cuda", precision="fp32").predict(pixels)
    np.testing.assert_allclose(exact, cpu, rtol=1e-3, atol=1e-3)
