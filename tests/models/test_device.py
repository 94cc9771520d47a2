"""Device choice: best available by default, explicit requests honoured or refused clearly."""

from __future__ import annotations

import pytest
import torch

from omicslens.models.device import choose_device
from omicslens.models.errors import DeviceError

HAS_CUDA = torch.cuda.is_available()
HAS_MPS = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def test_auto_picks_the_best_available() -> None:
    expected = "cuda" if HAS_CUDA else "mps" if HAS_MPS else "cpu"
    assert choose_device("auto").type == expected
    assert choose_device(None).type == expected


def test_cpu_is_always_available() -> None:
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("request_", ["cuda", "cuda:1"])
def test_unavailable_cuda_is_a_clear_error(request_: str) -> None:
    with pytest.raises(DeviceError, match="CUDA is not available") as caught:
        choose_device(request_)
    assert request_ in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("request_", ["gpu", "cuda:x", "xla"])
def test_unknown_devices_are_rejected(request_: str) -> None:
    with pytest.raises(DeviceError, match="auto, cpu, cuda"):
        choose_device(request_)


def test_cuda_index_is_checked_against_device_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert choose_device("cuda") == torch.device("cuda", 0)
    assert choose_device("auto") == torch.device("cuda", 0)
    with pytest.raises(DeviceError, match=r"only 1 CUDA device\(s\)"):
        choose_device("cuda:1")


@pytest.mark.skipif(HAS_MPS, reason="this machine has MPS")
def test_unavailable_mps_is_a_clear_error() -> None:
    with pytest.raises(DeviceError, match="MPS"):
        choose_device("mps")
