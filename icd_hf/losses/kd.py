"""Knowledge distillation with soft targets (Hinton et al., 2015)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import float32_math, require_field
from .base import POSITIVE, BatchContext, DistillationLoss, FeatureSpec, register_loss
from .ensemble import EnsembleLoss, EnsembleOutput


def _check_temperature(temperature: float) -> float:
    if temperature <= 0:
        raise ValueError(f"KD temperature must be > 0, got {temperature}.")
    return float(temperature)


def _check_classes(student_spec: FeatureSpec, teacher_spec: FeatureSpec) -> None:
    if teacher_spec.num_classes != student_spec.num_classes:
        raise ValueError(
            f"KD compares logits: the student predicts {student_spec.num_classes} classes and the teacher "
            f"{teacher_spec.num_classes}; build both for the same label set."
        )


def softened_kl(z_s: torch.Tensor, log_p_t: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(p_t || softmax(z_s / T))``, batch mean, from the target's log-probabilities ``log_p_t``."""
    with float32_math(z_s):
        log_p_s = F.log_softmax(z_s.float() / temperature, dim=1)
        return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (temperature * temperature)


class EnsembleKdLoss(EnsembleLoss):
    """KD from an ensemble: the student matches the teachers' weighted mean of softened probabilities,
    ``p = sum_k w_k softmax(z_k / T)`` (with uniform weights the standard ensemble target of Hinton et al.,
    2015), as ``T^2 * KL(p || softmax(z_s / T))``. Confidence weights (``EnsembleOutput``) mix per sample. Each
    teacher's own KL to the student is logged as ``<teacher>/kl`` (not part of the loss)."""

    def __init__(
        self,
        student_spec: FeatureSpec,
        teacher_specs: Sequence[FeatureSpec],
        teacher_names: Sequence[str],
        temperature: float = 4.0,
    ) -> None:
        super().__init__(student_spec, teacher_specs, teacher_names)
        for spec in teacher_specs:
            _check_classes(student_spec, spec)
        self.temperature = _check_temperature(temperature)

    @property
    def loss_class(self) -> type[DistillationLoss]:
        return KdLoss

    def compute(self, student: DistillationModelOutput, teachers: EnsembleOutput, batch: BatchContext
                ) -> dict[str, torch.Tensor]:
        z_s = require_field(student, "logits", self.name, "student")
        t = self.temperature
        with float32_math(z_s):
            log_p = torch.stack([
                F.log_softmax(require_field(m, "logits", self.name, "teacher").detach().float() / t, dim=1)
                for m in teachers.members
            ])  # (K, B, C)
            sample_weights = teachers.sample_weights(batch.labels).float()  # (K, B)
            # log sum_k w_k p_k, stable in log space (a zero weight is a -inf term).
            log_target = torch.logsumexp(log_p + sample_weights.log()[..., None], dim=0)
            loss = softened_kl(z_s, log_target, t)
            kls = {f"{name}/kl": softened_kl(z_s, lp, t).detach() for name, lp in zip(self.teacher_names, log_p,
                                                                                        strict=True)}
        return {"loss": loss, **kls, **self.weight_terms(teachers.weights(batch.labels))}


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
    hyperparameter_ranges = {"temperature": POSITIVE}
    ensemble_loss = EnsembleKdLoss

    def __init__(self, student_spec: FeatureSpec, teacher_spec: FeatureSpec, temperature: float = 4.0) -> None:
        super().__init__(student_spec, teacher_spec)
        _check_classes(student_spec, teacher_spec)
        self.temperature = _check_temperature(temperature)

    def compute(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput, batch: BatchContext
    ) -> torch.Tensor:
        z_s = require_field(student, "logits", self.name, "student")
        z_t = require_field(teacher, "logits", self.name, "teacher").detach()
        with float32_math(z_s):
            return softened_kl(z_s, F.log_softmax(z_t.float() / self.temperature, dim=1), self.temperature)
