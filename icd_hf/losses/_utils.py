"""Small helpers shared by the loss modules: float32 math under autocast, input checks, summing per-stage terms,
the L2-normalised linear embedding head, and cross-process gathering for memory banks. This module registers no
loss."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..models.modeling_outputs import DistillationModelOutput


@contextlib.contextmanager
def float32_math(reference: torch.Tensor) -> Iterator[None]:
    """Disable autocast on ``reference``'s device, so a loss can compute softmax/log/exp in float32.

    Callers cast their inputs with ``.float()`` inside the block; under fp16/bf16 autocast, log-probabilities,
    exponentials of temperature-scaled logits and large sums lose too much precision otherwise.
    """
    device_type = reference.device.type
    if torch.amp.is_autocast_available(device_type):
        with torch.autocast(device_type=device_type, enabled=False):
            yield
    else:  # a backend with no autocast: nothing to disable
        yield


def require_field(output: DistillationModelOutput | None, field: str, loss_name: str, role: str) -> torch.Tensor:
    """Read ``output.<field>`` or fail with a message that says what to change.

    ``role`` is ``"student"`` or ``"teacher"``; a missing teacher output means the method was run without one.
    """
    if output is None:
        raise ValueError(f"Loss {loss_name!r} needs {role} outputs but got None: pass a teacher to the Distiller.")
    value = getattr(output, field, None)
    if value is None:
        hint = (
            " Run the models with output_hidden_states=True (the Distiller does this when the loss sets "
            "needs_hidden_states = True)."
            if "hidden_states" in field
            else ""
        )
        raise ValueError(f"Loss {loss_name!r} needs the {role}'s `{field}`, which is None.{hint}")
    return value


def require_labels(labels: torch.Tensor | None, loss_name: str) -> torch.Tensor:
    """The batch's labels or a clear error (DKD-like losses use the ground truth)."""
    if labels is None:
        raise ValueError(f"Loss {loss_name!r} needs the batch `labels`; pass labels=... to its forward.")
    return labels


def sum_terms(terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The sum of a loss's terms (per stage, per flow...), keeping the graph."""
    return torch.stack(list(terms.values())).sum()


def loss_with_terms(terms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A loss's ``forward`` result from its terms: ``"loss"`` is their sum, each term is logged detached."""
    return {"loss": sum_terms(terms), **{k: v.detach() for k, v in terms.items()}}


class LinearEmbed(nn.Module):
    """``Linear(dim_in, dim_out)`` then L2 normalisation: the ``Embed`` head of CRD (Tian et al., 2020).

    Inputs with more than two dimensions are flattened per sample, as the reference does.
    """

    def __init__(self, dim_in: int, dim_out: int = 128) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x.flatten(1).to(self.linear.weight.dtype))
        return F.normalize(x, dim=1)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@torch.no_grad()
def gather_for_memory(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """All-gather tensors along dim 0 across processes, for updating a memory bank identically on every rank.

    Returns the inputs unchanged (detached) in a single process. Under ``torch.distributed`` every rank gets
    the concatenation, rank order, of every rank's tensors; batch sizes may differ between ranks (the last
    batch), so sizes are exchanged first and each tensor is padded to the largest before ``all_gather``.
    All tensors must share their first dimension. No gradient flows through the result.
    """
    tensors = tuple(t.detach() for t in tensors)
    if not is_distributed():
        return tensors
    if len({t.shape[0] for t in tensors}) != 1:
        raise ValueError(f"gather_for_memory needs equal first dimensions, got {[t.shape[0] for t in tensors]}")
    world = dist.get_world_size()
    device = tensors[0].device
    size = torch.tensor([tensors[0].shape[0]], device=device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    gathered = []
    for t in tensors:
        padded = t.new_zeros((longest, *t.shape[1:]))
        padded[: t.shape[0]] = t
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded.contiguous())
        gathered.append(torch.cat([p[:n] for p, n in zip(parts, counts)], dim=0))
    return tuple(gathered)


@torch.no_grad()
def mean_across_processes(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over processes (itself in a single process); used to agree on statistics."""
    if not is_distributed():
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / dist.get_world_size()
