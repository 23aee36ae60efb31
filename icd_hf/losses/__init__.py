"""Distillation losses: one file per method, all registered by name.

Every module of this package is imported here so its ``@register_loss`` runs: adding a method is adding
a file, whose ``DistillationLoss`` subclass carries everything about it (what it reads, its hyper-parameters,
default weight, paper spelling, card description and BibTeX). ``build_loss(name, student_spec, teacher_spec,
**hparams)`` instantiates one.
"""

import importlib
import pkgutil

from .base import (
    BatchContext,
    DistillationLoss,
    FeatureSpec,
    Range,
    build_loss,
    get_loss_class,
    hyperparameter_types,
    hyperparameters,
    list_losses,
    losses_without_hidden_states,
    losses_without_spatial_maps,
    probe_feature_spec,
    register_loss,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "BatchContext",
    "DistillationLoss",
    "FeatureSpec",
    "Range",
    "build_loss",
    "get_loss_class",
    "hyperparameter_types",
    "hyperparameters",
    "list_losses",
    "losses_without_hidden_states",
    "losses_without_spatial_maps",
    "probe_feature_spec",
    "register_loss",
]
