"""The ``Distiller``: one module holding the student, the frozen teacher and the losses' trainable parts.

Keeping them in one ``nn.Module`` (the pattern of mdistiller's ``Distiller``) is what lets the stock
``transformers.Trainer`` machinery work unchanged: its optimizer sees the student's *and* the losses'
parameters (ICD heads and temperature, FitNet regressors, CRD embeddings), DDP wraps one module, and a
checkpoint's state dict carries the loss modules and CRD's memory bank. Only the student is exported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from .losses import FeatureSpec, build_loss, get_loss_class, probe_feature_spec
from .losses.base import split_loss_value
from .losses.ensemble import EnsembleOutput, build_ensemble_loss, check_teacher_weighting
from .losses.presets import MethodSpec, resolve_method
from .models.modeling_hf_adapter import ensure_distillation_model
from .models.modeling_outputs import DistillationModelOutput

if TYPE_CHECKING:
    from .teacher_cache import TeacherOutputCache

TEACHER_PREFIX = "teacher."


@dataclass
class DistillerOutput(ModelOutput):
    """``loss`` is the weighted total; ``terms`` holds each weighted term (detached) for logging."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    terms: dict[str, torch.Tensor] | None = None


def teacher_name(model: nn.Module, default: str) -> str:
    """A teacher's name for logs and records: its zoo/timm architecture, else ``default``."""
    config = getattr(model, "config", None)
    name = getattr(config, "architecture_name", None) or getattr(config, "model_name", None)
    return str(name) if name else default


class TeacherEnsemble(nn.Module):
    """Several frozen teachers run as one: ``forward`` gives an ``EnsembleOutput`` (ensemble distillation).

    Args:
        teachers: two or more models (zoo, timm or any ``transformers`` classifier; each gets the
            ``DistillationAdapter`` it needs), of any architectures, predicting the same classes.
        names: one per teacher, for the logs (``kd/<name>/weight``) and records; default: the architectures,
            numbered when two are the same.
        weighting: ``"uniform"`` or ``"confidence"`` (CA-MKD; see ``icd_hf.losses.ensemble``).
    """

    def __init__(
        self, teachers: Sequence[nn.Module], names: Sequence[str] | None = None, weighting: str = "uniform"
    ) -> None:
        super().__init__()
        if len(teachers) < 2:
            raise ValueError(f"A teacher ensemble needs at least 2 teachers, got {len(teachers)}: pass one teacher "
                             f"as `teacher` instead.")
        self.weighting = check_teacher_weighting(weighting)
        self.members = nn.ModuleList(ensure_distillation_model(t) for t in teachers)
        if names is None:
            names = [teacher_name(t, f"teacher{k}") for k, t in enumerate(teachers)]
        names = [str(n).replace("/", "_") for n in names]  # a name is one level of the log's `term/name/...`
        if len(names) != len(teachers):
            raise ValueError(f"{len(names)} teacher names for {len(teachers)} teachers.")
        if len(set(names)) != len(names):
            names = [f"{n}_{k}" for k, n in enumerate(names)]
        self.names = names

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool = False) -> EnsembleOutput:
        members = [m(pixel_values=pixel_values, output_hidden_states=output_hidden_states) for m in self.members]
        return EnsembleOutput(members=members, names=list(self.names), weighting=self.weighting)


def _constant_copy(out: DistillationModelOutput) -> DistillationModelOutput:
    return DistillationModelOutput(
        **{k: v.clone() if torch.is_tensor(v) else tuple(t.clone() for t in v) for k, v in out.items()}
    )


