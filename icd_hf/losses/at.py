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
from ._utils import (
    check_same_stage_count,
    float32_math,
    loss_with_terms,
    match_spatial_size,
    require_teacher_spec,
    stage_pairs,
)
from .base import DistillationLoss, FeatureSpec, register_loss

# ----------------------------------------------------------------------------- shared helpers


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
    needs_spatial_maps = True

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
