"""The fast path's optimiser: SGD with the fused (one kernel) implementation where the device has one."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .device import resolve_device


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
