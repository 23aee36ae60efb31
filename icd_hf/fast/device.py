"""What the device can do and how it is set up: its resolution from a name, native bf16 (on CUDA, or a CPU with
AMX-BF16/AVX512-BF16), the process-wide CUDA settings, and waiting for its queue."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch


def resolve_device(device: torch.device | str | None = None) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` picks CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def configure_cuda_backends(*, cudnn_benchmark: bool = True, tf32: bool = True) -> None:
    """Process-wide CUDA settings for fixed-shape convnet training; a no-op without CUDA.

    ``cudnn.benchmark`` picks the fastest convolution algorithm once per shape (CIFAR shapes never change).
    TF32 matmuls/convolutions keep fp32 range with a 10-bit mantissa: the usual trade on Ampere and later.
    """
    if not torch.cuda.is_available():
        return
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


# /proc/cpuinfo flags of native bf16 arithmetic, best first. Without one, PyTorch emulates bf16 on the CPU and
# autocast runs several times *slower* than fp32 (measured on an AVX2-only AMD EPYC: ~10x).
_CPU_BF16_FLAGS = (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"))


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:  # not Linux: no flags to read, so no bf16 claim
        pass
    return frozenset()


def cpu_bf16_instructions(flags: Iterable[str] | None = None) -> str | None:
    """The CPU's native bf16 instruction set (``"AMX-BF16"``, ``"AVX512-BF16"``), or ``None`` when it has none.

    ``flags`` defaults to this machine's ``/proc/cpuinfo`` flags (none off Linux).
    """
    present = _cpu_flags() if flags is None else frozenset(flags)
    return next((name for flag, name in _CPU_BF16_FLAGS if flag in present), None)


def bf16_supported(device: torch.device | str | None = None) -> bool:
    """bf16 autocast is worth using: a CUDA device with native bf16 (Ampere or later), or a CPU with AMX-BF16 or
    AVX512-BF16."""
    device = resolve_device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_bf16_instructions() is not None


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for ``device``'s queued work (for timing); a no-op on the CPU."""
    device = resolve_device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
