"""Correlation Congruence (CC) for knowledge distillation.

Peng et al., "Correlation Congruence for Knowledge Distillation", ICCV 2019. https://arxiv.org/abs/1904.01802
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import check_relational_batch, float32_math, require_field
from .base import AT_LEAST_ONE, BatchContext, DistillationLoss, FeatureSpec, register_loss


@register_loss
class CCLoss(DistillationLoss):
    """Correlation congruence on linearly embedded penultimate vectors, as the CRD benchmark implements it.

    Peng et al., ICCV 2019 (https://arxiv.org/abs/1904.01802); RepDistiller ``distiller_zoo/CC.py`` with the
    ``LinearEmbed`` heads ``train_student.py --distill correlation`` builds.

    Student and teacher ``pooler_output`` go through their own trainable ``nn.Linear(D, embed_dim)`` heads
    (both trained with the student; the teacher network stays frozen). With ``delta = |e_s - e_t|`` (B x d),
    the loss is ``mean_i sum_d delta[i, d] * delta[i + 1, d]`` over consecutive samples of the batch: the
    code the CC authors sent to the CRD authors, a cheap surrogate of the paper's kernelised correlation
    matrices. Hyper-parameters: ``embed_dim`` (128, RepDistiller's ``--feat_dim``). Default weight 0.02.
    Needs a batch of at least 2 samples.
    """

    name = "cc"
    default_weight = 0.02

    # The paper, and how the cards and results tables present the method.
    bibtex = """@inproceedings{peng2019correlation,
  title     = {Correlation Congruence for Knowledge Distillation},
  author    = {Peng, Baoyun and Jin, Xiao and Liu, Jiaheng and Zhou, Shunfeng and Wu, Yichao and Liu, Yu and
               Li, Dongsheng and Zhang, Zhaoning},
  booktitle = {IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2019}
}"""
    paper_name = "CC"
    description = "match the correlations between the embeddings of the images of a batch."
    table_order = 4
    hyperparameter_ranges = {"embed_dim": AT_LEAST_ONE}

    def __init__(self, student_spec: FeatureSpec, teacher_spec: FeatureSpec, *, embed_dim: int = 128) -> None:
        super().__init__(student_spec, teacher_spec)
        self.embed_s = nn.Linear(student_spec.pooled_dim, embed_dim)
        self.embed_t = nn.Linear(teacher_spec.pooled_dim, embed_dim)

    def compute(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput, batch: BatchContext
    ) -> torch.Tensor:
        f_s, f_t = (
            require_field(student, "pooler_output", "CC", "student").flatten(1),
            require_field(teacher, "pooler_output", "CC", "teacher").detach().flatten(1),
        )
        check_relational_batch(f_s.shape[0], "CC")
        e_s, e_t = self.embed_s(f_s), self.embed_t(f_t)
        with float32_math(e_s):
            delta = (e_s.float() - e_t.float()).abs()
            return (delta[:-1] * delta[1:]).sum(dim=1).mean()
