"""``DeviceDataLoader``: a whole image split resident on the accelerator, batched and augmented there."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from .augment import crop_flip_gather, normalization_table, normalize_uint8_nhwc, view_crop_flip_params

# Odd 64-bit multiplier (golden ratio) so that (seed, epoch) pairs map to well separated generator seeds.
_SEED_MIX = 0x9E3779B97F4A7C15
_SEED_MASK = (1 << 63) - 1


def _to_nhwc_uint8(images: Any, channels: int) -> torch.Tensor:
    images = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"images must be a uint8 torch.Tensor or numpy array, got {type(images).__name__}; convert a "
            f"datasets split with icd_hf.data.as_uint8_tensor(dataset)"
        )
    if images.dtype != torch.uint8:
        raise TypeError(
            f"images must be uint8 (raw 0..255 pixels, normalised on the device), got {images.dtype}; pass the "
            f"undecoded pixels, e.g. from icd_hf.data.as_uint8_tensor(dataset)"
        )
    if images.dim() != 4:
        raise ValueError(f"images must be (N, H, W, C) or (N, C, H, W), got shape {tuple(images.shape)}")
    # (N, H, W, C) wins when both axes could be channels: it is what as_uint8_tensor returns.
    if images.shape[-1] == channels:
        return images
    if images.shape[1] == channels:
        return images.permute(0, 2, 3, 1)
    raise ValueError(
        f"images of shape {tuple(images.shape)} have no axis of {channels} channels (one per mean/std "
        f"value); expected (N, H, W, {channels}) or (N, {channels}, H, W)"
    )


class DeviceDataLoader:
    """Iterate over an image classification split kept on ``device`` as uint8, augmenting on the device.

    The split is copied to ``device`` once (CIFAR-100's 50,000 training images are 150 MB as uint8). Each
    epoch draws its permutation on the device from a generator seeded by ``(seed, epoch)``, and every sample's
    view (crop offset and flip) as a pure function of ``(seed, epoch, sample index)`` (``view_crop_flip_params``):
    a sample's view does not depend on the order, the batch, the number of processes or the device, so runs with
    the same seed see the same views whatever the method (paired comparisons), and a teacher's outputs can be
    cached per view. Each batch is then one gather that selects, zero-pads, crops and flips the images
    (``RandomCrop(H, padding)`` + ``RandomHorizontalFlip()`` semantics), a table lookup that normalises them
    exactly as ``ToTensor()`` + ``Normalize(mean, std)`` would, and a ``channels_last`` view. No step reads a
    value back to the host, so the loader never stalls the accelerator's queue.

    Batches are dicts ``{"pixel_values", "labels", "index"}`` like the ones ``icd_hf.data``'s collator
    makes; ``index`` is the position of each sample in ``images`` (for CRD's memory bank).

    Args:
        images: ``(N, H, W, C)`` or ``(N, C, H, W)`` uint8 tensor or numpy array.
        labels: ``(N,)`` integer class ids (tensor, array or list).
        batch_size: samples per batch (per process under distributed training).
        train: training split: shuffle and augment unless told otherwise.
        mean, std: per-channel normalisation, as for ``torchvision.transforms.Normalize``.
        device: where the data lives and the batches are made (``"cuda"``, ``"cpu"``...).
        drop_last: drop the last incomplete batch. Defaults to ``train``.
        shuffle: draw a new permutation each epoch. Defaults to ``train``.
        seed: base seed; epoch ``e`` of two loaders with the same seed (on the same device type) is identical.
        padding: zero padding of the random crop (0 disables cropping). Only used when ``train``.
        flip: random horizontal flips. Only used when ``train``.
        channels_last: return ``pixel_values`` in ``torch.channels_last`` memory format (free: the data is
            stored NHWC), else contiguous NCHW. ``None`` (default): channels_last on CUDA devices, where
            ``prepare_for_speed`` makes the models channels_last too.
        out_dtype: dtype of ``pixel_values`` (e.g. ``torch.bfloat16`` to halve the input's memory traffic).
        num_replicas, rank: split each epoch's permutation across ``num_replicas`` processes (distributed
            data parallel); every process must use the same ``seed``. Without ``drop_last`` the permutation
            is padded by wrapping around so each process gets the same number of samples, as
            ``DistributedSampler`` does.
        on_epoch_start: called as ``on_epoch_start(epoch, order)`` before an epoch's first batch (a resumed
            epoch too), ``order`` being this process's samples of the epoch in batch order (the ones its batches
            use); with it, every batch also carries ``view_epoch`` (the epoch) and ``view_start`` (the position of
            its first sample in ``order``): what a teacher-output cache keys on (``icd_hf.teacher_cache``).

    Call ``set_epoch(e)`` before iterating to pick the epoch (``transformers.Trainer`` does); without it, each
    new iteration moves to the next epoch.
    """

    def __init__(
        self,
        images: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray | Sequence[int],
        batch_size: int,
        *,
        train: bool,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str | None = None,
        drop_last: bool | None = None,
        shuffle: bool | None = None,
        seed: int = 0,
        padding: int = 4,
        flip: bool = True,
        channels_last: bool | None = None,
        out_dtype: torch.dtype = torch.float32,
        num_replicas: int = 1,
        rank: int = 0,
        on_epoch_start: Callable[[int, torch.Tensor], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), got {rank}")
        if not out_dtype.is_floating_point:
            raise ValueError(f"out_dtype must be a floating point dtype, got {out_dtype}")
        self.device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu"
        )
        nhwc = _to_nhwc_uint8(images, len(mean))
        labels_t = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
        if labels_t.dim() != 1 or labels_t.shape[0] != nhwc.shape[0]:
            raise ValueError(
                f"labels must be a 1-D sequence with one entry per image ({nhwc.shape[0]}), "
                f"got shape {tuple(labels_t.shape)}"
            )
        if labels_t.is_floating_point() or labels_t.dtype == torch.bool:
            raise TypeError(f"labels must be integer class ids, got {labels_t.dtype}")
        self.images = nhwc.to(self.device).contiguous()
        self.labels = labels_t.to(device=self.device, dtype=torch.long)
        self.table = normalization_table(mean, std, dtype=out_dtype, device=self.device)
        self.batch_size = batch_size
        self.train = train
        self.shuffle = train if shuffle is None else shuffle
        self.drop_last = train if drop_last is None else drop_last
        self.seed = seed
        self.padding = padding if train else 0
        self.flip = flip and train
        self.channels_last = self.device.type == "cuda" if channels_last is None else channels_last
        self.out_dtype = out_dtype
        self.num_replicas = num_replicas
        self.rank = rank
        self.on_epoch_start = on_epoch_start
        self.epoch = 0
        self._skip_batches = 0

    # ------------------------------------------------------------------ sizes
    @property
    def num_images(self) -> int:
        """Images in the whole split."""
        return self.images.shape[0]

    @property
    def num_samples(self) -> int:
        """Samples this process sees per epoch (before batching)."""
        if self.num_replicas == 1:
            return self.num_images
        if self.drop_last:
            return self.num_images // self.num_replicas
        return math.ceil(self.num_images / self.num_replicas)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    @property
    def augments(self) -> bool:
        return self.padding > 0 or self.flip

    # ------------------------------------------------------------------ epochs
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch the next iteration yields (its permutation and augmentations)."""
        self.epoch = int(epoch)

    def skip_first_batches(self, num_batches: int) -> DeviceDataLoader:
        """Make the next iteration start after ``num_batches`` batches (resuming mid-epoch); returns ``self``.

        The skipped batches are never built: only the epoch's permutation is drawn, so resuming costs nothing.
        """
        if num_batches < 0:
            raise ValueError(f"num_batches must be >= 0, got {num_batches}")
        self._skip_batches = int(num_batches)
        return self

    def epoch_generator(self, epoch: int) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed((self.seed * _SEED_MIX + epoch) & _SEED_MASK)
        return generator

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None]:
        """This process's sample order for ``epoch`` and its augmentation parameters (``None`` if none).

        Everything is drawn at once at the start of the epoch: the per-batch work is then only slicing. The
        permutation comes from the epoch's generator; each view from ``(seed, epoch, index)`` alone.
        """
        generator = self.epoch_generator(epoch)
        n = self.num_images
        if self.shuffle:
            order = torch.randperm(n, generator=generator, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        if self.num_replicas > 1:
            total = self.num_samples * self.num_replicas
            if total > n:
                order = order.repeat(math.ceil(total / n))
            order = order[self.rank : total : self.num_replicas]
        params = None
        if self.augments:
            params = view_crop_flip_params(order, seed=self.seed, epoch=epoch, padding=self.padding, flip=self.flip)
        return order, params

    # ------------------------------------------------------------------ batches
    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch, skip = self.epoch, self._skip_batches
        # Without set_epoch the next pass is a new epoch, so looping twice never repeats the same batches.
        self.epoch, self._skip_batches = epoch + 1, 0
        return self._batches(epoch, skip)

    def _batches(self, epoch: int, skip: int) -> Iterator[dict[str, Any]]:
        order, params = self.epoch_plan(epoch)
        num_samples = order.shape[0]
        if self.on_epoch_start is not None:
            self.on_epoch_start(epoch, order[: min(len(self) * self.batch_size, num_samples)])
        for b in range(skip, len(self)):
            start, stop = b * self.batch_size, min((b + 1) * self.batch_size, num_samples)
            index = order[start:stop]
            if params is None:
                pixels = self.images[index]
            else:
                top, left, flipped = (p[start:stop] for p in params)
                pixels = crop_flip_gather(self.images, index, top, left, flipped, self.padding)
            pixel_values = normalize_uint8_nhwc(pixels, self.table).permute(0, 3, 1, 2)
            if not self.channels_last:
                pixel_values = pixel_values.contiguous()
            batch = {"pixel_values": pixel_values, "labels": self.labels[index], "index": index}
            if self.on_epoch_start is not None:
                batch.update(view_epoch=epoch, view_start=start)
            yield batch

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_images={self.num_images}, batch_size={self.batch_size}, "
            f"train={self.train}, augment={self.augments}, device={self.device}, batches={len(self)})"
        )
