"""timm-style model registry: one factory function per architecture variant.

The modeling files decorate their factories with ``@register_model``; ``create_model("wrn_40_2")`` then builds a
fresh ``PreTrainedModel``. Names of the form ``timm/<timm model name>`` are handed to the timm wrapper, which
registers itself as the handler of the ``timm`` prefix.

This file imports nothing from its package on purpose: it is copied next to the modeling files when a model is
saved with ``save_pretrained`` and must load there (``trust_remote_code=True``) without icd-hf installed.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForImageClassification, PreTrainedModel

ModelFactory = Callable[..., PreTrainedModel]

_MODEL_FACTORIES: dict[str, ModelFactory] = {}
# prefix -> (factory taking the rest of the name, predicate telling whether that rest names a model)
_PREFIX_HANDLERS: dict[str, tuple[ModelFactory, Callable[[str], bool]]] = {}
# load_model of a local file (a RepDistiller .pth...) or of a folder without config.json: set by
# the torch_checkpoint module of this package, so that this file keeps importing nothing from its package.
_LOCAL_LOADER: list[Callable[..., PreTrainedModel]] = []

__all__ = [
    "create_model",
    "is_model",
    "list_models",
    "load_model",
    "register_model",
    "register_local_loader",
    "register_model_prefix",
]


def _qualified_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def register_model(fn: ModelFactory) -> ModelFactory:
    """Decorator: register ``fn`` under its function name as a zoo architecture.

    The factory must accept ``num_classes`` and keyword overrides of its config, and return a ``PreTrainedModel``.
    """
    name = fn.__name__
    existing = _MODEL_FACTORIES.get(name)
    # Re-importing the same module (importlib.reload, notebooks) registers the same function again: allow that,
    # but refuse a second, different architecture under a name that is already taken.
    if existing is not None and _qualified_name(existing) != _qualified_name(fn):
        raise ValueError(
            f"A model named {name!r} is already registered by {_qualified_name(existing)}; "
            f"rename the factory {_qualified_name(fn)}."
        )
    _MODEL_FACTORIES[name] = fn
    return fn


def register_model_prefix(prefix: str, handler: ModelFactory, exists: Callable[[str], bool]) -> None:
    """Route names ``"<prefix>/<rest>"`` to ``handler(rest, num_classes=..., **kwargs)`` (used for ``timm/``).

    ``exists(rest)`` answers ``is_model`` for such names.
    """
    _PREFIX_HANDLERS[prefix] = (handler, exists)


def register_local_loader(loader: Callable[..., PreTrainedModel]) -> None:
    """Make ``loader(path, num_classes, **kwargs)`` answer ``load_model`` for a local file, or a local folder
    without ``config.json`` (replacing an earlier one: re-imports register the same function again)."""
    _LOCAL_LOADER[:] = [loader]


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered zoo architectures, optionally filtered by a shell-style ``pattern``.

    ``timm/<name>`` models are not listed (any timm model name works); see ``timm.list_models``.
    """
    names = sorted(_MODEL_FACTORIES)
    if pattern is not None:
        names = fnmatch.filter(names, pattern)
    return names


def is_model(name: str) -> bool:
    """Whether ``create_model(name)`` would find a factory (zoo name, or ``timm/<name>`` with timm installed)."""
    if name in _MODEL_FACTORIES:
        return True
    prefix, sep, rest = name.partition("/")
    if sep and prefix in _PREFIX_HANDLERS and rest:
        return _PREFIX_HANDLERS[prefix][1](rest)
    return False


def _unknown_model_error(name: str) -> KeyError:
    known = ", ".join(list_models())
    return KeyError(
        f"Unknown model {name!r}. Known zoo models: {known}. Any timm architecture works as "
        f"'timm/<timm model name>' (e.g. 'timm/resnet18'); a saved model loads with load_model(<directory or Hub id>)."
    )


