"""The fast path's numeric mode: bf16 autocast and channels_last where the device computes bf16 natively."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .device import bf16_supported, cpu_bf16_instructions, resolve_device


def autocast_context(device: torch.device | str | None = None, dtype: torch.dtype | None = torch.bfloat16):
    """``torch.autocast`` for ``device`` in ``dtype``; a null context when ``dtype`` is ``None`` or float32."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=resolve_device(device).type, dtype=dtype)


def channels_last_pays(device: torch.device | str | None, bf16: bool) -> bool:
    """Whether NHWC models and inputs are faster on ``device``.

    On CUDA always (cuDNN's NHWC kernels, tensor cores). On the CPU only with bf16: oneDNN's bf16 convolutions
    are NHWC-native (measured on a Xeon with AMX, wrn_40_2 -> wrn_16_2: 242 -> 443 img/s), while in fp32 NHWC
    gains nothing and costs seconds of kernel set-up on the first steps.
    """
    device = resolve_device(device)
    return device.type == "cuda" or (device.type == "cpu" and bf16)


@dataclass(frozen=True)
class FastPathPrecision:
    """The fast path's numeric mode for one device, and why it was chosen (logged once per run)."""

    bf16: bool
    channels_last: bool
    reason: str

    def describe(self) -> str:
        mode = "bf16 autocast" if self.bf16 else "fp32"
        layout = "channels_last" if self.channels_last else "contiguous NCHW"
        return f"{mode}, {layout}: {self.reason}"


def choose_fast_path_precision(device: torch.device | str | None, requested: bool | None = None) -> FastPathPrecision:
    """bf16 where the device computes it natively, fp32 elsewhere; ``requested`` (``training.bf16``) overrides.

    ``requested=None`` means "not set by the user": pick automatically. ``False`` forces fp32; ``True`` forces
    bf16 even where it is emulated (slow, but the user asked).
    """
    device = resolve_device(device)
    if device.type == "cuda":
        where = f"CUDA device {torch.cuda.get_device_name(device)}" if torch.cuda.is_available() else "CUDA"
    else:
        instructions = cpu_bf16_instructions()
        where = f"the CPU ({instructions})" if instructions else "the CPU (no AMX-BF16/AVX512-BF16 flag)"
    native = bf16_supported(device)
    if requested is False:
        bf16, reason = False, f"bf16 turned off by training.bf16=false on {where}"
    elif requested:
        bf16 = True
        reason = f"training.bf16=true on {where}" + ("" if native else ", which emulates bf16 (slower than fp32)")
    elif native:
        bf16, reason = True, f"{where} has native bf16; losses keep float32 math"
    else:
        bf16, reason = False, f"{where} has no native bf16, where bf16 autocast is slower than fp32"
    return FastPathPrecision(bf16=bf16, channels_last=channels_last_pays(device, bf16), reason=reason)
