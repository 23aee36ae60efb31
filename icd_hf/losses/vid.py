"""Variational Information Distillation (VID).

Ahn, Hu, Damianou, Lawrence & Dai, "Variational Information Distillation for Knowledge Transfer", CVPR 2019.
https://arxiv.org/abs/1904.05835
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._utils import StagewiseLoss, float32_math, match_spatial_size
from .base import POSITIVE, FeatureSpec, register_loss


class VIDHead(nn.Module):
    """Gaussian ``q(t | s)`` for one stage: mean = 1x1-conv regressor of ``s``, learnable per-channel variance.

    The variance is ``softplus(log_scale) + eps`` (stays positive), initialised to ``init_pred_var``.
    """

    def __init__(
        self, in_channels: int, mid_channels: int, out_channels: int, init_pred_var: float, eps: float
    ) -> None:
        super().__init__()
        self.regressor = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(mid_channels, mid_channels, kernel_size=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(mid_channels, out_channels, kernel_size=1, bias=False),
        )
        # Inverse softplus, so that softplus(log_scale) + eps == init_pred_var at start.
        self.log_scale = nn.Parameter(torch.full((out_channels,), math.log(math.expm1(init_pred_var - eps))))
        self.eps = eps

    def variance(self) -> torch.Tensor:
        return F.softplus(self.log_scale.float()) + self.eps

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        f_s, f_t = match_spatial_size(f_s, f_t)
        mean = self.regressor(f_s)
        with float32_math(mean):
            var = self.variance().view(1, -1, 1, 1)
            neg_log_prob = 0.5 * ((mean.float() - f_t.float()).pow(2) / var + torch.log(var))
            return neg_log_prob.mean()


@register_loss
class VIDLoss(StagewiseLoss):
    """VID: per-stage Gaussian negative log-likelihood of the teacher map given the student map, summed.

    Ahn et al., CVPR 2019 (https://arxiv.org/abs/1904.05835); RepDistiller ``distiller_zoo/VID.py`` as
    ``train_student.py --distill vid`` wires it: one ``VIDHead(C_s, C_t, C_t)`` per pair of
    ``hidden_states[1:]`` (the larger map average-pooled to the smaller's size), the terms summed. The
    constant ``log(2 pi) / 2`` is dropped, so the value can be negative.

    Hyper-parameters: ``init_pred_var`` (5.0), ``eps`` (1e-5). Default weight 1. The heads (regressors and
    variances) train with the student, with weight decay as in the reference. Student and teacher must have
    the same number of stages.
    """

    name = "vid"
    default_weight = 1.0

    # The paper, and how the cards and results tables present the method.
    bibtex = """@inproceedings{ahn2019variational,
  title     = {Variational Information Distillation for Knowledge Transfer},
  author    = {Ahn, Sungsoo and Hu, Shell Xu and Damianou, Andreas and Lawrence, Neil D. and Dai, Zhenwen},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2019}
}"""
    paper_name = "VID"
    description = "maximise a variational lower bound on the mutual information of teacher and student features."
    table_order = 5
    hyperparameter_ranges = {"init_pred_var": POSITIVE, "eps": POSITIVE}

    def __init__(
        self,
        student_spec: FeatureSpec,
        teacher_spec: FeatureSpec,
        *,
        init_pred_var: float = 5.0,
        eps: float = 1e-5,
    ) -> None:
        super().__init__(student_spec, teacher_spec)
        if init_pred_var <= eps:
            raise ValueError(f"VID init_pred_var ({init_pred_var}) must be larger than eps ({eps}).")
        self.heads = nn.ModuleList(
            VIDHead(s[0], t[0], t[0], init_pred_var, eps)
            for s, t in zip(student_spec.hidden_shapes[1:], teacher_spec.hidden_shapes[1:])
        )

    def stage_term(self, index: int, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        return self.heads[index](f_s, f_t)
