"""Batch transforms applied lazily through ``Dataset.with_transform``: CIFAR-style augmentation + normalisation.

They work on uint8 tensors of a whole batch (``datasets`` hands a transform all rows a DataLoader asks for at
once), crop/flip before converting to float, and give the same result as the torchvision pipeline
``RandomCrop(size, padding) -> RandomHorizontalFlip() -> ToTensor() -> Normalize(mean, std)`` (zero padding,
crop offsets uniform in ``[0, 2 * padding]``, flip with probability 0.5).

Randomness comes from torch's global generator (seeded by ``Trainer``'s ``set_seed`` and per DataLoader worker),
or from an explicit ``generator`` for reproducible tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .images import pil_to_uint8, resize_uint8

__all__ = ["ImageClassificationTransform", "normalize", "random_crop", "random_horizontal_flip", "to_uint8_batch"]


def to_uint8_batch(images: Sequence[Any], image_size: int | None = None) -> torch.Tensor:
    """Stack decoded images (PIL, or HWC uint8 arrays) into a ``(B, 3, H, W)`` uint8 tensor.

    Images of different sizes need ``image_size``; each is resized (bilinear, antialiased) to that square side.
    """
    tensors = [torch.from_numpy(np.array(pil_to_uint8(im), copy=True)).permute(2, 0, 1) for im in images]
    if image_size is not None:
        return torch.stack([resize_uint8(t, image_size) for t in tensors])
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(
            f"A batch mixes image sizes {sorted(shapes)[:4]}; set image_size (--image_size N) to resize them."
        )
    return torch.stack(tensors)


def random_crop(
    images: torch.Tensor, size: int | tuple[int, int], padding: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero-pad each side by ``padding`` and take a random ``size`` crop (side or ``(h, w)``) per image."""
    crop_h, crop_w = (size, size) if isinstance(size, int) else size
    if padding:
        images = F.pad(images, (padding, padding, padding, padding))
    height, width = images.shape[-2:]
    if height < crop_h or width < crop_w:
        raise ValueError(f"Cannot crop {crop_h}x{crop_w} from padded images of {height}x{width}.")
    n = images.shape[0]
    tops = torch.randint(0, height - crop_h + 1, (n,), generator=generator).tolist()
    lefts = torch.randint(0, width - crop_w + 1, (n,), generator=generator).tolist()
    return torch.stack([img[:, t : t + crop_h, x : x + crop_w] for img, t, x in zip(images, tops, lefts)])


def random_horizontal_flip(
    images: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Mirror each image of ``(B, C, H, W)`` left-right with probability ``p``."""
    flip = torch.rand(images.shape[0], generator=generator) < p
    if flip.any():
        images = images.clone()
        images[flip] = images[flip].flip(-1)
    return images


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` -> float32 ``(x / 255 - mean) / std`` per channel (``ToTensor`` + ``Normalize``)."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (images.to(torch.float32) / 255.0 - mean_t) / std_t


class ImageClassificationTransform:
    """Turn a batch of dataset rows into model inputs: ``pixel_values`` (float, normalised), ``labels``, ``index``.

    Args:
        mean: per-channel mean on the [0, 1] scale.
        std: per-channel standard deviation.
        train: apply the random crop + horizontal flip.
        image_size: resize to this square side first (e.g. 32 to probe STL-10/TIN-200 like CIFAR); ``None``
            keeps the stored size.
        padding: zero padding of the random crop; default ``size // 8`` (4 for 32x32, the CIFAR recipe).
        image_column, label_column, index_column: dataset columns to read.
        generator: optional ``torch.Generator`` for reproducible augmentation.

    Example:
        >>> ds = ds.with_transform(ImageClassificationTransform(info.mean, info.std, train=True))
        >>> ds[0]["pixel_values"].shape
        torch.Size([3, 32, 32])
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        train: bool = False,
        image_size: int | None = None,
        padding: int | None = None,
        image_column: str = "image",
        label_column: str = "label",
        index_column: str = "index",
        generator: torch.Generator | None = None,
    ) -> None:
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got {list(mean)} and {list(std)}.")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {list(std)}.")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.train = train
        self.image_size = image_size
        self.padding = padding
        self.image_column = image_column
        self.label_column = label_column
        self.index_column = index_column
        self.generator = generator

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, torch.Tensor]:
        if self.image_column not in batch:
            raise KeyError(
                f"The dataset has no {self.image_column!r} column (columns: {sorted(batch)}); load it with "
                "icd_hf.data.load_image_dataset, which names the image column 'image'."
            )
        images = to_uint8_batch(batch[self.image_column], self.image_size)
        if self.train:
            height, width = images.shape[-2:]
            padding = min(height, width) // 8 if self.padding is None else self.padding
            images = random_crop(images, (height, width), padding, self.generator)
            images = random_horizontal_flip(images, generator=self.generator)
        out = {"pixel_values": normalize(images, self.mean, self.std)}
        if self.label_column in batch:
            out["labels"] = torch.as_tensor(batch[self.label_column], dtype=torch.long)
        if self.index_column in batch:
            out["index"] = torch.as_tensor(batch[self.index_column], dtype=torch.long)
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(train={self.train}, image_size={self.image_size}, padding={self.padding}, "
            f"mean={self.mean}, std={self.std})"
        )
