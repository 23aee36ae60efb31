"""Probabilistic Knowledge Transfer (PKT).

Passalis & Tefas, "Learning Deep Representations with Probabilistic Knowledge Transfer", ECCV 2018.
https://arxiv.org/abs/1803.10837
"""

from __future__ import annotations

from typing import Any

import torch

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import float32_math, require_field, require_teacher_spec
from .base import DistillationLoss, FeatureSpec, register_loss
from .sp import check_relational_batch


def cosine_conditional_probabilities(features: torch.Tensor, eps: float) -> torch.Tensor:
    """``P[i, j] = K(i, j) / sum_j K(i, j)`` with the cosine kernel ``K = (cos + 1) / 2``, as PKT's reference code.

    The norm gets ``+ eps`` (and NaNs from all-zero rows are zeroed) like the authors' code, so a zero
    feature vector yields a finite, uniform-ish row instead of NaN.
    """
    normed = features / (features.norm(dim=1, keepdim=True) + eps)
    normed = torch.nan_to_num(normed, nan=0.0)
    kernel = (normed @ normed.t() + 1.0) / 2.0
    return kernel / kernel.sum(dim=1, keepdim=True)


@register_loss
class PKTLoss(DistillationLoss):
    """Probabilistic knowledge transfer on the penultimate vectors (``pooler_output``).

    Passalis & Tefas, ECCV 2018 (https://arxiv.org/abs/1803.10837); RepDistiller ``distiller_zoo/PKT.py``.

    Each network's conditional distribution ``P[i, j]`` over the batch is built from the cosine kernel
    (``cosine_conditional_probabilities``); the loss is ``mean_ij P_t log((P_t + eps) / (P_s + eps))`` (a KL
    divergence averaged, not summed, over the ``B x B`` entries, as the reference). Student and teacher
    dimensions may differ. Hyper-parameters: ``eps`` (default 1e-7). Default weight 30000. Needs a batch of at
    least 2 samples.
    """

    name = "pkt"
    default_weight = 30000.0

    def __init__(
        self, student_spec: FeatureSpec, teacher_spec: FeatureSpec, *, eps: float = 1e-7, **kwargs: Any
    ) -> None:
        super().__init__(student_spec, teacher_spec, **kwargs)
        require_teacher_spec(teacher_spec, "PKT")
        self.eps = float(eps)

    def forward(  # type: ignore[override]
        self,
        student: DistillationModelOutput,
        teacher: DistillationModelOutput,
        *,
        labels: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
        epoch: float = 0.0,
    ) -> torch.Tensor:
        f_s, f_t = (
            require_field(student, "pooler_output", "PKT", "student"),
            require_field(teacher, "pooler_output", "PKT", "teacher").detach(),
        )
        check_relational_batch(f_s.shape[0], "PKT")
        with float32_math(f_s):
            p_s = cosine_conditional_probabilities(f_s.float().flatten(1), self.eps)
            p_t = cosine_conditional_probabilities(f_t.float().flatten(1), self.eps)
            return (p_t * torch.log((p_t + self.eps) / (p_s + self.eps))).mean()
