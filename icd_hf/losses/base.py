"""Shared base class, feature description and registry for every distillation loss."""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import torch
from torch import nn

from ..models.modeling_outputs import DistillationModelOutput


@dataclass(frozen=True)
class FeatureSpec:
    """Shapes of what a model emits, measured once with a dummy forward (see ``probe_feature_spec``).

    ``hidden_shapes`` are ``(C, H, W)`` of ``DistillationModelOutput.hidden_states`` (stem, then stages).
    ``spatial_maps`` is ``False`` for models whose hidden states are not spatial maps (ViT-like transformers,
    whose per-layer tokens come pooled as ``(D, 1, 1)``; see ``icd_hf.models.modeling_hf_adapter``).
    """

    num_classes: int
    pooled_dim: int
    hidden_shapes: tuple[tuple[int, int, int], ...]
    spatial_maps: bool = True


@torch.no_grad()
def probe_feature_spec(model: nn.Module, image_size: int = 32, in_chans: int = 3) -> FeatureSpec:
    """Run one dummy batch through ``model`` (in eval mode, restored afterwards) to read its shapes."""
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    x = torch.zeros(2, in_chans, image_size, image_size, device=param.device, dtype=param.dtype)
    out = model(pixel_values=x, output_hidden_states=True)
    model.train(was_training)
    return FeatureSpec(
        num_classes=out.logits.shape[-1],
        pooled_dim=out.pooler_output.shape[-1],
        hidden_shapes=tuple(tuple(h.shape[1:]) for h in out.hidden_states),
        # Set by the model adapter once it has seen the hidden states; models of the zoo always give maps.
        spatial_maps=getattr(model, "hidden_states_are_maps", None) is not False,
    )


@dataclass(frozen=True)
class BatchContext:
    """What a loss may read from the batch besides the two model outputs.

    ``labels`` are the ground truth (DKD), ``index`` the dataset row of every sample (CRD's memory bank, only for
    ``needs_index`` losses), ``epoch`` the Trainer's fractional epoch (warm-ups, e.g. DKD's).
    """

    labels: torch.Tensor | None = None
    index: torch.Tensor | None = None
    epoch: float = 0.0


LossValue = torch.Tensor | dict[str, torch.Tensor]


@dataclass(frozen=True)
class Range:
    """The values a numeric hyper-parameter may take: ``low``/``high`` bounds (``None``: unbounded), each
    included unless ``*_open``. Every value must also be finite. ``Range(0, low_open=True)`` is "> 0"."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self) -> str:
        """``> 0``, ``>= 1``, ``in [0, 1)``; ``finite`` when unbounded."""
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "finite"


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)


def split_loss_value(value: LossValue, prefix: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A loss's value and its extra entries to log, detached and named ``<prefix>/<key>``."""
    if not isinstance(value, dict):
        return value, {}
    return value["loss"], {f"{prefix}/{k}": v.detach() for k, v in value.items() if k != "loss"}


