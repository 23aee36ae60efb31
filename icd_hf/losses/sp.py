"""Similarity-Preserving knowledge distillation (SP).

Tung & Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019. https://arxiv.org/abs/1907.09682
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import float32_math, hidden_maps, require_teacher_spec
from .base import DistillationLoss, FeatureSpec, register_loss


def check_relational_batch(batch_size: int, loss_name: str) -> None:
    """Batch-relational losses compare samples with each other: a batch of one carries no relation."""
    if batch_size < 2:
        raise ValueError(
            f"{loss_name} is computed from relations between the samples of a batch and needs a batch of at "
            f"least 2, got {batch_size}; raise the per-device batch size (and use drop_last for the last batch)."
        )


@register_loss
class SPLoss(DistillationLoss):
    """Similarity-preserving loss on the last stage map.

    Tung & Mori, ICCV 2019 (https://arxiv.org/abs/1907.09682); RepDistiller ``distiller_zoo/SP.py``.

    With ``F = hidden_states[-1]`` flattened to ``(B, C*H*W)``, ``G = row_normalise(F F^T)`` (B x B), the loss is
    ``||G_t - G_s||_F^2 / B^2``. Student and teacher maps may differ in every dimension. Default weight 3000.
    Needs a batch of at least 2 samples.
    """

    name = "sp"
    default_weight = 3000.0
    needs_hidden_states = True

    def __init__(self, student_spec: FeatureSpec, teacher_spec: FeatureSpec, **kwargs: Any) -> None:
        super().__init__(student_spec, teacher_spec, **kwargs)
        require_teacher_spec(teacher_spec, "SP")

    def forward(  # type: ignore[override]
        self,
        student: DistillationModelOutput,
        teacher: DistillationModelOutput,
        *,
        labels: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
        epoch: float = 0.0,
    ) -> torch.Tensor:
        f_s = hidden_maps(student, "SP")[-1]
        f_t = hidden_maps(teacher, "SP", role="teacher")[-1].detach()
        bsz = f_s.shape[0]
        check_relational_batch(bsz, "SP")
        with float32_math(f_s):
            f_s = f_s.float().reshape(bsz, -1)
            f_t = f_t.float().reshape(bsz, -1)
            g_s = F.normalize(f_s @ f_s.t(), dim=1)
            g_t = F.normalize(f_t @ f_t.t(), dim=1)
            return (g_t - g_s).pow(2).sum() / (bsz * bsz)
