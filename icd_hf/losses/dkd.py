"""Decoupled Knowledge Distillation (Zhao et al., CVPR 2022)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import float32_math, require_field, require_labels
from .base import NON_NEGATIVE, POSITIVE, BatchContext, DistillationLoss, FeatureSpec, register_loss

# mdistiller pushes the target logit down by this much so the softmax gives it exactly zero mass (in float32)
# and the remaining classes are renormalised among themselves.
_MASK_OFFSET = 1000.0


@register_loss
class DkdLoss(DistillationLoss):
    """DKD: KD split into a target-class term (TCKD) and a non-target-class term (NCKD), weighted separately.

    Paper: B. Zhao, Q. Cui, R. Song, Y. Qiu, J. Liang, "Decoupled Knowledge Distillation", CVPR 2022,
    arXiv:2203.08679. Math of the reference implementation, megvii-research/mdistiller
    ``mdistiller/distillers/DKD.py``; with ``p = softmax(z / T)`` and ground truth ``y``:

    .. code-block:: text

        b = [p_y, 1 - p_y]                                       (binary target / non-target probabilities)
        TCKD = T^2 * mean_batch KL(b_teacher || b_student)
        NCKD = T^2 * mean_batch KL(p~_teacher || p~_student)     p~ = softmax(z / T - 1000 * onehot(y))
                                                                 (the non-target classes, renormalised)
        loss = min(epoch / warmup_epochs, 1) * (alpha * TCKD + beta * NCKD)

    The binary log-probabilities are computed with ``logsumexp`` over the target/non-target log-softmax
    instead of mdistiller's ``log(sum(softmax))``: the same value, without ``log(0)`` once a prediction
    saturates. Everything is computed in float32 (the 1000 offset needs it).

    ``epoch`` is the Trainer's fractional epoch starting at 0, so the warm-up ramps smoothly from 0;
    mdistiller passes the 1-based integer epoch (factor 1/20 during the first epoch).

    Hyper-parameters:
        alpha: TCKD weight (default 1.0).
        beta: NCKD weight (default 8.0, mdistiller's CIFAR-100 default; its configs use other values for
            some pairs).
        temperature: ``T`` (default 4.0).
        warmup_epochs: length of the linear warm-up of the whole loss (default 20; 0 disables it).
    """

    name = "dkd"
    default_weight = 1.0

    # The paper, and how the cards and results tables present the method.
    bibtex = """@inproceedings{zhao2022decoupled,
  title     = {Decoupled Knowledge Distillation},
  author    = {Zhao, Borui and Cui, Quan and Song, Renjie and Qiu, Yiyu and Liang, Jiajun},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2022}
}"""
    paper_name = "DKD"
    description = "KD decoupled into target-class and non-target-class terms with separate weights."
    table_order = 13
    hyperparameter_ranges = {"alpha": NON_NEGATIVE, "beta": NON_NEGATIVE, "temperature": POSITIVE,
                             "warmup_epochs": NON_NEGATIVE}

    def __init__(
        self,
        student_spec: FeatureSpec,
        teacher_spec: FeatureSpec,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 4.0,
        warmup_epochs: float = 20.0,
    ) -> None:
        super().__init__(student_spec, teacher_spec)
        if temperature <= 0:
            raise ValueError(f"DKD temperature must be > 0, got {temperature}.")
        if warmup_epochs < 0:
            raise ValueError(f"DKD warmup_epochs must be >= 0, got {warmup_epochs}.")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.temperature = float(temperature)
        self.warmup_epochs = float(warmup_epochs)

    def warmup_factor(self, epoch: float) -> float:
        """``min(epoch / warmup_epochs, 1)`` (1 when there is no warm-up)."""
        if self.warmup_epochs == 0:
            return 1.0
        return min(max(float(epoch), 0.0) / self.warmup_epochs, 1.0)

    def compute(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput, batch: BatchContext
    ) -> dict[str, torch.Tensor]:
        z_s = require_field(student, "logits", self.name, "student")
        z_t = require_field(teacher, "logits", self.name, "teacher").detach()
        labels = require_labels(batch.labels, self.name)
        t = self.temperature
        with float32_math(z_s):
            z_s, z_t = z_s.float() / t, z_t.float() / t
            gt_mask = F.one_hot(labels.long(), z_s.shape[1]).bool()
            tckd = self._kl(self._binary_log_probs(z_t, gt_mask), self._binary_log_probs(z_s, gt_mask))
            offset = _MASK_OFFSET * gt_mask.float()
            nckd = self._kl(F.log_softmax(z_t - offset, dim=1), F.log_softmax(z_s - offset, dim=1))
            tckd, nckd = tckd * (t * t), nckd * (t * t)
            factor = self.warmup_factor(batch.epoch)
            loss = factor * (self.alpha * tckd + self.beta * nckd)
        return {"loss": loss, "tckd": tckd.detach(), "nckd": nckd.detach()}

    @staticmethod
    def _binary_log_probs(scaled_logits: torch.Tensor, gt_mask: torch.Tensor) -> torch.Tensor:
        """``log [p_y, 1 - p_y]`` per sample, shape ``(B, 2)``."""
        log_p = F.log_softmax(scaled_logits, dim=1)
        log_target = log_p.masked_fill(~gt_mask, float("-inf")).logsumexp(dim=1)
        log_other = log_p.masked_fill(gt_mask, float("-inf")).logsumexp(dim=1)
        return torch.stack([log_target, log_other], dim=1)

    @staticmethod
    def _kl(log_target: torch.Tensor, log_input: torch.Tensor) -> torch.Tensor:
        """``mean_batch sum_c exp(log_target) * (log_target - log_input)``; zero-mass classes contribute 0."""
        return F.kl_div(log_input, log_target.exp(), reduction="sum") / log_target.shape[0]