class DistillationLoss(nn.Module):
    """Base class of every distillation objective, and the one place a method is described.

    A loss is an ``nn.Module`` so that its own trainable parts (projection heads, regressors, learnable
    temperatures) and state (memory banks) are sub-modules/buffers: the ``Distiller`` holds it next to the
    student, so the Trainer's optimizer, DDP and checkpoints cover it with no special code.

    A subclass is one file under ``icd_hf/losses/``: it sets the class attributes below, takes its
    hyper-parameters as explicit keyword arguments of ``__init__`` (they are validated against that signature,
    from a config's ``loss_overrides`` as much as from code), and implements ``compute``. Training, the method
    strings (``presets``), the model cards and the results tables all read it from the registry.

    Class attributes, what the trainer feeds the loss:
        name: registry key and method-string component (``"icd"``, ``"kd"``...).
        needs_hidden_states: the models must run with ``output_hidden_states=True``.
        needs_index: ``compute`` reads ``batch.index``, the dataset indices of the batch (CRD's memory bank).
        needs_spatial_maps: the loss compares spatial feature maps (AT, NST, FSP); a model without them (a ViT)
            is refused when the loss is built, rather than giving a meaningless loss on ``(D, 1, 1)`` tokens.
        init_epochs: length of an initialisation stage run before distillation (AB, FT, FSP); ``0`` if none.

    Class attributes, how the method is presented:
        default_weight: the loss weight of the published CIFAR-100 recipe (the CRD benchmark's ``-b``).
        paper_name: the method's spelling in the papers' tables (``"FitNet"``), also its label in ours.
        full_name: the method spelled out where a card should expand its acronym (ICD), else empty.
        description: one sentence for the model card: what the student is trained to match.
        bibtex: the BibTeX entry of the paper that introduced the method.
        table_order: position of the method's row in the results tables (the CRD benchmark's order, then the
            later methods); ``X+KD`` follows ``X``.

    Class attribute, what values the hyper-parameters take:
        hyperparameter_ranges: ``{hyper-parameter: Range}`` (``POSITIVE``, ``NON_NEGATIVE``, ``AT_LEAST_ONE`` or
            any ``Range``); checked with the names (``check_hyperparameters``) from code and from a config's
            ``loss_overrides``, before any model loads. Every numeric hyper-parameter must be finite, whether it
            has a range or not, and of the type its ``__init__`` annotation declares.

    Class attribute, several teachers (ensemble distillation, ``losses/ensemble.py``):
        ensemble_loss: the loss's own form against an ensemble (an ``EnsembleLoss`` subclass taking the same
            hyper-parameters), e.g. KD's mean-of-probabilities target; ``None``: one instance per teacher,
            weighted (``PerTeacherLoss``).

    Every loss distils from a teacher: building one without the teacher's ``FeatureSpec`` is an error here.
    """

    name: ClassVar[str] = ""
    needs_hidden_states: ClassVar[bool] = False
    needs_index: ClassVar[bool] = False
    needs_spatial_maps: ClassVar[bool] = False
    init_epochs: ClassVar[int] = 0
    default_weight: ClassVar[float] = 1.0
    paper_name: ClassVar[str] = ""
    full_name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    bibtex: ClassVar[str] = ""
    table_order: ClassVar[int] = 1000
    hyperparameter_ranges: ClassVar[Mapping[str, Range]] = {}
    ensemble_loss: ClassVar[type[nn.Module] | None] = None

    def __init__(self, student_spec: FeatureSpec, teacher_spec: FeatureSpec) -> None:
        super().__init__()
        if teacher_spec is None:
            raise ValueError(
                f"{self.paper_name} distils from a teacher, so it needs the teacher's FeatureSpec; got None."
            )
        if self.needs_spatial_maps:
            for role, spec in (("student", student_spec), ("teacher", teacher_spec)):
                if not spec.spatial_maps:
                    raise ValueError(
                        f"Loss {self.name!r} compares spatial feature maps, but the {role} has none: its hidden "
                        f"states are token sequences (a ViT-like transformer), which icd-hf passes on as one "
                        f"pooled token per layer. Use a loss that needs no spatial maps "
                        f"({', '.join(losses_without_spatial_maps())}), or a convolutional or hierarchical (Swin) "
                        f"{role}."
                    )
        self.student_spec = student_spec
        self.teacher_spec = teacher_spec

    def forward(  # type: ignore[override]
        self,
        student: DistillationModelOutput,
        teacher: DistillationModelOutput,
        *,
        labels: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
        epoch: float = 0.0,
    ) -> LossValue:
        """Return the (unweighted) loss, or a dict with key ``"loss"`` plus detached terms to log.

        ``labels``, ``index`` and ``epoch`` reach ``compute`` as one ``BatchContext``.
        """
        if teacher is None:
            raise ValueError(f"Loss {self.name!r} needs teacher outputs but got None: pass a teacher to the Distiller.")
        return self.compute(student, teacher, BatchContext(labels=labels, index=index, epoch=epoch))

    def compute(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput, batch: BatchContext
    ) -> LossValue:
        """The loss of one batch (see ``forward``); what every subclass implements."""
        raise NotImplementedError

    # ---- optional initialisation stage (AB, FT, FSP) ----
    def init_loss(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput
    ) -> torch.Tensor:
        """Loss minimised during the ``init_epochs`` stage."""
        raise NotImplementedError(f"{type(self).__name__} declares no initialisation stage")

    def init_parameters(self, student: nn.Module) -> Iterator[nn.Parameter]:
        """Parameters trained in the initialisation stage (default: the student's and this loss's)."""
        yield from student.parameters()
        yield from self.parameters()

    def no_weight_decay(self) -> set[str]:
        """Names of this module's parameters that must not get weight decay (temperatures, biases)."""
        return set()


_LOSSES: dict[str, type[DistillationLoss]] = {}
_SPEC_ARGUMENTS = ("self", "student_spec", "teacher_spec")


