"""Model, optimiser and backend settings of the fast path: channels_last, ``torch.compile``, fused SGD, bf16."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


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


def _compile_targets(model: nn.Module) -> list[nn.Module]:
    # A Distiller (student + teacher + losses): compiling the two networks and leaving the losses eager
    # avoids graph breaks on the losses' Python control flow and dict outputs.
    networks = [getattr(model, name, None) for name in ("student", "teacher")]
    networks = [m for m in networks if isinstance(m, nn.Module)]
    return networks or [model]


def prepare_for_speed(
    model: nn.Module,
    *,
    channels_last: bool | None = None,
    compile: bool = False,
    compile_mode: str | None = None,
    compile_backend: str = "inductor",
) -> nn.Module:
    """Put ``model`` in the fast path's form, in place, and return it.

    Args:
        model: a model, or a ``Distiller`` (its ``student`` and ``teacher`` are compiled, not the losses).
        channels_last: convert 4-D parameters to ``torch.channels_last``; with channels_last inputs (what
            ``DeviceDataLoader`` yields) cuDNN/oneDNN run NHWC kernels without layout transposes. ``None``
            (default): only when the model's parameters are on CUDA (see ``channels_last_pays``; a bf16 CPU run
            passes ``True``).
        compile: compile with ``nn.Module.compile`` - in place, so ``state_dict`` keys keep their names and
            checkpoints stay interchangeable with uncompiled runs.
        compile_mode: ``torch.compile`` mode (``None``, ``"max-autotune-no-cudagraphs"``...). CUDA graphs
            (``"reduce-overhead"``) are not safe with losses that keep state across steps.
        compile_backend: ``torch.compile`` backend (``"eager"`` checks the wiring without code generation).
    """
    if channels_last is None:
        param = next(model.parameters(), None)
        channels_last = param is not None and param.device.type == "cuda"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        for module in _compile_targets(model):
            module.compile(mode=compile_mode, backend=compile_backend)
    return model


def is_compiled(module: nn.Module) -> bool:
    """Whether ``module`` was compiled in place by ``prepare_for_speed`` (``nn.Module.compile``)."""
    return getattr(module, "_compiled_call_impl", None) is not None


@functools.cache
def _fused_sgd_supported(device_type: str) -> bool:
    try:
        param = nn.Parameter(torch.zeros(2, device=device_type))
        param.grad = torch.ones_like(param)
        torch.optim.SGD([param], lr=0.1, momentum=0.9, weight_decay=1e-4, fused=True).step()
    except (RuntimeError, ValueError, TypeError, NotImplementedError):
        return False
    return True


def fused_sgd_available(device: torch.device | str | None = None) -> bool:
    """Whether ``torch.optim.SGD(..., fused=True)`` runs on ``device``'s type (checked once, by a real step)."""
    return _fused_sgd_supported(resolve_device(device).type)


def sgd_kwargs(device: torch.device | str | None = None) -> dict[str, bool]:
    """Extra ``torch.optim.SGD`` kwargs for the fastest implementation on ``device``.

    ``{"fused": True}`` (one kernel for the whole parameter list) where supported; ``{"foreach": True}`` on
    CUDA otherwise; ``{}`` (PyTorch's default choice) elsewhere.
    """
    device = resolve_device(device)
    if fused_sgd_available(device):
        return {"fused": True}
    return {"foreach": True} if device.type == "cuda" else {}


def build_sgd(
    params: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
    lr: float,
    *,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    nesterov: bool = False,
    device: torch.device | str | None = None,
) -> torch.optim.SGD:
    """SGD with the CIFAR recipe's defaults, using the fused kernel when the device has one."""
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, **sgd_kwargs(device)
    )


def autocast_context(device: torch.device | str | None = None, dtype: torch.dtype | None = torch.bfloat16):
    """``torch.autocast`` for ``device`` in ``dtype``; a null context when ``dtype`` is ``None`` or float32."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=resolve_device(device).type, dtype=dtype)


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


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for ``device``'s queued work (for timing); a no-op on the CPU."""
    device = resolve_device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
