"""PyTorch checkpoint files as models: the standard CIFAR-100 teachers of RepDistiller, mdistiller and the ICD
(DCD) authors' code, ``save/models/<model>_vanilla/ckpt_epoch_240.pth``, or any file holding a zoo state dict.

Such a file is ``torch.save({'model': state_dict, 'epoch': ..., 'accuracy': ..., 'optimizer': ...})`` or a bare
state dict (a ``.safetensors`` file without a ``config.json`` beside it counts as one). The zoo keeps
RepDistiller's module names, so the state dict loads into the zoo model of the same architecture with
``strict=True``. The architecture is the caller's (``teacher:``, ``NAME=FILE``, ``--model``) or is recognised
here from the tensor names and shapes against every zoo architecture (built once on the ``meta`` device: shapes
without memory or initialisation); the number of classes is read from the head.

``load_model`` (``registry.py``, which imports nothing from its package because it travels into saved folders)
reaches this file through ``register_local_loader``; ``load_image_classifier`` calls it directly.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from .registry import create_model, list_models, load_model, register_local_loader

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FILE_SUFFIXES",
    "LayoutDiff",
    "TorchCheckpoint",
    "folder_without_config_message",
    "load_checkpoint_file",
    "load_local",
    "model_from_checkpoint",
    "read_torch_checkpoint",
    "recognise_architecture",
    "saved_model_folder",
    "zoo_layouts",
]

# Where the state dict sits in a checkpoint dict: RepDistiller / mdistiller / the ICD authors write 'model'.
STATE_DICT_KEYS = ("model", "state_dict")
# Suffixes a folder's single checkpoint file is recognised by (for the hint of a folder without config.json).
CHECKPOINT_FILE_SUFFIXES = (".pth", ".pt", ".ckpt", ".pth.tar", ".safetensors")
# Files of a save_pretrained folder: named on their own, the folder is meant.
_SAVED_MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                      "preprocessor_config.json")
# BatchNorm's step counter: only read with momentum=None, absent from files written before PyTorch 0.4.1.
_BN_COUNTER = "num_batches_tracked"
# Layouts are built with this many classes; the head's rows are then compared against the file's own count.
_LAYOUT_CLASSES = 100


@dataclass(frozen=True)
class TorchCheckpoint:
    """The state dict of a checkpoint file and what the file says about it (``epoch``, ``accuracy``)."""

    path: str
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    epoch: int | None = None
    accuracy: float | None = None

    @property
    def file_name(self) -> str:
        return Path(self.path).name

    def provenance(self) -> dict[str, Any]:
        """Where the weights came from, for records and cards: the file's name (never the local path, which names
        nothing on another machine), its epoch and the accuracy recorded in it."""
        return {"file": self.file_name, "epoch": self.epoch, "accuracy": self.accuracy}


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _number(value: Any) -> float | None:
    """A scalar of the file (an int, a float, or a one-element tensor, possibly saved on a GPU) as a float."""
    if isinstance(value, torch.Tensor):
        return float(value.item()) if value.numel() == 1 else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_torch_checkpoint(path: str | os.PathLike[str]) -> TorchCheckpoint:
    """Read a checkpoint file: ``{'model': state_dict, 'epoch', 'accuracy', ...}`` or a bare state dict.

    ``torch.load(..., map_location="cpu", weights_only=True)``: the released files may hold CUDA tensors, and
    ``weights_only`` runs no code from the file. A ``module.`` prefix on every key (``DataParallel``) is dropped.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file is not a PyTorch checkpoint, or holds no state dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint file {path!r} does not exist.")
    what = ("Pass a .pth file holding {'model': state_dict} or a state dict, a save_pretrained or run folder, or a "
            "Hub id.")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(path, device="cpu")
        except Exception as err:  # safetensors raises its own SafetensorError on a damaged header
            raise ValueError(f"{path!r} is not a readable safetensors file ({_first_line(err)}). {what}") from None
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
            if refused:
                raise ValueError(
                    f"{path!r} holds Python objects that torch.load(weights_only=True) will not run (e.g. "
                    f"{refused.group(1)}): re-save its weights alone, torch.save({{'model': model.state_dict()}}, "
                    f"FILE), with the code that wrote it."
                ) from None
            reason = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(\n\n|$)", str(err), re.S)
            raise ValueError(f"{path!r} is not a PyTorch checkpoint (it does not unpickle: "
                             f"{reason.group(1) if reason else _first_line(err)}). {what}") from None
        except (RuntimeError, EOFError, OSError, ValueError) as err:
            raise ValueError(f"{path!r} is not a PyTorch checkpoint ({_first_line(err)}). {what}") from None
    meta: Mapping[str, Any] = {}
    if _is_state_dict(obj):
        state_dict = dict(obj)
    elif isinstance(obj, Mapping):
        key = next((k for k in STATE_DICT_KEYS if _is_state_dict(obj.get(k))), None)
        if key is None:
            keys = ", ".join(repr(k) for k in list(obj)[:8])
            raise ValueError(
                f"{path!r} holds a dict with keys {keys} but no state dict under 'model' (RepDistiller, mdistiller, "
                f"the ICD/DCD code) or 'state_dict', and is no state dict itself. {what}"
            )
        state_dict, meta = dict(obj[key]), obj
    else:
        raise ValueError(f"{path!r} holds a {type(obj).__name__}, not a state dict. {what}")
    if all(k.startswith("module.") for k in state_dict):  # saved from a DataParallel wrapper
        state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
    epoch = _number(meta.get("epoch"))
    accuracy = _number(meta.get("accuracy", meta.get("best_acc")))
    return TorchCheckpoint(
        path=path,
        state_dict=state_dict,
        epoch=int(epoch) if epoch is not None else None,
        accuracy=round(accuracy, 4) if accuracy is not None else None,  # a float32 75.61 reads 75.6100006...
    )


