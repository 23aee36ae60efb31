"""Load any image classifier as a teacher or a student, with the label space of the dataset it will see.

One entry point, ``load_image_classifier``, for every way a model is named on the command line: a zoo name
(``wrn_16_2``), ``timm/<name>`` (fresh) or ``timm/<name>.<tag>`` (timm's pretrained weights), a run folder
(``results.json`` + ``student/``), a ``save_pretrained`` folder, a Hub id (``microsoft/resnet-50``), or a checkpoint
file (RepDistiller's ``ckpt_epoch_240.pth`` teachers: ``torch_checkpoint.py``).

The label space is where a silent mistake would hurt, so it is checked, never patched over:

* a **teacher** must already predict the dataset's classes: a checkpoint with another head would distil a random
  classifier, so that is an error that says to fine-tune it first (``recipes/train_teacher.py``);
* a **student** (or a teacher being fine-tuned, which ``train_teacher.py`` trains as its "student") with another
  head gets a new, freshly initialised one only when ``ignore_mismatched_sizes`` is set, the usual fine-tuning
  step; otherwise the mismatch is an error;
* same classes in a different order (``id2label``) is always an error: the logits would be permuted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoModelForImageClassification, PreTrainedModel

from .registry import create_model, is_model, with_training_dtype
from .torch_checkpoint import folder_without_config_message, load_checkpoint_file, saved_model_folder, with_new_head

logger = logging.getLogger(__name__)

__all__ = ["load_image_classifier", "looks_like_checkpoint"]


def looks_like_checkpoint(name: str | None) -> bool:
    """Whether ``name`` names a checkpoint (a folder, a Hub id, ``timm/<name>[.<tag>]``) rather than a zoo name.

    Zoo names never contain a slash. An untagged ``timm/<name>`` counts too, so that naming one as the teacher
    reaches ``load_image_classifier``'s explanation (it has no trained weights) rather than a generic error.
    """
    return bool(name) and ("/" in name or Path(name).exists())


def _default_names(id2label: dict[Any, str] | None) -> bool:
    return not id2label or all(str(v).startswith("LABEL_") for v in id2label.values())


def _check_label_order(name: str, config: Any, class_names: list[str] | None, role: str) -> None:
    """Same classes in another order would permute the logits: refuse it."""
    if class_names is None or _default_names(getattr(config, "id2label", None)):
        return
    names = [str(config.id2label[i]) for i in sorted(config.id2label, key=int)]
    if names == list(class_names):
        return
    if sorted(names) == sorted(class_names):
        raise ValueError(
            f"The {role} {name!r} predicts the dataset's classes in another order (its id2label starts "
            f"{names[:4]}, the dataset's {list(class_names)[:4]}): its logits would be permuted. Use the dataset's "
            f"label order (the order its ClassLabel / class folders give) or relabel the checkpoint."
        )
    logger.warning(
        "The %s %r names its classes %s..., the dataset %s...; assuming the same order.",
        role, name, names[:4], list(class_names)[:4],
    )


def _mismatch_error(name: str, have: int, want: int, role: str) -> ValueError:
    if role == "teacher":
        return ValueError(
            f"The teacher {name!r} predicts {have} classes but the dataset has {want}: a teacher with a new, untrained "
            f"head would distil noise. Fine-tune it on this dataset first: python recipes/train_teacher.py --config "
            f"recipes/configs/hf/finetune_teacher.yaml --student {name} --dataset <dataset> (its "
            f"ignore_mismatched_sizes gives it a new head), then pass that run folder as the teacher."
        )
    return ValueError(
        f"{name!r} has a {have}-class head but the dataset has {want} classes. Pass --ignore_mismatched_sizes true "
        f"to replace the head with a new {want}-class one (fine-tuning a pretrained model), or use a checkpoint "
        f"trained on this label space."
    )


def _load_checkpoint_file(
    path: str, architecture: str | None, num_labels: int, role: str, ignore_mismatched_sizes: bool
) -> PreTrainedModel:
    """A checkpoint file's model (``torch_checkpoint``), its head checked against the dataset as a folder's is."""
    model = load_checkpoint_file(path, architecture)
    if role != "teacher":
        # A student trains on: the file's epoch and accuracy will not describe the weights it saves.
        del model.config.source_checkpoint
    have = model.config.num_labels
    if have == num_labels:
        return model
    if role == "teacher" or not ignore_mismatched_sizes:
        raise _mismatch_error(path, have, num_labels, role)
    logger.info("%s: replacing its %d-class head with a new %d-class one.", path, have, num_labels)
    return with_new_head(model, num_labels)


def _load_timm(name: str, num_labels: int, role: str, ignore_mismatched_sizes: bool) -> PreTrainedModel:
    """``timm/<arch>`` is a fresh model; ``timm/<arch>.<tag>`` loads timm's pretrained weights (from the Hub)."""
    import timm

    timm_name = name.partition("/")[2]
    if "." not in timm_name:
        if role == "teacher":
            raise ValueError(
                f"The teacher {name!r} would be a randomly initialised timm model. Name pretrained weights with "
                f"their tag (e.g. timm/resnet18.a1_in1k), or pass the run folder of a teacher trained with "
                f"recipes/train_teacher.py."
            )
        return create_model(name, num_classes=num_labels)
    try:
        pretrained_cfg = timm.get_pretrained_cfg(timm_name) if timm.is_model(timm_name) else None
    except RuntimeError:  # a known architecture with an unknown tag
        pretrained_cfg = None
    if pretrained_cfg is None:
        raise ValueError(f"timm {timm.__version__} has no pretrained {timm_name!r}; see timm.list_pretrained().")
    pretrained_classes = pretrained_cfg.num_classes
    if pretrained_classes != num_labels and (role == "teacher" or not ignore_mismatched_sizes):
        raise _mismatch_error(name, pretrained_classes, num_labels, role)
    return create_model(name, num_classes=num_labels, pretrained=True)


