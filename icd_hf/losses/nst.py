"""Neuron Selectivity Transfer (NST): match the distributions of neuron activation patterns with an MMD.

Huang & Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer", arXiv 2017.
https://arxiv.org/abs/1707.01219
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._utils import StagewiseLoss, float32_math, match_spatial_size
from .base import register_loss


def polynomial_kernel_mean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``mean_{n, i, j} (<a[n, i], b[n, j]>)^2`` for ``(B, C_a, L)`` and ``(B, C_b, L)``: the degree-2
    polynomial kernel (c = 0) averaged over all channel pairs of every sample."""
    return torch.bmm(a, b.transpose(1, 2)).pow(2).mean()


def nst_mmd(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """Squared MMD between the channels (as ``H*W`` distributions, L2-normalised) of two maps of equal size.

    The teacher-teacher term is a constant for the student; it is kept (detached) so that the value is a true
    MMD, zero when the maps agree, as RepDistiller's ``full_loss``.
    """
    s = F.normalize(f_s.flatten(2), dim=2)
    t = F.normalize(f_t.flatten(2), dim=2)
    return polynomial_kernel_mean(t, t).detach() + polynomial_kernel_mean(s, s) - 2 * polynomial_kernel_mean(s, t)


@register_loss
class NSTLoss(StagewiseLoss):
    """NST: polynomial-kernel MMD between student and teacher neuron-selectivity patterns of every stage.

    Huang & Wang 2017 (https://arxiv.org/abs/1707.01219); RepDistiller ``distiller_zoo/NST.py``.

    For each pair of ``hidden_states[1:]`` (the larger map average-pooled to the smaller's size) every channel
    is an L2-normalised distribution over the ``H*W`` positions; the loss is the squared MMD with the kernel
    ``k(x, y) = (x . y)^2`` between the student's and teacher's channel sets, summed over stages. Channel counts
    may differ. Default weight 50. Student and teacher must have the same number of stages.
    """

    name = "nst"
    needs_spatial_maps = True
    default_weight = 50.0

    # The paper, and how the cards and results tables present the method.
    bibtex = """@article{huang2017like,
  title   = {Like What You Like: Knowledge Distill via Neuron Selectivity Transfer},
  author  = {Huang, Zehao and Wang, Naiyan},
  journal = {arXiv preprint arXiv:1707.01219},
  year    = {2017}
}"""
    paper_name = "NST"
    description = "match the neuron-selectivity distributions of the feature maps with an MMD."
    table_order = 11

    def stage_term(self, index: int, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        with float32_math(f_s):
            return nst_mmd(*match_spatial_size(f_s.float(), f_t.float()))
