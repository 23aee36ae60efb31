"""Attention Transfer (AT).

Zagoruyko & Komodakis, "Paying More Attention to Attention: Improving the Performance of Convolutional Neural
Networks via Attention Transfer", ICLR 2017. https://arxiv.org/abs/1612.03928
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._utils import StagewiseLoss, float32_math, match_spatial_size
from .base import POSITIVE, FeatureSpec, register_loss


def attention_map(feature: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Spatial attention of ``(B, C, H, W)`` maps: ``mean_c f_c^p`` flattened and L2-normalised -> ``(B, HW)``.

    No absolute value, as in the authors' code and RepDistiller: the paper's ``|f|^p`` is the same for the
    post-ReLU maps it is applied to (and for any even ``p``).
    """
    return F.normalize(feature.pow(p).mean(dim=1).flatten(1), dim=1)


@register_loss
class ATLoss(StagewiseLoss):
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
    needs_spatial_maps = True
    default_weight = 1000.0

    # The paper, and how the cards and results tables present the method.
    bibtex = """@inproceedings{zagoruyko2017paying,
  title     = {Paying More Attention to Attention: Improving the Performance of Convolutional Neural
               Networks via Attention Transfer},
  author    = {Zagoruyko, Sergey and Komodakis, Nikos},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2017}
}"""
    paper_name = "AT"
    description = "match the spatial attention maps of the intermediate stages."
    table_order = 2
    hyperparameter_ranges = {"p": POSITIVE}

    def __init__(self, student_spec: FeatureSpec, teacher_spec: FeatureSpec, *, p: float = 2.0) -> None:
        super().__init__(student_spec, teacher_spec)
        self.p = float(p)

    def stage_term(self, index: int, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        with float32_math(f_s):
            f_s, f_t = match_spatial_size(f_s.float(), f_t.float())
            return (attention_map(f_s, self.p) - attention_map(f_t, self.p)).pow(2).mean()
