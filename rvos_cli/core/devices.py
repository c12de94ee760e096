"""Which device and precision a command runs on: `--device auto|cpu|cuda|cuda:N`, `--dtype auto|fp32|bf16`.

`auto` picks CUDA when torch sees a GPU (under torchrun, the local rank's GPU), else the CPU; and bf16
autocast only where the hardware computes bf16 natively (a CUDA GPU with bf16 support; a CPU whose
capability torch reports as AVX512-BF16 or AMX), fp32 elsewhere. On an AVX2-only CPU bf16 autocast is
emulated and several times slower than fp32 (measured: mttr-a2d 8x320x576 forward 4.7 s fp32 vs 20.8 s).
"""

from __future__ import annotations

import os
import warnings

from rvos_cli.errors import RvosError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
DTYPE_CHOICES = ("auto", "fp32", "bf16")


def resolve_device(device: str) -> str:
    """Turn `--device` into a torch device string ('cpu', 'cuda:0', ...).

    Takes 'auto', 'cpu', 'cuda' or 'cuda:N'. 'auto' gives `cuda:LOCAL_RANK` when CUDA is available (the
    local rank comes from torchrun's LOCAL_RANK, 0 without it), else 'cpu'. Asking for CUDA on a machine
    without it, or an unknown name, raises `RvosError`.
    """
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        return "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        if not torch.cuda.is_available():
            raise RvosError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
        return device
    raise RvosError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")


def cpu_has_native_bf16() -> bool:
    """True when torch reports AVX512-BF16 or AMX for this CPU (bf16 matmuls run in hardware)."""
    import torch

    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    if "AMX" in capability or "BF16" in capability:
        return True
    return _cpu_flags_have_bf16()


def _cpu_flags_have_bf16() -> bool:
    # torch reports only its dispatch level (e.g. AVX512), not the bf16 extensions; Linux lists them.
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        return False
    return False


def native_bf16(device: str) -> bool:
    """True when `device` ('cpu', 'cuda:N') computes bf16 natively, so bf16 autocast is faster there."""
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_bf16_supported())
    return cpu_has_native_bf16()


def resolve_dtype(dtype: str, device: str) -> str:
    """Turn `--dtype auto|fp32|bf16` into 'fp32' or 'bf16' for the resolved `device`.

    'auto' gives 'bf16' where the device runs bf16 natively, 'fp32' elsewhere. An explicit 'bf16' on a
    device without native bf16 is kept but warns (once) that it will be slower. Unknown names raise
    `RvosError`.
    """
    if dtype not in DTYPE_CHOICES:
        raise RvosError(f"--dtype {dtype!r}: expected auto, fp32 or bf16")
    if dtype == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if dtype == "bf16" and not native_bf16(device):
        warnings.warn(
            f"--dtype bf16: {device} has no native bf16 (AVX512-BF16/AMX); autocast will be slower than fp32",
            stacklevel=2,
        )
    return dtype