def register_loss(cls: type[DistillationLoss]) -> type[DistillationLoss]:
    """Class decorator: add a ``DistillationLoss`` subclass to the registry under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} must set a non-empty `name` to be registered")
    if not (cls.paper_name and cls.description and cls.bibtex):
        raise ValueError(f"{cls.__name__} must set `paper_name`, `description` and `bibtex`: cards and tables use them")
    if cls.name in _LOSSES and _LOSSES[cls.name] is not cls:
        raise ValueError(f"a loss named {cls.name!r} is already registered ({_LOSSES[cls.name].__name__})")
    accepted = hyperparameters(cls)  # a loss with **kwargs or positional-only extras is refused here, at import
    stray = sorted(set(cls.hyperparameter_ranges) - set(accepted))
    if stray:
        raise ValueError(f"{cls.__name__}.hyperparameter_ranges names {stray}, which its __init__ does not take")
    for key, default in accepted.items():  # a default outside its own range is a bug of the loss file
        if _is_number(default) and default not in cls.hyperparameter_ranges.get(key, Range()):
            raise ValueError(f"{cls.__name__}: the default {key}={default} is outside its range")
    _LOSSES[cls.name] = cls
    return cls


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def hyperparameters(cls: type[DistillationLoss]) -> dict[str, Any]:
    """The keyword hyper-parameters of a loss class and their defaults (``inspect.Parameter.empty`` if required)."""
    params = inspect.signature(cls.__init__).parameters
    extra = [p.name for p in params.values() if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    if extra:
        raise TypeError(f"{cls.__name__}.__init__ takes *{extra[0]}: name every hyper-parameter so it is validated.")
    return {name: p.default for name, p in params.items() if name not in _SPEC_ARGUMENTS}


def hyperparameter_types(cls: type[DistillationLoss]) -> dict[str, Any]:
    """The declared type of each hyper-parameter of a loss class (its ``__init__`` annotation; ``Any`` if none)."""
    hints = typing.get_type_hints(cls.__init__)
    return {name: hints.get(name, Any) for name in hyperparameters(cls)}


def _type_fits(value: Any, hint: Any) -> bool:
    members = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is Union \
        else (hint,)
    for member in members:
        if member is Any or (member is type(None) and value is None):
            return True
        if member is float and _is_number(value):
            return True
        if member is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if member is bool and isinstance(value, bool):
            return True
        if member not in (float, int, bool, type(None)) and isinstance(member, type) and isinstance(value, member):
            return True
    return False


def check_hyperparameters(name: str, kwargs: Mapping[str, Any], also: tuple[str, ...] = ()) -> None:
    """Refuse what loss ``name`` would fail on, before it is built: keys it does not take (``also``: extra keys
    allowed, e.g. ``weight``), values of another type than its ``__init__`` declares, non-finite numbers, and
    numbers outside its ``hyperparameter_ranges``.

    Raises:
        TypeError: an unknown key, or a value of the wrong type.
        ValueError: a non-finite or out-of-range value.
    """
    cls = get_loss_class(name)
    defaults = hyperparameters(cls)
    accepted = set(defaults) | set(also)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise TypeError(
            f"Loss {name!r} got unknown hyper-parameters {unknown}. Accepted: {', '.join(sorted(accepted)) or 'none'}."
        )
    hints = hyperparameter_types(cls)
    for key, value in kwargs.items():
        if key not in hints:
            continue
        example = f"e.g. loss_overrides: {{{name}: {{{key}: {defaults[key]}}}}}, its default"
        if not _type_fits(value, hints[key]):
            hint = " or ".join(getattr(m, "__name__", str(m)) for m in typing.get_args(hints[key]) or (hints[key],))
            raise TypeError(f"{name} hyper-parameter {key} takes {hint}, got {value!r} ({example}).")
        allowed = cls.hyperparameter_ranges.get(key, Range())
        if _is_number(value) and value not in allowed:
            raise ValueError(
                f"{name} hyper-parameter {key} must be {allowed.describe()}, got {value!r} ({example})."
            )


def losses_without_spatial_maps() -> list[str]:
    """The registered losses that work with any model, token-sequence transformers (ViT) included: read from
    each class's ``needs_spatial_maps``, so every message that lists them says the same."""
    return [name for name in sorted(_LOSSES) if not _LOSSES[name].needs_spatial_maps]


def losses_without_hidden_states() -> list[str]:
    """The registered losses that read only logits and the pooled feature (``needs_hidden_states`` unset)."""
    return [name for name in sorted(_LOSSES) if not _LOSSES[name].needs_hidden_states]


def list_losses() -> list[str]:
    """Names of all registered losses, sorted."""
    return sorted(_LOSSES)


def get_loss_class(name: str) -> type[DistillationLoss]:
    """Look a loss class up by name (case-insensitive); unknown names list the known ones."""
    key = name.lower()
    if key not in _LOSSES:
        raise KeyError(f"Unknown distillation loss {name!r}. Known losses: {', '.join(list_losses())}.")
    return _LOSSES[key]


def build_loss(
    name: str, student_spec: FeatureSpec, teacher_spec: FeatureSpec, **kwargs: Any
) -> DistillationLoss:
    """Instantiate the registered loss ``name`` for a student/teacher pair; unknown hyper-parameters are refused."""
    check_hyperparameters(name, kwargs)
    return get_loss_class(name)(student_spec, teacher_spec, **kwargs)
