"""Flow of Solution Procedure (FSP) matrices.

Yim, Joo, Bae & Kim, "A Gift from Knowledge Distillation: Fast Optimization, Network Minimization and Transfer
Learning", CVPR 2017. https://openaccess.thecvf.com/content_cvpr_2017/html/Yim_A_Gift_From_CVPR_2017_paper.html
"""

from __future__ import annotations

import torch

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import StagewiseLoss, float32_math, match_spatial_size
from .base import FeatureSpec, register_loss


def fsp_matrix(bottom: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """``G[n, j, i] = mean_{h, w} top[n, j, h, w] * bottom[n, i, h, w]`` -> ``(B, C_top, C_bottom)``.

    The larger of the two maps is first average-pooled to the other's size (RepDistiller's rule).
    """
    bottom, top = match_spatial_size(bottom, top)
    return torch.bmm(top.flatten(2), bottom.flatten(2).transpose(1, 2)) / bottom[0, 0].numel()


@register_loss
class FSPLoss(StagewiseLoss):
    """FSP: match the Gram ("flow") matrices between consecutive maps of ``hidden_states`` (stem included).

    Yim et al., CVPR 2017; RepDistiller ``distiller_zoo/FSP.py`` and ``train_student.py --distill fsp``.

    For each consecutive pair ``(hidden_states[k], hidden_states[k + 1])`` of a network its ``fsp_matrix`` is
    formed; the loss is the sum over ``k`` of ``mean((G_s - G_t)^2)``. The matrices are ``C_k x C_{k+1}``, so
    student and teacher need the same channel count at every hidden state (a ``ValueError`` otherwise: FSP
    does not apply to such pairs, as in the CRD benchmark).

    Schedule, as RepDistiller: an initialisation stage of ``init_epochs = 30`` epochs trains the student on
    this loss alone (``init_loss``; ``init_parameters`` = the student's: FSP has no parameters of its own).
    RepDistiller's main stage then adds nothing (its loop sets the FSP term to 0; the recipe's ``-b 50`` is
    inert), so ``forward`` returns 0 by default. ``main_stage=True`` keeps the FSP term during distillation
    with the recipe weight 50.

    Hyper-parameters: ``main_stage`` (False).
    """

    name = "fsp"
    needs_spatial_maps = True
    init_epochs = 30
    default_weight = 50.0

    # The paper, and how the cards and results tables present the method.
    bibtex = """@inproceedings{yim2017gift,
  title     = {A Gift from Knowledge Distillation: Fast Optimization, Network Minimization and Transfer
               Learning},
  author    = {Yim, Junho and Joo, Donggyu and Bae, Jihoon and Kim, Junmo},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2017}
}"""
    paper_name = "FSP"
    description = "match the flow-of-solution (Gram) matrices between consecutive stages."
    table_order = 10
    stage_start = 0  # the stem map takes part: its flow into the first stage is the first term

    def __init__(self, student_spec: FeatureSpec, teacher_spec: FeatureSpec, *, main_stage: bool = False) -> None:
        super().__init__(student_spec, teacher_spec)
        if self.num_pairs < 2:
            raise ValueError("FSP relates consecutive hidden_states and needs at least two of them (stem + 1 stage).")
        s_channels = [s[0] for s in student_spec.hidden_shapes]
        t_channels = [t[0] for t in teacher_spec.hidden_shapes]
        if s_channels != t_channels:
            raise ValueError(
                f"FSP compares C_k x C_(k+1) matrices, so student and teacher need equal channel counts at every "
                f"hidden state; got student {s_channels} and teacher {t_channels}. FSP does not apply to this pair "
                f"(the CRD benchmark skips it for such pairs): choose another loss."
            )
        self.main_stage = bool(main_stage)

    def stage_terms(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput
    ) -> dict[str, torch.Tensor]:
        """One term per flow ``k`` (between maps ``k`` and ``k + 1``), logged as ``flow<k>``."""
        pairs = self.stage_pairs(student, teacher)
        terms = {}
        with float32_math(pairs[0][0]):
            maps_s = [s.float() for s, _ in pairs]
            maps_t = [t.float() for _, t in pairs]
            for k in range(self.num_pairs - 1):
                g_s = fsp_matrix(maps_s[k], maps_s[k + 1])
                g_t = fsp_matrix(maps_t[k], maps_t[k + 1])
                terms[f"flow{k}"] = (g_s - g_t).pow(2).mean()
        return terms
