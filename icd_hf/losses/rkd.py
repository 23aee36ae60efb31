"""Relational Knowledge Distillation (RKD): distance-wise and angle-wise relations of a batch.

Park, Kim, Lu & Cho, "Relational Knowledge Distillation", CVPR 2019. https://arxiv.org/abs/1904.05068
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import check_relational_batch, float32_math, require_field
from .base import NON_NEGATIVE, BatchContext, DistillationLoss, FeatureSpec, register_loss


def pairwise_distances(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distance matrix of the rows of ``e`` with a zero diagonal (squared distances clamped at eps).

    The clamp keeps the square root differentiable where two rows coincide.
    """
    sq = e.pow(2).sum(dim=1)
    dist = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * e @ e.t()).clamp(min=eps).sqrt()
    return dist * (1 - torch.eye(len(e), device=e.device, dtype=e.dtype))


def normalised_distances(e: torch.Tensor) -> torch.Tensor:
    """Distances divided by their mean over the positive (off-diagonal, distinct) pairs."""
    d = pairwise_distances(e)
    return d / d[d > 0].mean()


def triplet_angles(e: torch.Tensor) -> torch.Tensor:
    """``cos`` of the angle at ``j`` in every triplet ``(i, j, k)``, flattened: ``<e_i - e_j, e_k - e_j>`` of unit
    vectors (a zero difference gives a zero vector, hence a zero cosine, as in the reference code)."""
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()


@register_loss
class RKDLoss(DistillationLoss):
    """RKD: ``distance_weight * RKD-D + angle_weight * RKD-A`` on the penultimate vectors (``pooler_output``).

    Park et al., CVPR 2019 (https://arxiv.org/abs/1904.05068); RepDistiller ``distiller_zoo/RKD.py``.

    RKD-D is the smooth-L1 (Huber, beta 1) distance between the distance matrices of student and teacher, each
    normalised by its mean positive distance; RKD-A the smooth-L1 distance between the cosines of all triplet
    angles. Student and teacher dimensions may differ. Hyper-parameters: ``distance_weight`` (25),
    ``angle_weight`` (50). Default loss weight 1. Needs a batch of at least 2 samples.
    """

    name = "rkd"
    default_weight = 1.0

    # The paper, and how the cards and results tables present the method.
    bibtex = """@inproceedings{park2019relational,
  title     = {Relational Knowledge Distillation},
  author    = {Park, Wonpyo and Kim, Dongju and Lu, Yan and Cho, Minsu},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2019}
}"""
    paper_name = "RKD"
    description = "match the distance and angle relations between the embeddings of a batch."
    table_order = 6
    hyperparameter_ranges = {"distance_weight": NON_NEGATIVE, "angle_weight": NON_NEGATIVE}

    def __init__(
        self,
        student_spec: FeatureSpec,
        teacher_spec: FeatureSpec,
        *,
        distance_weight: float = 25.0,
        angle_weight: float = 50.0,
    ) -> None:
        super().__init__(student_spec, teacher_spec)
        self.distance_weight = float(distance_weight)
        self.angle_weight = float(angle_weight)

    def compute(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput, batch: BatchContext
    ) -> dict[str, torch.Tensor]:
        f_s = require_field(student, "pooler_output", "RKD", "student")
        check_relational_batch(f_s.shape[0], "RKD")
        with float32_math(f_s):
            s = f_s.float().flatten(1)
            with torch.no_grad():
                t = require_field(teacher, "pooler_output", "RKD", "teacher").float().flatten(1)
                t_dist, t_angle = normalised_distances(t), triplet_angles(t)
            loss_d = F.smooth_l1_loss(normalised_distances(s), t_dist)
            loss_a = F.smooth_l1_loss(triplet_angles(s), t_angle)
            loss = self.distance_weight * loss_d + self.angle_weight * loss_a
        return {"loss": loss, "distance": loss_d.detach(), "angle": loss_a.detach()}
