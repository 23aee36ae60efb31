"""Knowledge distillation with soft targets (Hinton et al., 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import float32_math, require_field
from .base import BatchContext, DistillationLoss, FeatureSpec, register_loss


@register_loss
class KdLoss(DistillationLoss):
    """KD: ``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``, averaged over the batch.

    Paper: G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge in a Neural Network", NIPS 2014
    Deep Learning Workshop, arXiv:1503.02531. The ``T^2`` factor keeps the gradient scale independent of the
    temperature; the reduction is a sum over classes and a mean over samples (RepDistiller's ``DistillKL``).

    Hyper-parameters:
        temperature: softening temperature ``T`` (default 4, the CRD benchmark value).

    ``default_weight`` 0.9 is the CRD-benchmark recipe for KD alone (cross-entropy 0.1, KD 0.9); combined with
    another method (``"crd+kd"``) the presets use weight 1.
    """

    name = "kd"
    default_weight = 0.9

    # The paper, and how the cards and results tables present the method.
    bibtex = """@article{hinton2015distilling,
  title   = {Distilling the Knowledge in a Neural Network},
  author  = {Hinton, Geoffrey and Vinyals, Oriol and Dean, Jeff},
  journal = {arXiv preprint arXiv:1503.02531},
  year    = {2015}
}"""
    paper_name = "KD"
    description = "KL divergence between the temperature-softened class probabilities of teacher and student."
    table_order = 0

    def __init__(self, student_spec: FeatureSpec, teacher_spec: FeatureSpec, temperature: float = 4.0) -> None:
        super().__init__(student_spec, teacher_spec)
        if temperature <= 0:
            raise ValueError(f"KD temperature must be > 0, got {temperature}.")
        if teacher_spec.num_classes != student_spec.num_classes:
            raise ValueError(
                f"KD compares logits: the student predicts {student_spec.num_classes} classes and the teacher "
                f"{teacher_spec.num_classes}; build both for the same label set."
            )
        self.temperature = float(temperature)

    def compute(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput, batch: BatchContext
    ) -> torch.Tensor:
        z_s = require_field(student, "logits", self.name, "student")
        z_t = require_field(teacher, "logits", self.name, "teacher").detach()
        t = self.temperature
        with float32_math(z_s):
            log_p_s = F.log_softmax(z_s.float() / t, dim=1)
            log_p_t = F.log_softmax(z_t.float() / t, dim=1)
            return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)