# ------------------------------------------------------------------------------------------------ layouts

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ZooLayout:
    """A zoo architecture's state dict as names and shapes (BatchNorm counters left out), and its head's prefix."""

    shapes: dict[str, Shape]
    head: str

    def classes_of(self, shapes: Mapping[str, Shape]) -> int | None:
        """The number of classes of the state dict ``shapes``, read from this layout's head (``None``: no head)."""
        weight = shapes.get(f"{self.head}weight")
        return weight[0] if weight is not None and len(weight) == 2 else None

    def expected(self, num_classes: int) -> dict[str, Shape]:
        """The shapes with a ``num_classes``-row head."""
        return {k: (num_classes, *s[1:]) if k.startswith(self.head) and s else s for k, s in self.shapes.items()}


@functools.cache
def _layouts(names: tuple[str, ...]) -> dict[str, ZooLayout]:
    layouts = {}
    with torch.device("meta"):  # shapes only: no memory and no initialisation (all of them in well under a second)
        for name in names:
            model = create_model(name, num_classes=_LAYOUT_CLASSES)
            shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith(_BN_COUNTER)}
            layouts[name] = ZooLayout(shapes, _head_prefix(model))
    return layouts


def _head_prefix(model: PreTrainedModel) -> str:
    """The state-dict prefix of the classifier's last linear layer (``fc.``; MobileNetV2's ``classifier.0.``)."""
    head = model.get_classifier()
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    target = linears[-1] if linears else head
    return next(name for name, module in model.named_modules() if module is target) + "."


def zoo_layouts() -> dict[str, ZooLayout]:
    """Every registered zoo architecture's ``ZooLayout`` (cached per set of registered names)."""
    return _layouts(tuple(list_models()))


def _shapes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Shape]:
    return {k: tuple(v.shape) for k, v in state_dict.items() if not k.endswith(_BN_COUNTER)}


def _dims(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


@dataclass(frozen=True)
class LayoutDiff:
    """How a state dict differs from an architecture's layout: tensors it lacks, tensors it has in excess, and
    tensors of another shape (``(name, shape in the file, shape of the architecture)``)."""

    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: tuple[tuple[str, Shape, Shape], ...] = ()
    similarity: float = 1.0

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)

    def describe(self, name: str) -> str:
        """One clause per kind of difference, each with its first example."""
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} tensor(s) of {name} missing (e.g. {self.missing[0]})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} tensor(s) that {name} does not have (e.g. {self.unexpected[0]})")
        if self.mismatched:
            key, have, want = self.mismatched[0]
            parts.append(f"{len(self.mismatched)} of another shape (e.g. {key}: {_dims(have)} in the file, "
                         f"{_dims(want)} in {name})")
        return "; ".join(parts) or "no difference"


