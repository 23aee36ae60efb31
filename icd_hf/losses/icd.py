"""Invariant Consistency Distillation (Giakoumoglou & Stathaki, 2024), which the later versions of the paper
(arXiv:2407.11802 v3, v5) present as DCD, Discriminative and Consistent Representation Distillation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import LinearEmbed, float32_math, require_field
from .base import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, BatchContext, DistillationLoss, FeatureSpec, register_loss
from .ensemble import EnsembleLoss, EnsembleOutput


def icd_terms(
    logits: torch.Tensor, invariance_weight: float, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, contrastive, invariance)`` of ICD from the ``B x B`` logits ``L`` (see ``IcdLoss``)."""
    with float32_math(logits):
        targets = torch.arange(logits.shape[0], device=logits.device)
        log_p = F.log_softmax(logits, dim=1)  # student i over teachers
        log_q = F.log_softmax(logits, dim=0).T  # teacher i over students
        contrastive = F.nll_loss(log_p, targets)
        if symmetric:
            contrastive = 0.5 * (contrastive + F.nll_loss(log_q, targets))
        invariance = F.kl_div(log_p, log_q, reduction="batchmean", log_target=True)
        return contrastive + invariance_weight * invariance, contrastive, invariance


def _pooled_pair(student: DistillationModelOutput, teacher: DistillationModelOutput
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    f_s = require_field(student, "pooler_output", "icd", "student")
    f_t = require_field(teacher, "pooler_output", "icd", "teacher")
    batch_size = f_s.shape[0]
    if batch_size < 2:
        raise ValueError(
            f"ICD contrasts each sample with the rest of its batch, so it needs a batch of at least 2 "
            f"samples, got {batch_size}. Increase the per-device batch size (or set dataloader_drop_last)."
        )
    if f_t.shape[0] != batch_size:
        raise ValueError(f"Student and teacher batch sizes differ: {batch_size} vs {f_t.shape[0]}.")
    return f_s, f_t


class EnsembleIcdLoss(EnsembleLoss):
    """ICD from an ensemble: one student head into the shared ``feat_dim`` space and one head per teacher, each
    teacher with its own temperature ``t_k`` and bias ``b_k``. The student's embedding is contrasted with each
    teacher's batch (in-batch negatives), the invariance term applies per teacher, and the per-teacher ICD
    losses are combined as ``sum_k w_k * ICD_k`` (``EnsembleOutput.weights``). With uniform weights this is the
    mean of single-teacher ICD losses that share the student head. Logged per teacher:
    ``<teacher>/loss``, ``/contrastive``, ``/invariance``, ``/logit_scale``, ``/weight``."""

    def __init__(
        self,
        student_spec: FeatureSpec,
        teacher_specs: Sequence[FeatureSpec],
        teacher_names: Sequence[str],
        feat_dim: int = 128,
        invariance_weight: float = 0.5,
        init_logit_scale: float = 1.0,
        max_logit_scale: float = 10.0,
        init_logit_bias: float = 0.0,
        symmetric: bool = False,
    ) -> None:
        super().__init__(student_spec, teacher_specs, teacher_names)
        _check_scale(max_logit_scale)
        k = len(teacher_specs)
        self.feat_dim = int(feat_dim)
        self.invariance_weight = float(invariance_weight)
        self.max_logit_scale = float(max_logit_scale)
        self.symmetric = bool(symmetric)
        self.embed_student = LinearEmbed(student_spec.pooled_dim, self.feat_dim)
        self.embed_teachers = nn.ModuleList(LinearEmbed(spec.pooled_dim, self.feat_dim) for spec in teacher_specs)
        self.logit_scale = nn.Parameter(torch.full((k,), float(init_logit_scale)))
        self.logit_bias = nn.Parameter(torch.full((k,), float(init_logit_bias)))

    @property
    def loss_class(self) -> type[DistillationLoss]:
        return IcdLoss

    def no_weight_decay(self) -> set[str]:
        return {"logit_scale", "logit_bias"}

    def scale(self) -> torch.Tensor:
        """``(K,)`` clamped scales ``min(exp(t_k), max_logit_scale)``."""
        return self.logit_scale.float().exp().clamp(max=self.max_logit_scale)

    def compute(self, student: DistillationModelOutput, teachers: EnsembleOutput, batch: BatchContext
                ) -> dict[str, torch.Tensor]:
        weights = teachers.weights(batch.labels)
        scales = self.scale()
        teacher_features = [_pooled_pair(student, out)[1] for out in teachers.members]
        f_s = student.pooler_output
        with float32_math(f_s):
            z_s = self.embed_student(f_s.float()).float()
        total = student.logits.new_zeros((), dtype=torch.float32)
        terms: dict[str, torch.Tensor] = {}
        for k, (name, f_t) in enumerate(zip(self.teacher_names, teacher_features, strict=True)):
            with float32_math(f_s):
                z_t = self.embed_teachers[k](f_t.detach().float()).float()
                logits = scales[k] * (z_s @ z_t.T) + self.logit_bias[k].float()
            loss, contrastive, invariance = icd_terms(logits, self.invariance_weight, self.symmetric)
            total = total + weights[k] * loss
            terms.update({f"{name}/loss": loss.detach(), f"{name}/contrastive": contrastive.detach(),
                          f"{name}/invariance": invariance.detach(), f"{name}/logit_scale": scales[k].detach()})
        return {"loss": total, **terms, **self.weight_terms(weights)}


def _check_scale(max_logit_scale: float) -> None:
    if max_logit_scale <= 0:
        raise ValueError(f"max_logit_scale must be > 0, got {max_logit_scale}.")


@register_loss
class IcdLoss(DistillationLoss):
    r"""ICD: in-batch contrastive alignment of student and teacher embeddings plus an invariance penalty.

    Paper: N. Giakoumoglou, T. Stathaki, "Invariant Consistency for Knowledge Distillation",
    arXiv:2407.11802 (2024); its later versions (v3, v5) present the same method as DCD, "Discriminative and
    Consistent Representation Distillation". This follows the authors' implementation of the loss (eq. 5 of the
    paper).

    Student and teacher penultimate features (``pooler_output``) go through one linear head each (to
    ``feat_dim``) and are L2-normalised to ``z_s``, ``z_t``. With ``s = min(exp(t), max_logit_scale)`` the
    ``B x B`` logits are ``L = s * z_s @ z_t.T + b``: row ``i`` scores student ``i`` against every teacher
    sample of the batch (in-batch negatives, no memory bank). With ``P = softmax(L, dim=1)`` (each student
    over the teachers) and ``Q = softmax(L, dim=0).T`` (row ``i``: teacher ``i`` over the students):

    .. code-block:: text

        contrastive = -(1/B) * sum_i log P[i, i]                       (cross-entropy against the diagonal)
        invariance  =  (1/B) * sum_i sum_j Q[i, j] * (log Q[i, j] - log P[i, j])     (= KL(Q || P), batch mean)
        loss        =  contrastive + invariance_weight * invariance

    The invariance term is zero exactly when both views give the same distributions, e.g. for any
    symmetric ``L``. With ``symmetric=True`` the contrastive term averages the row direction above with the
    column direction (each teacher over the students), as in CLIP.

    Hyper-parameters:
        feat_dim: embedding size of both heads (default 128).
        invariance_weight: ``lambda`` in front of the invariance KL (default 0.5).
        init_logit_scale: initial log-temperature ``t`` (default 1.0, i.e. scale ``e``).
        max_logit_scale: upper clamp of the scale ``exp(t)`` (default 10.0); while clamped ``t`` gets no
            gradient, as in the reference.
        init_logit_bias: initial bias ``b`` (default 0.0).
        symmetric: also average the column-direction cross-entropy into the contrastive term (default False).

    ``forward`` returns ``dict(loss, contrastive, invariance, logit_scale)`` (extras detached).

    Weight decay: ``no_weight_decay()`` names ``logit_scale`` (``t``) and ``logit_bias`` (``b``): decaying a
    log-temperature towards 0 would pull the scale towards 1 whatever the data says (CLIP and SigLIP also
    exclude them); the heads are ordinary weights and are decayed. Note that every term is a softmax of ``L``
    and softmax is invariant to adding a constant, so ``b`` has no effect on the loss and its gradient is zero
    up to rounding; it is kept so checkpoints and hyper-parameters match the authors' implementation.
    """

    name = "icd"
    default_weight = 1.0

    # The paper, and how the cards and results tables present the method.
    bibtex = """@article{giakoumoglou2024invariant,
  title   = {Invariant Consistency for Knowledge Distillation},
  author  = {Giakoumoglou, Nikolaos and Stathaki, Tania},
  journal = {arXiv preprint arXiv:2407.11802},
  year    = {2024},
  note    = {Later versions: Discriminative and Consistent Representation Distillation (DCD)}
}"""
    paper_name = "ICD"
    full_name = ("Invariant Consistency Distillation; the paper's later versions call it DCD, Discriminative and "
                 "Consistent Representation Distillation, arXiv:2407.11802")
    description = (
        "a contrastive objective between the student's and the teacher's embeddings of the same image (both projected "
        "to 128-d and L2-normalised, with a learnable temperature and bias instead of CRD's memory bank) plus an "
        "invariance penalty that keeps the student's representation consistent with the teacher's."
    )
    table_order = 14
    hyperparameter_ranges = {"feat_dim": AT_LEAST_ONE, "invariance_weight": NON_NEGATIVE,
                             "max_logit_scale": POSITIVE}
    ensemble_loss = EnsembleIcdLoss

    def __init__(
        self,
        student_spec: FeatureSpec,
        teacher_spec: FeatureSpec,
        feat_dim: int = 128,
        invariance_weight: float = 0.5,
        init_logit_scale: float = 1.0,
        max_logit_scale: float = 10.0,
        init_logit_bias: float = 0.0,
        symmetric: bool = False,
    ) -> None:
        super().__init__(student_spec, teacher_spec)
        _check_scale(max_logit_scale)
        self.feat_dim = int(feat_dim)
        self.invariance_weight = float(invariance_weight)
        self.max_logit_scale = float(max_logit_scale)
        self.symmetric = bool(symmetric)
        self.embed_student = LinearEmbed(student_spec.pooled_dim, self.feat_dim)
        self.embed_teacher = LinearEmbed(teacher_spec.pooled_dim, self.feat_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.logit_bias = nn.Parameter(torch.tensor(float(init_logit_bias)))

    def extra_repr(self) -> str:
        return (
            f"feat_dim={self.feat_dim}, invariance_weight={self.invariance_weight}, "
            f"max_logit_scale={self.max_logit_scale}, symmetric={self.symmetric}"
        )

    def no_weight_decay(self) -> set[str]:
        return {"logit_scale", "logit_bias"}

    def scale(self) -> torch.Tensor:
        """The current (clamped) scale ``min(exp(t), max_logit_scale)``."""
        return self.logit_scale.float().exp().clamp(max=self.max_logit_scale)

    def logits(self, student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
        """The ``B x B`` float32 logits ``L`` of student (rows) against teacher (columns) features."""
        with float32_math(student_features):
            z_s = self.embed_student(student_features.float())
            z_t = self.embed_teacher(teacher_features.detach().float())
            return self.scale() * (z_s.float() @ z_t.float().T) + self.logit_bias.float()

    def compute(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput, batch: BatchContext
    ) -> dict[str, torch.Tensor]:
        f_s, f_t = _pooled_pair(student, teacher)
        logits = self.logits(f_s, f_t)
        loss, contrastive, invariance = icd_terms(logits, self.invariance_weight, self.symmetric)
        return {
            "loss": loss,
            "contrastive": contrastive.detach(),
            "invariance": invariance.detach(),
            "logit_scale": self.scale().detach(),
        }
