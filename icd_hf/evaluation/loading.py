"""Load the models and data the evaluation recipes run on (run directories, Hub ids, zoo names; known datasets).

``icd_hf.models`` and ``icd_hf.data`` are imported inside the functions: the analysis functions of this package
(features, probes, correlations, tables) stay usable with any ``nn.Module`` and tensors alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..runs import RESULTS_NAME, RunResults, resolve_model_dir

__all__ = ["load_eval_datasets", "load_eval_model", "model_normalization", "resolve_model_dir"]

_PROCESSOR = "preprocessor_config.json"


def load_eval_model(name_or_path: str | os.PathLike[str], num_classes: int | None = None, **kwargs: Any):  # noqa: ANN201
    """``icd_hf.models.load_model`` on :func:`resolve_model_dir` of ``name_or_path``, in eval mode.

    A zoo name gives a freshly initialised model (a random-feature baseline for the probe); ``num_classes`` is
    then its head size, and for a checkpoint a check of its head.
    """
    from icd_hf.models import load_model

    model = load_model(resolve_model_dir(name_or_path), num_classes=num_classes, **kwargs)
    return model.eval()


def model_normalization(name_or_path: str | os.PathLike[str]) -> tuple[list[float], list[float]] | None:
    """The mean/std a model was trained with, read from its run's ``results.json`` (``dataset.mean/std``) or an
    exported folder's ``preprocessor_config.json``; ``None`` when neither is there (zoo names, bare folders)."""
    path = Path(name_or_path)
    if not path.is_dir():
        return None
    model_dir = Path(resolve_model_dir(path))
    for folder in dict.fromkeys((path, model_dir, model_dir.parent)):
        if (folder / RESULTS_NAME).is_file():
            dataset = RunResults.read(folder).dataset
            if dataset.get("mean") and dataset.get("std"):
                return [float(v) for v in dataset["mean"]], [float(v) for v in dataset["std"]]
        processor = folder / _PROCESSOR
        if processor.is_file():
            config = json.loads(processor.read_text())
            if config.get("image_mean") and config.get("image_std"):
                return [float(v) for v in config["image_mean"]], [float(v) for v in config["image_std"]]
    return None


def load_eval_datasets(
    dataset: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    train_split: str = "train",
    eval_split: str = "test",
    normalization: tuple[list[float], list[float]] | None = None,
):  # noqa: ANN201
    """Train and eval splits of a dataset with the *eval* transform on both (no augmentation: features are
    extracted once), via ``icd_hf.data.build_datasets``. Returns ``(train_ds, eval_ds, info)``."""
    from icd_hf.data import build_datasets

    mean, std = normalization if normalization is not None else (None, None)
    return build_datasets(
        dataset,
        data_dir=data_dir,
        image_size=image_size,
        train_augment=False,
        max_train_samples=max_train_samples,
        max_eval_samples=max_eval_samples,
        train_split=train_split,
        eval_split=eval_split,
        mean=tuple(mean) if mean is not None else None,
        std=tuple(std) if std is not None else None,
    )