def load_image_classifier(
    name_or_path: str | os.PathLike[str],
    *,
    num_labels: int,
    class_names: list[str] | None = None,
    role: str = "student",
    ignore_mismatched_sizes: bool = False,
    architecture: str | None = None,
    **from_pretrained_kwargs: Any,
) -> PreTrainedModel:
    """The model ``name_or_path`` names, with a ``num_labels``-class head (see the module docstring).

    Args:
        name_or_path: zoo name, ``timm/<name>[.<tag>]``, run folder, ``save_pretrained`` folder or Hub id.
        num_labels: the dataset's number of classes.
        class_names: the dataset's class names, in label order: set as the new head's ``id2label`` and checked
            against a checkpoint's.
        role: ``"teacher"`` or ``"student"`` (a teacher never gets a new head).
        ignore_mismatched_sizes: give a checkpoint with another number of classes a new head (students only).
        architecture: for a checkpoint file, the zoo architecture it holds (``None``: recognised from its tensors).
        **from_pretrained_kwargs: ``revision``, ``token``, ``cache_dir``... for ``from_pretrained``.

    Raises:
        ValueError: a label-space mismatch, or a fresh architecture named as the teacher.
        OSError: neither a local folder nor a loadable Hub model (the message says which was tried).
    """
    from ..runs import resolve_model_dir

    name = os.fspath(name_or_path)
    if not Path(name).exists() and name.startswith("timm/"):
        return _load_timm(name, num_labels, role, ignore_mismatched_sizes)
    if not Path(name).exists() and is_model(name):
        if role == "teacher":
            raise ValueError(
                f"The teacher {name!r} is a zoo architecture name, i.e. a randomly initialised model. Pass the run "
                f"folder of a trained teacher (teacher_checkpoint), a save_pretrained folder or a Hub id."
            )
        return create_model(name, num_classes=num_labels)
    if Path(name).is_file():
        folder = saved_model_folder(name)
        if folder is None:
            return _load_checkpoint_file(name, architecture, num_labels, role, ignore_mismatched_sizes)
        logger.info("%s is a file of the save_pretrained folder %s: loading the folder.", name, folder)
        name = folder
    path = resolve_model_dir(name)
    if Path(path).is_dir() and not (Path(path) / "config.json").is_file():
        raise FileNotFoundError(folder_without_config_message(path, role))
    model_kwargs = with_training_dtype(from_pretrained_kwargs)
    from_pretrained_kwargs.pop("dtype", None)  # a model's, not its config's
    try:
        config = AutoConfig.from_pretrained(path, **from_pretrained_kwargs)
    except (OSError, ValueError) as err:
        where = "is not a local folder, " if not Path(name).exists() else "has no config.json, so it is not a model "
        raise OSError(
            f"Could not load the {role} {name!r}: it {where}and loading it from the Hugging Face Hub failed "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). Pass a run folder, a "
            f"save_pretrained folder, a zoo name, timm/<name>, or a Hub id that is reachable (or cached when "
            f"HF_HUB_OFFLINE=1)."
        ) from err
    if config.num_labels == num_labels:
        _check_label_order(name, config, class_names, role)
        return AutoModelForImageClassification.from_pretrained(path, config=config, **model_kwargs)
    if role == "teacher" or not ignore_mismatched_sizes:
        raise _mismatch_error(name, config.num_labels, num_labels, role)
    names = list(class_names) if class_names is not None else [f"LABEL_{i}" for i in range(num_labels)]
    logger.info("%s: replacing its %d-class head with a new %d-class one.", name, config.num_labels, num_labels)
    return AutoModelForImageClassification.from_pretrained(
        path,
        num_labels=num_labels,
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        ignore_mismatched_sizes=True,
        **model_kwargs,
    )
