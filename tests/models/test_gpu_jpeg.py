"""GPU JPEG decoding (models/gpu_jpeg.py): found or refused with the reason, offered to a
slide only where it agrees with tifffile, and a session that uses it predicts what the
CPU path predicts. Here a Pillow backend stands in for nvJPEG (no GPU on this machine);
the test marked gpu runs the real decoders where CUDA is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from omicslens.core import open_slide
from omicslens.core.chunk_cache import shared_cache
from omicslens.core.stream_decode import CPU_DECODER
from omicslens.models.gpu_jpeg import (
    GpuJpegBackend,
    GpuJpegUnavailable,
    find_gpu_jpeg,
    set_up_decoding,
)
from omicslens.models.session import InferenceSession
from tests.conftest import CMU1, SAMPLES, TCGA
from tests.core.test_jpeg_streams import pillow_decode
from tests.helpers.bundles import make_bundle

PILLOW = GpuJpegBackend("pillow (stand-in)", lambda streams: [pillow_decode(s) for s in streams])


def test_no_gpu_decoder_off_cuda_and_the_reason_says_why() -> None:
    backend, reason = find_gpu_jpeg("cpu")
    assert backend is None and "runs on cpu" in reason
    if not torch.cuda.is_available():
        backend, reason = find_gpu_jpeg("cuda")
        assert backend is None and reason == "CUDA is not available"


def test_asking_for_gpu_decoding_without_one_names_the_slide() -> None:
    with open_slide(CMU1) as slide:
        with pytest.raises(GpuJpegUnavailable, match=r"CMU-1-Small-Region.svs: GPU JPEG .*cpu"):
            set_up_decoding(slide, "cpu", "gpu")
        decoding = set_up_decoding(slide, "cpu", "auto")
        assert decoding.batcher is None and decoding.plan.decoder == CPU_DECODER
    refused = pytest.raises(GpuJpegUnavailable, match=r"no level can use pillow.*JP2000")
    with open_slide(TCGA, mpp=0.5) as slide, refused:  # JPEG 2000: no level can use it
        set_up_decoding(slide, "cuda", "gpu", backend=PILLOW)


def test_an_agreeing_decoder_is_installed_batched_and_closed() -> None:
    with open_slide(CMU1) as slide:
        decoding = set_up_decoding(slide, "cuda", "auto", backend=PILLOW)
        assert decoding.plan.switched == [0] and decoding.batcher is not None
        reader = slide.level_sources[0].tile_reader
        shared_cache().clear()
        slide.read_region(0, 0, 1000, 1000)
        assert reader.stream_stats().decoded > 0
        assert decoding.batcher.stats().tiles >= reader.stream_stats().decoded
        decoding.close(slide)
        assert decoding.batcher is None and reader._stream_decode is None
        with pytest.raises(ValueError, match="decode must be one of"):
            set_up_decoding(slide, "cuda", "fast")


def _predict_all(session: InferenceSession) -> np.ndarray:
    shared_cache().clear()
    scheduler = session.scheduler()
    scheduler.request_all()
    assert scheduler.wait_idle(120)
    scheduler.stop()
    return session.store.get(np.flatnonzero(session.store.done_mask().ravel()))


def test_a_session_decoding_through_the_stand_in_predicts_what_the_cpu_path_does(
    tmp_path: Path,
) -> None:
    bundle = make_bundle(tmp_path / "bundle", patch_size=64, spacing=1.0)
    with open_slide(SAMPLES / "her2st-C6-half.ome.tif") as slide:
        with InferenceSession.open(slide, bundle, cache=False, device="cpu") as plain:
            assert plain.decode_plan.decoder == CPU_DECODER
            expected = _predict_all(plain)
        with InferenceSession.open(
            slide, bundle, cache=False, device="cpu", jpeg_backend=PILLOW
        ) as session:
            assert session.decode_plan.switched == list(range(slide.level_count))
            got = _predict_all(session)
            decoded = sum(level.tile_reader.stream_stats().decoded for level in slide.level_sources)
            assert decoded > 0
        assert all(level.tile_reader._stream_decode is None for level in slide.level_sources)
    np.testing.assert_array_equal(got, expected)  # same pixels, so the same predictions


@pytest.mark.gpu
def test_real_gpu_decoders_on_every_jpeg_layout() -> None:
    """Where CUDA is: the decoder found agrees with tifffile on the shipped JPEG slides
    (or says how far it is off, which the plan records). Run by ``bench gpu``'s machine."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    backend, reason = find_gpu_jpeg("cuda")
    if backend is None:
        pytest.skip(reason)
    for path in (CMU1, SAMPLES / "her2st-C6-half.ome.tif"):
        with open_slide(path) as slide:
            decoding = set_up_decoding(slide, "cuda", "auto", backend=backend)
            print(path.name, decoding.plan.as_dict())
            for level in decoding.plan.levels:
                assert level.agreement is not None, level.reason
            decoding.close(slide)
