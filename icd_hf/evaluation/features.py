"""Run a frozen model over a dataset and keep what it outputs (penultimate features, logits), cached on disk.

The linear probe (paper table 3) and the logit-correlation analysis (paper figure 1) both need one pass of a
trained model over a whole dataset. That pass is the expensive part, so its result is stored as a
``.safetensors`` file named by a fingerprint of the model weights, the dataset and its transform, and read
back instead of re-running the model when the same fingerprint is asked for again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torch.utils.data.dataloader import default_collate
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

__all__ = [
    "dataset_fingerprint",
    "extract_features",
    "extract_outputs",
    "model_fingerprint",
]

# Bump when the cached layout or the meaning of a cached tensor changes, so old files are not reused.
_CACHE_VERSION = "1"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _hash_tensor(digest: Any, tensor: torch.Tensor) -> None:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
    if flat.numel():
        # Viewing as bytes covers dtypes numpy lacks (bfloat16) and hashes the exact bit pattern.
        digest.update(flat.view(torch.uint8).numpy().tobytes())


def model_fingerprint(model: nn.Module) -> str:
    """A hex digest of a model's class and every parameter and buffer (names, shapes, dtypes and values).

    Two models give the same fingerprint only if they compute the same function, so a cache keyed by it
    never returns the features of another checkpoint.
    """
    digest = hashlib.sha256(type(model).__qualname__.encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        _hash_tensor(digest, tensor)
    return digest.hexdigest()[:32]


def _describe_transform(transform: Any) -> str:
    # A transform's repr normally lists its settings (ImageClassificationTransform does: size, mean, std); the
    # object address in a default repr would change every run and defeat the cache, so it is dropped.
    return _ADDRESS.sub("", repr(transform))


def dataset_fingerprint(data: Any) -> str:
    """A hex digest that identifies the samples ``data`` yields.

    Supported: a ``datasets.Dataset`` (its content fingerprint, length and transform), a ``TensorDataset``
    (its tensors), and a ``DataLoader`` over either.

    Raises:
        TypeError: ``data`` is of another kind; pass ``cache_key=`` to ``extract_outputs`` to name it yourself.
    """
    if isinstance(data, DataLoader):
        return dataset_fingerprint(data.dataset)
    digest = hashlib.sha256(type(data).__qualname__.encode())
    if hasattr(data, "_fingerprint") and hasattr(data, "format"):
        fmt = data.format
        digest.update(str(data._fingerprint).encode())
        digest.update(str(len(data)).encode())
        digest.update(json.dumps({k: v for k, v in fmt.items() if k != "format_kwargs"}, default=str).encode())
        for key, value in sorted((fmt.get("format_kwargs") or {}).items()):
            digest.update(f"{key}={_describe_transform(value)}".encode())
        return digest.hexdigest()[:32]
    if isinstance(data, TensorDataset):
        for tensor in data.tensors:
            _hash_tensor(digest, tensor)
        return digest.hexdigest()[:32]
    raise TypeError(
        f"Cannot fingerprint a {type(data).__name__} for the feature cache: pass cache_key='<name that changes "
        f"whenever the data or its preprocessing does>', or use a datasets.Dataset / TensorDataset."
    )


def _as_loader(data: Any, batch_size: int, num_workers: int) -> Iterable[Any]:
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                          collate_fn=default_collate)
    raise TypeError(
        f"Expected a Dataset or DataLoader, got {type(data).__name__}. Wrap tensors in "
        f"torch.utils.data.TensorDataset(pixel_values, labels)."
    )


def _split_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, Mapping):
        if "pixel_values" not in batch or "labels" not in batch:
            raise KeyError(
                f"Batches need 'pixel_values' and 'labels' (got {sorted(batch)}); prepare the dataset with "
                f"icd_hf.data.build_datasets or ImageClassificationTransform."
            )
        return batch["pixel_values"], batch["labels"]
    if isinstance(batch, Sequence) and len(batch) >= 2:
        return batch[0], batch[1]
    raise TypeError(
        f"Batches must be dicts with 'pixel_values'/'labels' or (images, labels) tuples, got {type(batch).__name__}."
    )


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def _cache_file(cache_path: str | os.PathLike[str], key: str) -> Path:
    path = Path(cache_path)
    # A path ending in .safetensors is the file itself; anything else is a folder holding one file per key.
    return path if path.suffix == ".safetensors" else path / f"{key}.safetensors"


def _read_cache(path: Path, key: str, keys: Sequence[str]) -> dict[str, torch.Tensor] | None:
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        if metadata.get("fingerprint") != key:
            logger.info("feature cache %s was made for other inputs; recomputing", path)
            return None
        stored = set(f.keys())
        if not set(keys) | {"labels"} <= stored:
            return None
        return {name: f.get_tensor(name) for name in (*keys, "labels")}


@torch.no_grad()
def extract_outputs(
    model: nn.Module,
    dataset_or_loader: Any,
    *,
    keys: Sequence[str] = ("pooler_output",),
    batch_size: int = 256,
    device: str | torch.device | None = None,
    cache_path: str | os.PathLike[str] | None = None,
    cache_key: str | None = None,
    num_workers: int = 0,
    progress: bool = True,
    desc: str | None = None,
) -> dict[str, torch.Tensor]:
    """One no-grad, eval-mode pass of ``model`` over a dataset, returning the requested output fields.

    Args:
        model: any module whose ``forward(pixel_values=...)`` returns a ``DistillationModelOutput`` (or another
            object/dict with the named fields).
        dataset_or_loader: a ``DataLoader``, or a dataset whose rows are ``{"pixel_values", "labels"}`` dicts or
            ``(image, label)`` tuples (batched here with ``batch_size``, in order).
        keys: output fields to keep, e.g. ``("pooler_output", "logits")``.
        batch_size: batch size when a dataset (not a loader) is given.
        device: where to run; default the model's current device. The model is moved there.
        cache_path: a folder (one ``<fingerprint>.safetensors`` per model/dataset/keys) or a ``.safetensors``
            file. When the file exists with the same fingerprint, it is read and the model is not run.
        cache_key: overrides the dataset part of the fingerprint (for data that cannot be fingerprinted).
        num_workers: ``DataLoader`` workers when a dataset is given.
        progress: show a tqdm progress bar.
        desc: label of the progress bar.

    Returns:
        ``{key: (N, ...) float32 CPU tensor for each key, "labels": (N,) int64}`` in dataset order.
    """
    keys = tuple(keys)
    if not keys:
        raise ValueError("keys is empty: name at least one output field, e.g. keys=('pooler_output',).")
    cache_file = None
    fingerprint = None
    if cache_path is not None:
        data_part = cache_key if cache_key is not None else dataset_fingerprint(dataset_or_loader)
        raw = "|".join([_CACHE_VERSION, model_fingerprint(model), data_part, ",".join(sorted(keys))])
        fingerprint = hashlib.sha256(raw.encode()).hexdigest()[:32]
        cache_file = _cache_file(cache_path, fingerprint)
        cached = _read_cache(cache_file, fingerprint, keys)
        if cached is not None:
            logger.info("read cached %s from %s", ", ".join(keys), cache_file)
            return cached

    device = torch.device(device) if device is not None else _model_device(model)
    was_training = model.training
    model.to(device).eval()
    collected: dict[str, list[torch.Tensor]] = {key: [] for key in (*keys, "labels")}
    loader = _as_loader(dataset_or_loader, batch_size, num_workers)
    try:
        for batch in tqdm(loader, desc=desc or "extracting " + ", ".join(keys), disable=not progress):
            pixel_values, labels = _split_batch(batch)
            outputs = model(pixel_values=pixel_values.to(device, non_blocking=True))
            for key in keys:
                value = outputs.get(key) if isinstance(outputs, Mapping) else getattr(outputs, key, None)
                if value is None:
                    raise KeyError(
                        f"The model output has no {key!r}. Models must return a DistillationModelOutput with "
                        f"logits and pooler_output (see icd_hf.models.modeling_outputs)."
                    )
                collected[key].append(value.detach().float().cpu())
            collected["labels"].append(torch.as_tensor(labels).long().cpu())
    finally:
        model.train(was_training)
    if not collected["labels"]:
        raise ValueError("The dataset is empty: nothing to extract features from.")
    result = {key: torch.cat(chunks).contiguous() for key, chunks in collected.items()}
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a crash or a concurrent reader never sees half a file.
        tmp = cache_file.with_name(cache_file.name + f".tmp{os.getpid()}")
        save_file(result, str(tmp), metadata={"fingerprint": fingerprint, "keys": ",".join(keys),
                                             "model_class": type(model).__name__})
        os.replace(tmp, cache_file)
        logger.info("cached %s to %s", ", ".join(keys), cache_file)
    return result


def extract_features(
    model: nn.Module,
    dataset_or_loader: Any,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    cache_path: str | os.PathLike[str] | None = None,
    *,
    key: str = "pooler_output",
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features (``pooler_output``, ``(N, D)``) and labels ``(N,)`` of a frozen model over a dataset.

    A thin wrapper of :func:`extract_outputs` (same caching and arguments); ``key="logits"`` gives the logits.

    Example:
        >>> feats, labels = extract_features(student, eval_ds, batch_size=512, cache_path=".cache/features")
    """
    out = extract_outputs(model, dataset_or_loader, keys=(key,), batch_size=batch_size, device=device,
                          cache_path=cache_path, **kwargs)
    return out[key], out["labels"]
