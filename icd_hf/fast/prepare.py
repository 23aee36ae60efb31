"""The model in the fast path's form: channels_last parameters and ``torch.compile``, in place."""

from __future__ import annotations

import torch
from torch import nn


def _compile_targets(model: nn.Module) -> list[nn.Module]:
    # A Distiller (student + teacher + losses): compiling the two networks and leaving the losses eager
    # avoids graph breaks on the losses' Python control flow and dict outputs.
    networks = [getattr(model, name, None) for name in ("student", "teacher")]
    networks = [m for m in networks if isinstance(m, nn.Module)]
    # A teacher ensemble is compiled teacher by teacher: its output is a plain container, not a graph output.
    networks = [n for m in networks for n in (m.members if isinstance(getattr(m, "members", None), nn.ModuleList)
                                              else [m])]
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
