"""Ensemble distillation: every loss against several frozen teachers at once.

The ``Distiller`` runs a ``TeacherEnsemble`` in the teacher's place; its forward gives an ``EnsembleOutput``
(each teacher's ``DistillationModelOutput`` plus how the teachers are weighted), and each loss term becomes
the ensemble form of its loss class, built by ``build_ensemble_loss``:

- a loss class may name its own ensemble form in ``ensemble_loss`` (KD: the softened *mean* of the teachers'
  probabilities as one target, ``kd.EnsembleKdLoss``; ICD: one shared student head contrasted against one head
  per teacher, ``icd.EnsembleIcdLoss``);
- every other loss gets ``PerTeacherLoss``: one instance of the loss per teacher (its own heads, regressors and,
  for CRD, its own memory bank per teacher), combined as ``sum_k w_k * loss_k``.

Teacher weights ``w_k`` (they sum to 1) follow ``EnsembleOutput.weighting``:

- ``uniform``: ``w_k = 1 / K``;
- ``confidence``: the rule of CA-MKD (H. Zhang, D. Chen, C. Wang, "Confidence-Aware Multi-Teacher Knowledge
  Distillation", ICASSP 2022, arXiv:2201.00007): with ``CE_k`` teacher ``k``'s cross-entropy on a sample's true
  label, ``w_k = (1 - softmax_k(CE)) / (K - 1)``, so a teacher that is more confident in the right class weighs
  more. CA-MKD weights per sample; losses that mix per-sample targets (KD) use the per-sample weights, losses
  that give one value per teacher and batch use their batch mean (which still sums to 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import float32_math
from .base import (
    BatchContext,
    DistillationLoss,
    FeatureSpec,
    check_hyperparameters,
    get_loss_class,
    split_loss_value,
)

TeacherWeighting = Literal["uniform", "confidence"]
TEACHER_WEIGHTINGS: tuple[str, ...] = get_args(TeacherWeighting)


def check_teacher_weighting(weighting: str) -> str:
    """``weighting`` if it is one of ``TEACHER_WEIGHTINGS``, else a ``ValueError`` naming them."""
    if weighting not in TEACHER_WEIGHTINGS:
        raise ValueError(f"Unknown teacher weighting {weighting!r}: use one of {', '.join(TEACHER_WEIGHTINGS)}.")
    return weighting


def confidence_weights(teacher_logits: Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """CA-MKD's per-sample teacher weights ``(K, B)``: ``(1 - softmax_k(CE_k)) / (K - 1)`` (see the module doc)."""
    if len(teacher_logits) < 2:
        raise ValueError(f"Confidence weighting compares teachers: it needs at least 2, got {len(teacher_logits)}.")
    with float32_math(labels):
        ce = torch.stack([F.cross_entropy(z.detach().float(), labels, reduction="none") for z in teacher_logits])
        return (1.0 - ce.softmax(dim=0)) / (len(teacher_logits) - 1)


@dataclass
class EnsembleOutput:
    """The frozen teachers' outputs for one batch, in the order of ``names``, and how they are weighted."""

    members: list[DistillationModelOutput]
    names: list[str]
    weighting: str = "uniform"
    _cache: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        check_teacher_weighting(self.weighting)
        if len(self.members) != len(self.names):
            raise ValueError(f"{len(self.members)} teacher outputs for {len(self.names)} teacher names.")

    def __len__(self) -> int:
        return len(self.members)

    def sample_weights(self, labels: torch.Tensor | None) -> torch.Tensor:
        """``(K, B)`` weights of each teacher on each sample; each column sums to 1. Computed once per batch."""
        if "sample" not in self._cache:
            logits = [m.logits for m in self.members]
            if self.weighting == "confidence":
                if labels is None:
                    raise ValueError("Confidence weighting of the teachers needs the batch's labels.")
                weights = confidence_weights(logits, labels)
            else:
                weights = torch.full((len(logits), logits[0].shape[0]), 1.0 / len(logits), device=logits[0].device)
            self._cache["sample"] = weights
        return self._cache["sample"]

    def weights(self, labels: torch.Tensor | None) -> torch.Tensor:
        """``(K,)`` weight of each teacher on the batch (the batch mean of ``sample_weights``); sums to 1."""
        return self.sample_weights(labels).mean(dim=1)


