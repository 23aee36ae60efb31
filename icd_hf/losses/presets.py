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
default weight, the loss class's ``default_weight`` (the CRD benchmark's ``-b``).

``overrides`` (a config's ``loss_overrides``) adjusts the result::

    {"ce_weight": 1.0,
     "icd": {"weight": 2.0, "invariance_weight": 0.3},   # "weight" is the term weight, the rest kwargs
     "kd": {"temperature": 2}}

Keys must be ``ce_weight`` or a registered loss name; hyper-parameters are checked against the loss's
signature, the types it declares and its ``hyperparameter_ranges`` here (weights: finite, >= 0), so a typo or an
impossible value fails before training starts. Entries for registered losses that the method does
not use are checked but ignored, so one config's overrides can serve every method of a sweep.

``method_display_name`` and ``method_sort_key`` give a method's label and row order in results tables, from the
same loss classes (``paper_name``, ``table_order``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .base import NON_NEGATIVE, check_hyperparameters, get_loss_class, list_losses

VANILLA = "vanilla"


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
        try:
            check_hyperparameters(name, value, also=("weight",))
        except TypeError as err:  # a config mistake: reported as bad input, like the other keys
            raise ValueError(str(err)) from None
        if "weight" in value:
            _as_weight(value["weight"], f"{name}.weight")
        per_loss[name] = dict(value)
    return ce_weight, per_loss


def _as_weight(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number, got {value!r}.")
    # A negative weight maximises its term, a non-finite one makes every step nan: neither is a recipe.
    if value not in NON_NEGATIVE:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}.")
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


def _paper_name(component: str) -> str:
    try:
        return get_loss_class(component).paper_name
    except KeyError:  # not a registered loss (a row of a published table): shown as written, upper case
        return component.upper()


def method_display_name(method: str, *, kd_last: bool = True) -> str:
    """``icd+kd`` -> ``ICD+KD``: a method's label in results tables and cards (the papers' spelling).

    Args:
        method: ``+``-joined loss names, any case.
        kd_last: move ``KD`` to the end (``kd+crd`` -> ``CRD+KD``), as the papers label their rows; with
            ``False`` the components keep the caller's order.

    Raises:
        ValueError: ``method`` names no component.
    """
    parts = [p.strip().lower() for p in method.split("+") if p.strip()]
    if not parts:
        raise ValueError(f"Empty method name {method!r}: pass loss names joined by '+', e.g. 'icd+kd'.")
    if kd_last:
        parts.sort(key=lambda p: p == "kd")  # stable: keeps the order of the others, moves KD to the end
    return "+".join(_paper_name(p) for p in parts)


def method_sort_key(label: str) -> tuple[int, int, str]:
    """Sort key of a method (``"crd+kd"`` or its label ``"CRD+KD"``) in a results table: the losses'
    ``table_order`` (the CRD benchmark's order, then later methods), ``X+KD`` right after ``X``, unknown last."""
    lookup = {}
    for name in list_losses():
        cls = get_loss_class(name)
        lookup[name] = lookup[cls.paper_name.lower()] = cls
    parts = [p.strip().lower() for p in label.split("+") if p.strip()]
    classes = [lookup.get(p) for p in parts]
    if not parts or None in classes:
        return (max(c.table_order for c in lookup.values()) + 1, len(parts), label)
    lead = [c for c in classes if c.name != "kd"] or classes
    return (min(c.table_order for c in lead), len(parts), label)
