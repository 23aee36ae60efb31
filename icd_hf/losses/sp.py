"""Similarity-Preserving knowledge distillation (SP).

Tung & Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019. https://arxiv.org/abs/1907.09682
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import check_relational_batch, float32_math, hidden_maps
from .base import BatchContext, DistillationLoss, register_loss


@register_loss
class SPLoss(DistillationLoss):
    """Similarity-preserving loss on the last stage map.

    Tung & Mori, ICCV 2019 (https://arxiv.org/abs/1907.09682); RepDistiller ``distiller_zoo/SP.py``.

    With ``F = hidden_states[-1]`` flattened to ``(B, C*H*W)``, ``G = row_normalise(F F^T)`` (B x B), the loss is
    ``||G_t - G_s||_F^2 / B^2``. Student and teacher maps may differ in every dimension. Default weight 3000.
    Needs a batch of at least 2 samples.
    """

    name = "sp"
    needs_hidden_states = True
    default_weight = 3000.0

    # The paper, and how the cards and results tables present the method.
    bibtex = """@inproceedings{tung2019similarity,
  title     = {Similarity-Preserving Knowledge Distillation},
  author    = {Tung, Frederick and Mori, Greg},
  booktitle = {IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2019}
}"""
    paper_name = "SP"
    description = "match the batch similarity matrices of the last feature maps."
    table_order = 3

    def compute(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput, batch: BatchContext
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
