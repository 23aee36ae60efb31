"""Distillation losses: one file per method, all registered by name.

Every module of this package is imported here so its ``@register_loss`` runs: adding a method is adding
a file. ``build_loss(name, student_spec, teacher_spec, **hparams)`` instantiates one.
"""

import importlib
import pkgutil

from .base import (
    DistillationLoss,
    FeatureSpec,
    build_loss,
    get_loss_class,
    list_losses,
    probe_feature_spec,
    register_loss,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in {"base"}:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "DistillationLoss",
    "FeatureSpec",
    "build_loss",
    "get_loss_class",
    "list_losses",
    "probe_feature_spec",
    "register_loss",
]
