"""Small helpers shared by the loss modules: float32 math under autocast, input checks, summing per-stage terms,
the L2-normalised linear embedding head, cross-process gathering for memory banks, and ``StagewiseLoss``, the base
of the losses summed over stage pairs (AT, NST, VID, AB, FSP). This module registers no loss."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import ClassVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..models.modeling_outputs import DistillationModelOutput
from .base import BatchContext, DistillationLoss, FeatureSpec, losses_without_hidden_states


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


def check_relational_batch(batch_size: int, loss_name: str) -> None:
    """Batch-relational losses compare samples with each other: a batch of one carries no relation."""
    if batch_size < 2:
        raise ValueError(
            f"{loss_name} is computed from relations between the samples of a batch and needs a batch of at "
            f"least 2, got {batch_size}; raise the per-device batch size (and use drop_last for the last batch)."
        )


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


# ----------------------------------------------------------------------------- stage-wise feature losses


def hidden_maps(
    output: DistillationModelOutput | None, loss_name: str, *, preact: bool = False, role: str = "student"
) -> tuple[torch.Tensor, ...]:
    """The ``(stem, stage1, ..., stageK)`` maps of a model output, with a clear error when they are missing."""
    return tuple(require_field(output, "preact_hidden_states" if preact else "hidden_states", loss_name, role))


def check_same_stage_count(student_spec: FeatureSpec, teacher_spec: FeatureSpec, loss_name: str, start: int = 1) -> int:
    """Number of ``hidden_shapes[start:]`` pairs; raise when student and teacher have different counts.

    RepDistiller ``zip``s the two lists, silently dropping the extra stages of the deeper model; pairing
    stage ``i`` of one network with stage ``i`` of a network with a different number of stages is not what
    the method means, so it is refused here instead.
    """
    n_s = len(student_spec.hidden_shapes) - start
    n_t = len(teacher_spec.hidden_shapes) - start
    if n_s != n_t:
        raise ValueError(
            f"{loss_name} pairs stage i of the student with stage i of the teacher, but the student has {n_s} "
            f"stage maps and the teacher {n_t} (hidden_states[{start}:] shapes: student "
            f"{student_spec.hidden_shapes[start:]}, teacher {teacher_spec.hidden_shapes[start:]}). Use a "
            f"student/teacher pair with the same number of stages, or a loss on logits or pooled features "
            f"({', '.join(losses_without_hidden_states())})."
        )
    if n_s <= 0:
        raise ValueError(f"{loss_name} needs at least one stage map in hidden_states[{start}:]; the models have none.")
    return n_s


def stage_pairs(
    student: DistillationModelOutput,
    teacher: DistillationModelOutput,
    loss_name: str,
    *,
    expected: int,
    start: int = 1,
    preact: bool = False,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(student_map, teacher_map.detach())`` for every index ``>= start`` of ``hidden_states``; ``expected`` is
    the number of pairs the loss was built for.

    The teacher side is detached so no loss ever sends a gradient into the teacher, whatever the caller did.
    """
    maps_s = hidden_maps(student, loss_name, preact=preact, role="student")[start:]
    maps_t = hidden_maps(teacher, loss_name, preact=preact, role="teacher")[start:]
    if len(maps_s) != expected or len(maps_t) != expected:
        raise ValueError(
            f"{loss_name} was built for {expected} stage pairs but got {len(maps_s)} student and {len(maps_t)} "
            f"teacher maps: the models must be the ones whose FeatureSpec built the loss."
        )
    return [(s, t.detach()) for s, t in zip(maps_s, maps_t)]


def match_spatial_size(f_s: torch.Tensor, f_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the larger of two ``(B, C, H, W)`` maps to the other's size (RepDistiller's rule).

    RepDistiller compares heights only and pools to a square ``(H, H)``; pooling to ``(H, W)`` of the smaller
    map is identical for the square maps of the CIFAR zoo and also correct for rectangular ones.
    """
    s_hw, t_hw = tuple(f_s.shape[-2:]), tuple(f_t.shape[-2:])
    if s_hw[0] > t_hw[0]:
        f_s = F.adaptive_avg_pool2d(f_s, t_hw)
    elif s_hw[0] < t_hw[0]:
        f_t = F.adaptive_avg_pool2d(f_t, s_hw)
    elif s_hw[1] != t_hw[1]:
        # Same height, different width: pool the wider one.
        if s_hw[1] > t_hw[1]:
            f_s = F.adaptive_avg_pool2d(f_s, t_hw)
        else:
            f_t = F.adaptive_avg_pool2d(f_t, s_hw)
    return f_s, f_t


class StagewiseLoss(DistillationLoss):
    """A loss summed over the stage pairs ``(student map i, teacher map i)`` of ``hidden_states[stage_start:]``.

    Subclasses give ``stage_term(index, f_s, f_t)`` (``f_t`` detached); the loss is the sum of the terms, logged
    as ``stage1``, ``stage2``... Student and teacher must have the same number of stage maps (RepDistiller would
    silently drop the extra stages of the deeper one). AB and FSP act through their initialisation stage:
    ``init_loss`` is the same sum, and their main-stage term is zero unless ``main_stage`` (as RepDistiller).
    """

    needs_hidden_states = True
    stage_start: ClassVar[int] = 1
    stage_preact: ClassVar[bool] = False  # read preact_hidden_states (AB's pre-ReLU responses)

    def __init__(self, student_spec: FeatureSpec, teacher_spec: FeatureSpec) -> None:
        super().__init__(student_spec, teacher_spec)
        self.num_pairs = check_same_stage_count(student_spec, teacher_spec, self.paper_name, start=self.stage_start)
        self.main_stage = True

    def stage_pairs(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return stage_pairs(
            student, teacher, self.paper_name, expected=self.num_pairs, start=self.stage_start, preact=self.stage_preact
        )

    def stage_terms(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput
    ) -> dict[str, torch.Tensor]:
        pairs = self.stage_pairs(student, teacher)
        return {f"stage{i + 1}": self.stage_term(i, f_s, f_t) for i, (f_s, f_t) in enumerate(pairs)}

    def stage_term(self, index: int, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def compute(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput, batch: BatchContext
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        if not self.main_stage:
            return torch.zeros((), device=student.logits.device)
        return loss_with_terms(self.stage_terms(student, teacher))

    def init_loss(self, student: DistillationModelOutput, teacher: DistillationModelOutput) -> torch.Tensor:
        if not self.init_epochs:
            return super().init_loss(student, teacher)
        return sum_terms(self.stage_terms(student, teacher))
