"""Probabilistic Knowledge Transfer (PKT).

Passalis & Tefas, "Learning Deep Representations with Probabilistic Knowledge Transfer", ECCV 2018.
https://arxiv.org/abs/1803.10837
"""

from __future__ import annotations

import torch

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import check_relational_batch, float32_math, require_field
from .base import POSITIVE, BatchContext, DistillationLoss, FeatureSpec, register_loss


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

    # The paper, and how the cards and results tables present the method.
    bibtex = """@inproceedings{passalis2018learning,
  title     = {Learning Deep Representations with Probabilistic Knowledge Transfer},
  author    = {Passalis, Nikolaos and Tefas, Anastasios},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2018}
}"""
    paper_name = "PKT"
    description = "match the probability distributions of pairwise embedding similarities."
    table_order = 7
    hyperparameter_ranges = {"eps": POSITIVE}

    def __init__(self, student_spec: FeatureSpec, teacher_spec: FeatureSpec, *, eps: float = 1e-7) -> None:
        super().__init__(student_spec, teacher_spec)
        self.eps = float(eps)

    def compute(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput, batch: BatchContext
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
