"""--device / --dtype auto: CUDA when present, bf16 only where the hardware runs it natively."""

from __future__ import annotations

import pytest
import torch

from rvos_cli.core import devices
from rvos_cli.errors import RvosError


def test_auto_device_is_cpu_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == "cpu"
    with pytest.raises(RvosError, match=r"--device cuda:1: CUDA is not available on this machine"):
        devices.resolve_device("cuda:1")


def test_auto_device_takes_the_local_rank_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert devices.resolve_device("auto") == "cuda:3"
    assert devices.resolve_device("cuda:0") == "cuda:0"


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "CPU"])
def test_unknown_device_names_the_choices(bad: str) -> None:
    with pytest.raises(RvosError, match=rf"--device '{bad}': expected auto, cpu, cuda or cuda:N"):
        devices.resolve_device(bad)


def test_auto_dtype_follows_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert devices.resolve_dtype("auto", "cpu") == "bf16"
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert devices.resolve_dtype("auto", "cpu") == "fp32"
    assert devices.resolve_dtype("fp32", "cpu") == "fp32"


def test_explicit_bf16_without_native_support_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match=r"cpu has no native bf16"):
        assert devices.resolve_dtype("bf16", "cpu") == "bf16"
    with pytest.raises(RvosError, match=r"--dtype 'fp16': expected auto, fp32 or bf16"):
        devices.resolve_dtype("fp16", "cpu")