class Distiller(nn.Module):
    """Student + frozen teacher + weighted distillation losses: ``CE*w_ce + sum_k w_k * loss_k``.

    Args:
        student: the model being trained: a zoo/timm model (returning ``DistillationModelOutput``) or any
            ``transformers`` image classifier, which is wrapped in a ``DistillationAdapter`` here.
        teacher: the frozen teacher (same kinds), or ``None`` for methods that need none (``"vanilla"``); for
            ensemble distillation a ``TeacherEnsemble`` or a list of two or more teachers (uniformly weighted).
            With an ensemble each loss term is its ensemble form (``icd_hf.losses.ensemble``).
        method: a ``MethodSpec`` or a method string understood by ``resolve_method`` (``"icd+kd"``).
        image_size: side of the dummy input used to measure feature shapes for the losses' modules.
        loss_overrides: passed to ``resolve_method`` when ``method`` is a string.
        num_data: size of the training set, given to losses that index it (CRD's memory bank) unless their
            overrides set ``num_data`` already.

    In eval mode only the student runs and the loss is plain cross-entropy: evaluation measures the student,
    and stateful losses (CRD's memory) must not be updated by evaluation batches.

    With a ``teacher_cache`` (``icd_hf.teacher_cache``, set by ``DistillationTrainer.enable_teacher_cache``) a
    training batch that carries its view key (``view_epoch``, ``view_start``: the fast path's loader) takes the
    teacher's outputs from the cache when it holds them, and adds them to it when it does not.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module | Sequence[nn.Module] | None,
        method: MethodSpec | str,
        *,
        image_size: int = 32,
        loss_overrides: dict | None = None,
        num_data: int | None = None,
    ) -> None:
        super().__init__()
        self.method = resolve_method(method, loss_overrides) if isinstance(method, str) else method
        if self.method.needs_teacher and teacher is None:
            raise ValueError(
                f"Method {self.method.name!r} distils from a teacher but none was given; pass a teacher "
                f"(a zoo name with a checkpoint, a run directory or a Hub id) or use method 'vanilla'."
            )
        if isinstance(teacher, Sequence):
            teacher = teacher[0] if len(teacher) == 1 else TeacherEnsemble(teacher)
        student = ensure_distillation_model(student)
        if teacher is not None and not isinstance(teacher, TeacherEnsemble):
            teacher = ensure_distillation_model(teacher)
        self.student = student
        self.teacher = teacher if self.method.needs_teacher else None
        student_spec = probe_feature_spec(student, image_size)
        teacher_specs: list[FeatureSpec] = []
        if self.teacher is not None:
            self.teacher.requires_grad_(False)
            self.teacher.eval()
            members = self.teacher.members if isinstance(self.teacher, TeacherEnsemble) else [self.teacher]
            teacher_specs = [probe_feature_spec(m, image_size) for m in members]
            for spec in teacher_specs:
                if spec.num_classes != student_spec.num_classes:
                    raise ValueError(
                        f"Teacher predicts {spec.num_classes} classes but the student "
                        f"{student_spec.num_classes}: both must be built for the same dataset (check num_classes)."
                    )
        self.student_spec = student_spec
        self.teacher_specs = teacher_specs
        self.teacher_spec = teacher_specs[0] if len(teacher_specs) == 1 else None
        losses = {}
        for term in self.method.terms:
            kwargs = dict(term.kwargs)
            if get_loss_class(term.name).needs_index and num_data is not None:
                kwargs.setdefault("num_data", num_data)
            if isinstance(self.teacher, TeacherEnsemble):
                losses[term.name] = build_ensemble_loss(
                    term.name, student_spec, teacher_specs, self.teacher.names, **kwargs
                )
            else:
                losses[term.name] = build_loss(term.name, student_spec, self.teacher_spec, **kwargs)
        self.losses = nn.ModuleDict(losses)
        self.loss_weights = {term.name: float(term.weight) for term in self.method.terms}
        self.ce_weight = float(self.method.ce_weight)
        self.needs_hidden_states = any(loss.needs_hidden_states for loss in self.losses.values())
        self.needs_index = any(loss.needs_index for loss in self.losses.values())
        self.teacher_inference_mode = False
        self.teacher_cache: TeacherOutputCache | None = None

    # The teacher is frozen: it stays in eval mode (fixed BN statistics) whatever the Trainer asks.
    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def no_weight_decay(self) -> set[str]:
        """Full parameter names (as in ``named_parameters()``) the losses exclude from weight decay."""
        return {f"losses.{name}.{p}" for name, loss in self.losses.items() for p in loss.no_weight_decay()}

    def teacher_forward(
        self, pixel_values: torch.Tensor, output_hidden_states: bool
    ) -> DistillationModelOutput | EnsembleOutput:
        if not self.teacher_inference_mode:
            with torch.no_grad():
                return self.teacher(pixel_values=pixel_values, output_hidden_states=output_hidden_states)
        with torch.inference_mode():
            out = self.teacher(pixel_values=pixel_values, output_hidden_states=output_hidden_states)
        # Inference tensors cannot be saved for backward, and losses feed teacher features through trainable
        # heads (ICD, CRD, FitNet...): one clone outside inference mode makes them ordinary constants.
        if isinstance(out, EnsembleOutput):
            return EnsembleOutput([_constant_copy(m) for m in out.members], out.names, out.weighting)
        return _constant_copy(out)

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
        epoch: float = 0.0,
        view_epoch: int | None = None,
        view_start: int | None = None,
    ) -> DistillerOutput:
        if not self.training:
            out = self.student(pixel_values=pixel_values)
            loss = F.cross_entropy(out.logits.float(), labels) if labels is not None else None
            return DistillerOutput(loss=loss, logits=out.logits)
        if labels is None:
            raise ValueError("Distillation needs `labels` in every training batch (the CE term).")
        if self.needs_index and index is None:
            raise ValueError(
                f"Losses {[n for n, m in self.losses.items() if m.needs_index]} need the dataset index of each "
                f"sample: the data collator must return an 'index' tensor (icd_hf.data does)."
            )
        student_out = self.student(pixel_values=pixel_values, output_hidden_states=self.needs_hidden_states)
        teacher_out = (
            self._teacher_outputs(pixel_values, index, view_epoch, view_start) if self.teacher is not None else None
        )
        ce = F.cross_entropy(student_out.logits.float(), labels)
        total = self.ce_weight * ce
        terms: dict[str, torch.Tensor] = {"ce": ce.detach()}
        for name, loss_module in self.losses.items():
            value, extras = split_loss_value(
                loss_module(student_out, teacher_out, labels=labels, index=index, epoch=epoch), name
            )
            terms.update(extras)
            total = total + self.loss_weights[name] * value
            terms[name] = value.detach()
        return DistillerOutput(loss=total, logits=student_out.logits, terms=terms)

    def _teacher_outputs(
        self, pixel_values: torch.Tensor, index: torch.Tensor | None, view_epoch: int | None, view_start: int | None
    ) -> DistillationModelOutput | EnsembleOutput:
        cache = self.teacher_cache
        if cache is None or view_epoch is None:
            return self.teacher_forward(pixel_values, self.needs_hidden_states)
        from .teacher_cache import join_teacher_output, split_teacher_output

        if index is None or view_start is None:
            raise ValueError("A cached teacher needs each batch's `index` and `view_start` (DeviceDataLoader gives "
                             "them with on_epoch_start set).")
        values = cache.lookup(view_epoch, view_start, index)
        if values is not None:
            return join_teacher_output(values, self.teacher)
        out = self.teacher_forward(pixel_values, False)
        cache.store(view_epoch, view_start, index, split_teacher_output(out))
        return out

    def distillation_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything a checkpoint needs to resume: student + loss modules/buffers, not the frozen teacher."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(TEACHER_PREFIX)}
