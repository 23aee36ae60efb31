"""Attention Transfer (AT), plus the stage-map helpers shared by the feature-map baselines.

Zagoruyko & Komodakis, "Paying More Attention to Attention: Improving the Performance of Convolutional Neural
Networks via Attention Transfer", ICLR 2017. https://arxiv.org/abs/1612.03928

The helpers (``hidden_maps``, ``stage_pairs``, ``match_spatial_size``, ``check_same_stage_count``) are used
by NST, VID, AB, FT and FSP as well; they live here because AT is the simplest loss over stage pairs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import float32_math, loss_with_terms, require_field
from .base import DistillationLoss, FeatureSpec, register_loss

# ----------------------------------------------------------------------------- shared helpers


def require_teacher_spec(teacher_spec: FeatureSpec | None, loss_name: str) -> FeatureSpec:
    """Return ``teacher_spec`` or explain that ``loss_name`` distils from a teacher."""
    if teacher_spec is None:
        raise ValueError(f"{loss_name} distils teacher features, so it needs a teacher FeatureSpec; got None.")
    return teacher_spec


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
            f"student/teacher pair with the same number of stages, or a loss on pooled features (kd, rkd, pkt, crd)."
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


# ----------------------------------------------------------------------------- AT


def attention_map(feature: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Spatial attention of ``(B, C, H, W)`` maps: ``mean_c f_c^p`` flattened and L2-normalised -> ``(B, HW)``.

    No absolute value, as in the authors' code and RepDistiller: the paper's ``|f|^p`` is the same for the
    post-ReLU maps it is applied to (and for any even ``p``).
    """
    return F.normalize(feature.pow(p).mean(dim=1).flatten(1), dim=1)


@register_loss
class ATLoss(DistillationLoss):
    """Attention Transfer: match the normalised spatial attention maps of every stage.

    Zagoruyko & Komodakis, ICLR 2017 (https://arxiv.org/abs/1612.03928); RepDistiller ``distiller_zoo/AT.py``.

    For each stage ``i >= 1``, the larger of student and teacher ``hidden_states[i]`` is average-pooled to the
    smaller's size, and the loss is ``mean((Q_s - Q_t)^2)`` with ``Q = attention_map(f, p)``; the stage
    terms are summed (RepDistiller's training loop sums the list ``Attention`` returns).

    Hyper-parameters:
        p: exponent of the attention map (default 2).

    Default weight 1000 (CRD CIFAR-100 recipe). Student and teacher must have the same number of stages
    (a ``ValueError`` otherwise; RepDistiller would silently drop the extra stages).
    """

    name = "at"
    default_weight = 1000.0
    needs_hidden_states = True

    def __init__(self, student_spec: FeatureSpec, teacher_spec: FeatureSpec, *, p: float = 2.0, **kwargs: Any) -> None:
        super().__init__(student_spec, teacher_spec, **kwargs)
        teacher_spec = require_teacher_spec(teacher_spec, "AT")
        self.num_pairs = check_same_stage_count(student_spec, teacher_spec, "AT")
        self.p = float(p)

    def forward(  # type: ignore[override]
        self,
        student: DistillationModelOutput,
        teacher: DistillationModelOutput,
        *,
        labels: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
        epoch: float = 0.0,
    ) -> dict[str, torch.Tensor]:
        terms = {}
        for i, (f_s, f_t) in enumerate(stage_pairs(student, teacher, "AT", expected=self.num_pairs), start=1):
            with float32_math(f_s):
                f_s, f_t = match_spatial_size(f_s.float(), f_t.float())
                terms[f"stage{i}"] = (attention_map(f_s, self.p) - attention_map(f_t, self.p)).pow(2).mean()
        return loss_with_terms(terms)