class EnsembleLoss(nn.Module):
    """Base of a loss's ensemble form: the ``loss_class``'s hyper-parameters, against ``len(teacher_specs)``
    teachers. The ``Distiller`` calls it as it calls a ``DistillationLoss``, with an ``EnsembleOutput`` as the
    teacher output; ``compute`` returns ``dict(loss, ...)`` whose extra entries are logged under the term's name
    (``<teacher>/weight``, ``<teacher>/loss``...)."""

    loss_class: ClassVar[type[DistillationLoss]]

    def __init__(self, student_spec: FeatureSpec, teacher_specs: Sequence[FeatureSpec], teacher_names: Sequence[str]):
        super().__init__()
        if len(teacher_specs) < 2:
            raise ValueError(f"An ensemble loss needs at least 2 teachers, got {len(teacher_specs)}.")
        if len(teacher_names) != len(teacher_specs):
            raise ValueError(f"{len(teacher_names)} teacher names for {len(teacher_specs)} teachers.")
        self.student_spec = student_spec
        self.teacher_specs = list(teacher_specs)
        self.teacher_names = list(teacher_names)

    @property
    def name(self) -> str:
        return self.loss_class.name

    @property
    def needs_hidden_states(self) -> bool:
        return self.loss_class.needs_hidden_states

    @property
    def needs_index(self) -> bool:
        return self.loss_class.needs_index

    @property
    def init_epochs(self) -> int:
        return self.loss_class.init_epochs

    def forward(
        self,
        student: DistillationModelOutput,
        teacher: EnsembleOutput,
        *,
        labels: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
        epoch: float = 0.0,
    ) -> dict[str, torch.Tensor]:
        if not isinstance(teacher, EnsembleOutput):
            raise TypeError(f"The ensemble form of {self.name!r} needs the teachers' EnsembleOutput, got "
                            f"{type(teacher).__name__}.")
        if len(teacher) != len(self.teacher_specs):
            raise ValueError(f"{self.name!r} was built for {len(self.teacher_specs)} teachers, got {len(teacher)}.")
        return self.compute(student, teacher, BatchContext(labels=labels, index=index, epoch=epoch))

    def compute(self, student: DistillationModelOutput, teachers: EnsembleOutput, batch: BatchContext
                ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def no_weight_decay(self) -> set[str]:
        """Names of this module's parameters that must not get weight decay (see ``DistillationLoss``)."""
        return set()

    def weight_terms(self, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"<teacher>/weight": w_k}`` for the log."""
        return {f"{name}/weight": w.detach() for name, w in zip(self.teacher_names, weights, strict=True)}


class PerTeacherLoss(EnsembleLoss):
    """Any loss over an ensemble: one instance of ``loss_class`` per teacher, ``sum_k w_k * loss_k``.

    Each instance has its own trainable parts (FitNet's regressor, CRD's heads and memory bank...), built for its
    teacher's feature shapes. An initialisation stage (AB, FT, FSP) trains them all, on the mean of their
    initialisation losses.
    """

    def __init__(
        self,
        loss_class: type[DistillationLoss],
        student_spec: FeatureSpec,
        teacher_specs: Sequence[FeatureSpec],
        teacher_names: Sequence[str],
        **kwargs: Any,
    ) -> None:
        self.loss_class = loss_class  # set first: the instance attribute shadows the ClassVar of the base
        super().__init__(student_spec, teacher_specs, teacher_names)
        members = []
        for name, spec in zip(self.teacher_names, teacher_specs, strict=True):
            try:
                members.append(loss_class(student_spec, spec, **kwargs))
            except ValueError as err:  # e.g. FSP with a teacher whose channels differ: say which teacher
                raise ValueError(f"{loss_class.paper_name} against teacher {name!r} of the ensemble: {err}") from None
        self.members = nn.ModuleList(members)

    def compute(self, student: DistillationModelOutput, teachers: EnsembleOutput, batch: BatchContext
                ) -> dict[str, torch.Tensor]:
        weights = teachers.weights(batch.labels)
        total = student.logits.new_zeros((), dtype=torch.float32)
        terms: dict[str, torch.Tensor] = {}
        for name, weight, loss, out in zip(self.teacher_names, weights, self.members, teachers.members, strict=True):
            value, extras = split_loss_value(loss.compute(student, out, batch), name)
            terms.update(extras)
            terms[f"{name}/loss"] = value.detach()
            total = total + weight * value
        return {"loss": total, **terms, **self.weight_terms(weights)}

    def init_loss(self, student: DistillationModelOutput, teacher: EnsembleOutput) -> torch.Tensor:
        values = [loss.init_loss(student, out) for loss, out in zip(self.members, teacher.members, strict=True)]
        return torch.stack(values).mean()

    def init_parameters(self, student: nn.Module) -> Any:
        yield from student.parameters()
        yield from self.members.parameters()

    def no_weight_decay(self) -> set[str]:
        return {f"members.{i}.{p}" for i, loss in enumerate(self.members) for p in loss.no_weight_decay()}


def build_ensemble_loss(
    name: str,
    student_spec: FeatureSpec,
    teacher_specs: Sequence[FeatureSpec],
    teacher_names: Sequence[str],
    **kwargs: Any,
) -> EnsembleLoss:
    """Loss ``name`` against several teachers: its class's ``ensemble_loss`` when it has one, else
    ``PerTeacherLoss``. Hyper-parameters are the single-teacher loss's (unknown ones are refused)."""
    check_hyperparameters(name, kwargs)
    cls = get_loss_class(name)
    if cls.ensemble_loss is not None:
        return cls.ensemble_loss(student_spec, teacher_specs, teacher_names, **kwargs)
    return PerTeacherLoss(cls, student_spec, teacher_specs, teacher_names, **kwargs)