def layout_diff(shapes: Mapping[str, Shape], layout: ZooLayout) -> LayoutDiff:
    """``shapes`` (a state dict's) against ``layout``, its head sized by the classes ``shapes`` has."""
    classes = layout.classes_of(shapes)
    expected = layout.expected(classes if classes is not None else _LAYOUT_CLASSES)
    missing = tuple(k for k in expected if k not in shapes)
    unexpected = tuple(k for k in shapes if k not in expected)
    mismatched = tuple((k, shapes[k], expected[k]) for k in expected if k in shapes and shapes[k] != expected[k])
    same = len(expected) - len(missing) - len(mismatched)
    return LayoutDiff(missing, unexpected, mismatched, similarity=same / max(len(expected) + len(unexpected), 1))


def recognise_architecture(state_dict: Mapping[str, torch.Tensor], source: str = "The state dict") -> str:
    """The one zoo architecture whose tensor names and shapes are those of ``state_dict`` (any number of classes).

    Raises:
        ValueError: several architectures fit (named, with how to choose), or none does (the nearest is named, with
            what differs).
    """
    shapes = _shapes(state_dict)
    fits, near = [], []
    for name, layout in zoo_layouts().items():
        diff = layout_diff(shapes, layout)
        if diff:
            near.append((diff.similarity, name, diff))
        else:
            fits.append(name)
    if len(fits) == 1:
        return fits[0]
    if fits:
        raise ValueError(
            f"{source} fits {len(fits)} zoo architectures equally ({', '.join(fits)}: the same tensor names and "
            f"shapes); name the one it holds (teacher: NAME, NAME=FILE in teachers, --model NAME, architecture=NAME)."
        )
    if not near:
        raise ValueError(f"{source}: no zoo architecture is registered to recognise it by.")
    _, name, diff = max(near, key=lambda item: (item[0], item[1]))
    raise ValueError(
        f"{source} is none of the zoo architectures; the nearest is {name}, with {diff.describe(name)}. Load it "
        f"with the code that wrote it, or register its architecture with @register_model (icd_hf.models)."
    )


# ------------------------------------------------------------------------------------------------ models


