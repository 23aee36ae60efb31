"""Method strings (``"icd+kd"``, ``"crd"``, ``"vanilla"``) to weighted loss terms.

The total training loss is ``ce_weight * CE(student, labels) + sum_k weight_k * loss_k``. The conventions
are those of the CRD benchmark (RepDistiller ``train_student.py -r <ce> -a <kd> -b <other>``):

==================  ==========  =========  ====================================================
method              CE weight   KD weight  other term
==================  ==========  =========  ====================================================
``vanilla``         1           -          none (no teacher needed)
``kd``              0.1         0.9        -
``x``               1           -          ``x`` with its ``default_weight``
``x+kd``/``kd+x``   1           1          ``x`` with its ``default_weight``
``icd``             1           -          ICD 1
``icd+kd``          1           1          ICD 1
==================  ==========  =========  ====================================================

``x`` is any registered loss (``icd_hf.losses.list_losses()``), so every method file added to the package
is available here with no edit. More than one non-KD term (``"crd+icd+kd"``) is allowed: each gets its
default weight. Default weights (``DistillationLoss.default_weight``, the CRD benchmark's ``-b``): ICD 1,
KD 0.9, DKD 1, CRD 0.8, FitNet 100, AT 1000, SP 3000, CC 0.02, VID 1, RKD 1, PKT 30000, AB 1, FT 200,
FSP 50, NST 50.

``overrides`` (a config's ``loss_overrides``) adjusts the result::

    {"ce_weight": 1.0,
     "icd": {"weight": 2.0, "invariance_weight": 0.3},   # "weight" is the term weight, the rest kwargs
     "kd": {"temperature": 2}}

Keys must be ``ce_weight`` or a registered loss name; hyper-parameters are checked against the loss's
signature here, so a typo fails before training starts. Entries for registered losses that the method does
not use are checked but ignored, so one config's overrides can serve every method of a sweep.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .base import DistillationLoss, get_loss_class, list_losses

VANILLA = "vanilla"
_NON_HPARAMS = {"self", "student_spec", "teacher_spec"}


@dataclass(frozen=True)
class LossTerm:
    """One weighted distillation term: ``weight * build_loss(name, ..., **kwargs)``."""

    name: str
    weight: float
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodSpec:
    """What a ``Distiller`` optimises: ``ce_weight * CE + sum(term.weight * term)``."""

    ce_weight: float
    terms: list[LossTerm] = field(default_factory=list)
    name: str = ""

    @property
    def needs_teacher(self) -> bool:
        """Every distillation term reads the teacher; only a CE-only method trains without one."""
        return bool(self.terms)


def _unknown_method(name: str) -> KeyError:
    return KeyError(
        f"Unknown distillation method component {name!r}. Known: {VANILLA}, {', '.join(list_losses())} "
        f"(combine with '+', e.g. 'icd+kd')."
    )


def _accepted_hparams(loss_name: str) -> set[str] | None:
    """Keyword hyper-parameters of a loss's ``__init__``, or ``None`` if it takes ``**kwargs`` (unchecked)."""
    init = get_loss_class(loss_name).__init__
    if init is DistillationLoss.__init__:  # no hyper-parameters of its own; the base rejects any kwargs
        return set()
    params = inspect.signature(init).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.name not in _NON_HPARAMS}


def _parse_overrides(overrides: Mapping[str, Any] | None) -> tuple[float | None, dict[str, dict[str, Any]]]:
    """Validate ``overrides``; return the CE weight override and per-loss override dicts (lower-case names)."""
    if overrides is None:
        return None, {}
    if not isinstance(overrides, Mapping):
        raise TypeError(f"Loss overrides must be a mapping like {{'kd': {{'temperature': 2}}}}, got {overrides!r}.")
    ce_weight: float | None = None
    per_loss: dict[str, dict[str, Any]] = {}
    known = set(list_losses())
    for key, value in overrides.items():
        name = str(key).lower()
        if name == "ce_weight":
            ce_weight = _as_weight(value, "ce_weight")
            continue
        if name not in known:
            raise ValueError(
                f"Unknown loss override key {key!r}: use 'ce_weight' or a loss name ({', '.join(sorted(known))})."
            )
        if not isinstance(value, Mapping):
            raise TypeError(
                f"Override for {key!r} must be a mapping of 'weight' and hyper-parameters, e.g. "
                f"{{'{name}': {{'weight': 1.0}}}}; got {value!r}."
            )
        accepted = _accepted_hparams(name)
        if accepted is not None:
            unknown = sorted(set(value) - accepted - {"weight"})
            if unknown:
                raise ValueError(
                    f"Unknown hyper-parameter(s) {unknown} for loss {name!r}. Accepted: "
                    f"{', '.join(sorted(accepted | {'weight'}))}."
                )
        if "weight" in value:
            _as_weight(value["weight"], f"{name}.weight")
        per_loss[name] = dict(value)
    return ce_weight, per_loss


def _as_weight(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number, got {value!r}.")
    return float(value)


def resolve_method(method: str, overrides: Mapping[str, Any] | None = None) -> MethodSpec:
    """Turn a method string and optional overrides into a ``MethodSpec`` (see the module docstring).

    Raises ``KeyError`` for an unknown method component (listing the known ones) and ``ValueError``/
    ``TypeError`` for malformed method strings or overrides.
    """
    if not isinstance(method, str) or not method.strip():
        raise ValueError(f"Method must be a non-empty string such as 'icd+kd', got {method!r}.")
    parts = [p.strip().lower() for p in method.split("+")]
    if any(not p for p in parts):
        raise ValueError(f"Malformed method {method!r}: empty component around '+'.")
    if len(set(parts)) != len(parts):
        raise ValueError(f"Method {method!r} lists a loss twice.")
    ce_override, per_loss = _parse_overrides(overrides)
    name = "+".join(parts)

    if VANILLA in parts:
        if len(parts) > 1:
            raise ValueError(f"'{VANILLA}' is CE only and cannot be combined with other terms ({method!r}).")
        return MethodSpec(ce_weight=1.0 if ce_override is None else ce_override, terms=[], name=name)

    classes = {}
    for part in parts:
        try:
            classes[part] = get_loss_class(part)
        except KeyError:
            raise _unknown_method(part) from None

    if parts == ["kd"]:
        ce_weight, weights = 0.1, {"kd": classes["kd"].default_weight}
    else:
        # With other terms, KD joins at weight 1 (CRD's "-a 1"); every other term keeps its default weight.
        ce_weight = 1.0
        weights = {p: 1.0 if p == "kd" else classes[p].default_weight for p in parts}

    terms = []
    for part in parts:
        override = dict(per_loss.get(part, {}))
        weight = float(override.pop("weight", weights[part]))
        terms.append(LossTerm(name=part, weight=weight, kwargs=override))
    return MethodSpec(ce_weight=ce_weight if ce_override is None else ce_override, terms=terms, name=name)