def create_model(name: str, num_classes: int = 100, **kwargs: Any) -> PreTrainedModel:
    """Build a freshly initialised model by registry name.

    Args:
        name: a zoo name from ``list_models()`` (``"wrn_40_2"``, ``"resnet8x4"``...) or ``"timm/<timm name>"``.
        num_classes: size of the classification head (stored as ``config.num_labels``).
        **kwargs: overrides of the architecture's config fields (e.g. ``dropout_rate=0.3``), or for timm
            models ``pretrained=True`` / any ``timm.create_model`` keyword.

    Raises:
        KeyError: the name is not registered; the message lists the known names.
    """
    factory = _MODEL_FACTORIES.get(name)
    if factory is not None:
        return factory(num_classes=num_classes, **kwargs)
    prefix, sep, rest = name.partition("/")
    if sep and prefix in _PREFIX_HANDLERS and rest:
        return _PREFIX_HANDLERS[prefix][0](rest, num_classes=num_classes, **kwargs)
    raise _unknown_model_error(name)


def with_training_dtype(from_pretrained_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``from_pretrained`` kwargs with ``dtype`` float32 unless the caller chose one.

    Training keeps float32 master weights: a checkpoint stored in fp16/bf16 (the published teachers are fp16 to
    halve their size) is upcast on load, where transformers would keep the stored dtype.
    """
    return {"dtype": torch.float32, **from_pretrained_kwargs}


def load_model(name_or_path: str | os.PathLike[str], num_classes: int | None = None, **kwargs: Any) -> PreTrainedModel:
    """A zoo/timm name gives a fresh model; a directory or Hub id gives the saved weights.

    Unlike ``from_pretrained(..., num_labels=n)``, a checkpoint whose head has a different number of classes is
    an error here, never a silently re-initialised head: a teacher with a random classifier would distil noise.

    Args:
        name_or_path: ``create_model`` name, a ``save_pretrained`` directory, a Hub repository id, or a checkpoint
            file (a RepDistiller/mdistiller ``.pth``, read by the package's ``torch_checkpoint`` module, with
            ``architecture=NAME`` or recognised from its tensors).
        num_classes: expected number of classes. For a name, the head size (default 100); for a checkpoint, a
            check against its ``config.num_labels``.
        **kwargs: passed to ``create_model`` (names) or ``AutoModelForImageClassification.from_pretrained``
            (``dtype`` defaults to float32 there, whatever dtype the weights are stored in).

    Raises:
        ValueError: the checkpoint's number of classes differs from ``num_classes``.
    """
    name = os.fspath(name_or_path)
    if not os.path.isdir(name) and (name in _MODEL_FACTORIES or name.partition("/")[0] in _PREFIX_HANDLERS):
        return create_model(name, num_classes=100 if num_classes is None else num_classes, **kwargs)
    no_config = os.path.isfile(name) or (os.path.isdir(name) and not os.path.isfile(os.path.join(name, "config.json")))
    if no_config and _LOCAL_LOADER:
        return _LOCAL_LOADER[0](name, num_classes, **kwargs)
    for forbidden in ("num_labels", "id2label", "label2id", "ignore_mismatched_sizes"):
        if forbidden in kwargs:
            raise ValueError(
                f"load_model() does not take {forbidden!r}: changing the label space of a checkpoint would "
                f"re-initialise its classifier. Pass num_classes=<n> to check it, or build a fresh model instead."
            )
    kwargs = with_training_dtype(kwargs)
    config_kwargs = {k: kwargs[k] for k in ("revision", "token", "cache_dir", "trust_remote_code") if k in kwargs}
    config = AutoConfig.from_pretrained(name, **config_kwargs)
    if num_classes is not None and config.num_labels != num_classes:
        raise ValueError(
            f"Checkpoint {name!r} has a {config.num_labels}-class head but num_classes={num_classes} was requested. "
            f"Use a checkpoint trained on that label space, or pass num_classes={config.num_labels}."
        )
    return AutoModelForImageClassification.from_pretrained(name, config=config, **kwargs)