def _unknown_architecture(name: str, path: str) -> ValueError:
    close = difflib.get_close_matches(name, list_models(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ValueError(
        f"{name!r} is not a zoo architecture{hint}, so {path!r} cannot be loaded as one: name one of "
        f"{', '.join(list_models())}, or leave the name out to recognise the architecture from the file."
    )


def model_from_checkpoint(checkpoint: TorchCheckpoint, architecture: str | None = None) -> PreTrainedModel:
    """The zoo model ``checkpoint`` holds, its weights loaded with ``strict=True``, in eval mode.

    Args:
        checkpoint: from ``read_torch_checkpoint``.
        architecture: the zoo name it must be; ``None`` recognises it (``recognise_architecture``).

    The head's size is the file's; callers compare it with their dataset (``config.num_labels``). The model's
    ``config.source_checkpoint`` records ``checkpoint.provenance()`` (saved with it by ``save_pretrained``).

    Raises:
        ValueError: an unknown architecture, a file that does not hold it (what differs, and what the file's
            tensors are when they are another zoo architecture's), or an unrecognisable file.
    """
    path, state_dict = checkpoint.path, checkpoint.state_dict
    name = architecture or recognise_architecture(state_dict, source=repr(path))
    layouts = zoo_layouts()
    if name not in layouts:
        raise _unknown_architecture(name, path)
    layout = layouts[name]
    diff = layout_diff(_shapes(state_dict), layout)
    classes = layout.classes_of(_shapes(state_dict))
    if diff or classes is None:
        try:
            actual = recognise_architecture(state_dict)
            hint = f" Its tensors are those of {actual}: name that architecture instead."
        except ValueError:
            hint = ""
        raise ValueError(f"{path!r} does not hold a {name}: {diff.describe(name)}.{hint}")
    model = create_model(name, num_classes=classes)
    own = model.state_dict()
    # strict=True for every weight and statistic; only BatchNorm's step counter is filled in where an older file
    # lacks it (it is read only with momentum=None, which no zoo model uses).
    state = {k: v for k, v in state_dict.items() if k in own or not k.endswith(_BN_COUNTER)}
    state.update({k: torch.zeros_like(own[k]) for k in own if k.endswith(_BN_COUNTER) and k not in state})
    model.load_state_dict(state, strict=True)
    model.config.source_checkpoint = checkpoint.provenance()
    return model.eval()


def with_new_head(model: PreTrainedModel, num_classes: int) -> PreTrainedModel:
    """The same architecture with ``model``'s weights and a freshly initialised ``num_classes``-class head (the
    ``ignore_mismatched_sizes`` step for a student from a checkpoint file)."""
    head = f"{model.classifier_name}."
    name = model.config.architecture_name
    fresh = create_model(name, num_classes=num_classes)
    body = {k: v for k, v in model.state_dict().items() if not k.startswith(head)}
    missing, unexpected = fresh.load_state_dict(body, strict=False)
    if unexpected or any(not k.startswith(head) for k in missing):  # only the head may be new
        raise ValueError(f"Replacing the head of {name} left {missing or unexpected} unloaded.")
    return fresh


# ------------------------------------------------------------------------------------------------ local paths


def saved_model_folder(path: str | os.PathLike[str]) -> str | None:
    """The ``save_pretrained`` folder a file belongs to (``model.safetensors``, ``config.json``... named on their
    own), or ``None`` when ``path`` is a checkpoint file of its own."""
    path = Path(path)
    if path.is_file() and (path.parent / "config.json").is_file() and (
            path.name in _SAVED_MODEL_FILES or path.suffix == ".safetensors"):
        return str(path.parent)
    return None


def folder_without_config_message(folder: str | os.PathLike[str], role: str = "model") -> str:
    """What to pass instead of a folder that has no ``config.json``: its checkpoint file when it holds one (a
    RepDistiller ``save/models/<model>_vanilla/`` folder), its ``student/`` for a run folder."""
    folder = Path(folder)
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(CHECKPOINT_FILE_SUFFIXES))
    if len(files) == 1:
        file = folder / files[0]
        return (f"The {role} folder {str(folder)!r} has no config.json but holds one PyTorch checkpoint: pass the "
                f"file itself ({str(file)!r}), or convert it to a save_pretrained folder with `icd-hf convert {file} "
                f"--out DIR`.")
    if files:
        shown = ", ".join(files[:6]) + (", ..." if len(files) > 6 else "")
        return (f"The {role} folder {str(folder)!r} has no config.json but holds {len(files)} PyTorch checkpoints "
                f"({shown}): pass the one to use as the file itself (RepDistiller's final weights are "
                f"ckpt_epoch_240.pth), or convert it with `icd-hf convert FILE --out DIR`.")
    return (f"The {role} folder {str(folder)!r} has no config.json and no checkpoint file: pass a save_pretrained "
            f"folder, a run folder (its student/), a .pth file or a Hub id.")


def load_checkpoint_file(
    path: str | os.PathLike[str], architecture: str | None = None, *, dtype: torch.dtype | None = None
) -> PreTrainedModel:
    """The model of one checkpoint file (``read_torch_checkpoint`` then ``model_from_checkpoint``)."""
    model = model_from_checkpoint(read_torch_checkpoint(path), architecture)
    return model.to(dtype) if dtype is not None else model


def load_local(
    path: str, num_classes: int | None = None, *, architecture: str | None = None, **kwargs: Any
) -> PreTrainedModel:
    """``load_model`` of a local file, or of a folder without ``config.json`` (registered with the registry).

    A file of a ``save_pretrained`` folder loads that folder; any other file is a checkpoint file.
    """
    folder = saved_model_folder(path)
    if folder is not None:
        logger.info("%s is a file of the save_pretrained folder %s: loading the folder.", path, folder)
        return load_model(folder, num_classes=num_classes, **kwargs)
    if os.path.isdir(path):
        from ..runs import resolve_model_dir

        model_dir = resolve_model_dir(path)  # a run folder: its student/
        if model_dir != path:
            return load_model(model_dir, num_classes=num_classes, **kwargs)
        raise FileNotFoundError(folder_without_config_message(path))
    dtype = kwargs.pop("dtype", None)
    if kwargs:
        raise ValueError(
            f"load_model({path!r}) reads a checkpoint file and takes only num_classes, architecture and dtype; "
            f"{', '.join(sorted(kwargs))} apply to save_pretrained folders and Hub ids."
        )
    model = load_checkpoint_file(path, architecture, dtype=dtype)
    if num_classes is not None and model.config.num_labels != num_classes:
        raise ValueError(
            f"Checkpoint {path!r} has a {model.config.num_labels}-class head but num_classes={num_classes} was "
            f"requested. Use a checkpoint trained on that label space, or pass num_classes={model.config.num_labels}."
        )
    return model


register_local_loader(load_local)
