"""Vectorised CIFAR augmentation and normalisation on uint8 tensors, on whatever device they live on.

The classic CIFAR pipeline (``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip()``, ``ToTensor()``,
``Normalize(mean, std)``) runs per sample in CPU worker processes. Here a whole batch is cropped, flipped and
normalised with a handful of kernels and no host synchronisation, so the accelerator never waits for data.

Training views are drawn by ``view_crop_flip_params``: a counter-based hash of ``(seed, epoch, sample index)``,
not a stateful generator, so a sample's view in an epoch is the same whatever the batch, the method, the number of
processes or the device (integer arithmetic only, identical on CPU and CUDA): what lets a teacher's outputs be
cached per view (``icd_hf.teacher_cache``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def sample_crop_flip_params(
    num: int,
    padding: int,
    *,
    flip: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``num`` crop offsets and flip decisions, as ``RandomCrop(padding=p)`` + ``RandomHorizontalFlip()``.

    Returns ``(top, left, flipped)``: int64 offsets uniform over ``0..2*padding`` into the padded image (the
    un-shifted crop is ``top == left == padding``) and a bool tensor that is true with probability 0.5
    (always false when ``flip=False``). All three are created on ``device`` (the generator's device).
    """
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    device = torch.device(device) if device is not None else (generator.device if generator is not None else None)
    offsets = torch.randint(0, 2 * padding + 1, (2, num), generator=generator, device=device)
    if flip:
        flipped = torch.randint(0, 2, (num,), generator=generator, device=device, dtype=torch.uint8).bool()
    else:
        flipped = torch.zeros(num, dtype=torch.bool, device=offsets.device)
    return offsets[0], offsets[1], flipped


# What draws the training views; part of a teacher cache's key, so a change of the hash must change this name.
VIEW_GENERATOR = "lowbias32(seed, epoch, index) crop/flip v1"
_MASK32 = 0xFFFFFFFF
_MASK64 = (1 << 64) - 1
# Chris Wellons' "lowbias32" integer hash (hash-prospector): a bijective 32-bit mixer with very low bias.
_MIX_MUL1, _MIX_MUL2 = 0x7FEB352D, 0x846CA68B
_STREAM_TOP, _STREAM_LEFT, _STREAM_FLIP = 0x1B873593, 0xCC9E2D51, 0x85EBCA6B


def _mix32_int(x: int) -> int:
    x &= _MASK32
    x ^= x >> 16
    x = (x * _MIX_MUL1) & _MASK32
    x ^= x >> 15
    x = (x * _MIX_MUL2) & _MASK32
    return x ^ (x >> 16)


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``x * c mod 2**32`` for int64 ``x`` in ``[0, 2**32)``, without overflowing int64 (whose wrap-around is not
    something to rely on across devices): the product is taken 16 bits of ``x`` at a time."""
    low, high = x & 0xFFFF, x >> 16
    return (low * c + (((high * c) & 0xFFFF) << 16)) & _MASK32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    x = x ^ (x >> 16)
    x = _mul32(x, _MIX_MUL1)
    x = x ^ (x >> 15)
    x = _mul32(x, _MIX_MUL2)
    return x ^ (x >> 16)


def _stream_key(stream: int, seed: int, epoch: int) -> int:
    """A 32-bit key per (draw, seed, epoch), folded on the host with Python's exact integers."""
    seed, epoch = seed & _MASK64, epoch & _MASK64
    h = 0x9E3779B9
    for word in (stream, seed & _MASK32, seed >> 32, epoch & _MASK32, epoch >> 32):
        h = _mix32_int(h ^ word)
    return h


def _hash_index(index: torch.Tensor, key: int) -> torch.Tensor:
    """Uniform 32-bit values, one per entry of ``index``, a pure function of ``(key, index)``."""
    index = index.to(torch.int64)
    h = _mix32((index & _MASK32) ^ key)
    return _mix32(h ^ ((index >> 32) & _MASK32) ^ 0x68E31DA4)


def view_crop_flip_params(
    index: torch.Tensor, *, seed: int, epoch: int, padding: int, flip: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The crop offsets and flips of samples ``index`` in ``epoch``: a pure function of ``(seed, epoch, index)``.

    Same distribution as ``sample_crop_flip_params`` (offsets uniform over ``0..2*padding``, up to a bias below
    1e-8; flips with probability 0.5), but counter-based: each value is an integer hash (``lowbias32``) of the
    seed, the epoch and the sample's index, computed with int64 tensor operations that cannot overflow, so the same
    sample gets the same view in any batch, order or process, on the CPU and on CUDA alike.

    Returns ``(top, left, flipped)`` on ``index``'s device.
    """
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    span = 2 * padding + 1
    top = _hash_index(index, _stream_key(_STREAM_TOP, seed, epoch)) % span
    left = _hash_index(index, _stream_key(_STREAM_LEFT, seed, epoch)) % span
    if flip:
        flipped = (_hash_index(index, _stream_key(_STREAM_FLIP, seed, epoch)) >> 31).bool()
    else:
        flipped = torch.zeros(index.shape, dtype=torch.bool, device=index.device)
    return top, left, flipped


def crop_flip_gather(
    images_nhwc: torch.Tensor,
    sample_index: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    flipped: torch.Tensor,
    padding: int,
) -> torch.Tensor:
    """Gather ``images_nhwc[sample_index]`` zero-padded by ``padding``, cropped at ``(top, left)``, flipped.

    One advanced-indexing gather does the batch selection, the crop and the flip at once: output pixel
    ``(i, j)`` of sample ``b`` reads source row ``top[b] - padding + i`` and column ``left[b] - padding + j``
    (mirrored when ``flipped[b]``); coordinates that fall into the padding read 0, like torchvision's
    ``RandomCrop(padding=p)`` with its default ``fill=0``. The crop has the source's size.

    Args:
        images_nhwc: ``(N, H, W, C)`` tensor (any dtype; uint8 in the fast path).
        sample_index: ``(B,)`` int64 indices into ``images_nhwc``.
        top, left: ``(B,)`` int64 offsets in ``0..2*padding``.
        flipped: ``(B,)`` bool, mirror horizontally after cropping.
        padding: the zero padding the offsets refer to.

    Returns:
        ``(B, H, W, C)`` tensor of ``images_nhwc``'s dtype.
    """
    _, height, width, _ = images_nhwc.shape
    device = images_nhwc.device
    rows = top.unsqueeze(1) - padding + torch.arange(height, device=device)  # (B, H)
    cols = left.unsqueeze(1) - padding + torch.arange(width, device=device)  # (B, W)
    # Flip after crop: output column j shows cropped column W-1-j.
    cols = torch.where(flipped.unsqueeze(1), cols.flip(1), cols)
    inside = ((rows >= 0) & (rows < height)).unsqueeze(2) & ((cols >= 0) & (cols < width)).unsqueeze(1)
    out = images_nhwc[
        sample_index.view(-1, 1, 1),
        rows.clamp(0, height - 1).unsqueeze(2),
        cols.clamp(0, width - 1).unsqueeze(1),
    ]
    # Masking (not a padded copy of the data set) keeps device memory at one copy of the split.
    return out * inside.unsqueeze(-1).to(out.dtype)


def gpu_random_crop_flip(
    x_uint8_nchw: torch.Tensor,
    padding: int = 4,
    generator: torch.Generator | None = None,
    *,
    flip: bool = True,
) -> torch.Tensor:
    """Random crop with zero padding + random horizontal flip of a batch, each sample drawn independently.

    The batched, on-device equivalent of ``RandomCrop(size, padding=padding)`` + ``RandomHorizontalFlip()``
    applied to every image. Works for any dtype and device; the random numbers come from ``generator``
    (which must live on ``x``'s device) or the default generator of that device.

    Args:
        x_uint8_nchw: ``(B, C, H, W)`` images.
        padding: zero padding on each side; offsets are uniform over ``0..2*padding`` in both axes.
        generator: source of randomness, for reproducible augmentation.
        flip: also flip with probability 0.5.

    Returns:
        ``(B, C, H, W)`` tensor of the same dtype, in ``channels_last`` memory format.
    """
    if x_uint8_nchw.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(x_uint8_nchw.shape)}")
    batch = x_uint8_nchw.shape[0]
    top, left, flipped = sample_crop_flip_params(
        batch, padding, flip=flip, generator=generator, device=x_uint8_nchw.device
    )
    index = torch.arange(batch, device=x_uint8_nchw.device)
    out = crop_flip_gather(x_uint8_nchw.permute(0, 2, 3, 1), index, top, left, flipped, padding)
    return out.permute(0, 3, 1, 2)


def normalization_table(
    mean: Sequence[float],
    std: Sequence[float],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``(256 * C,)`` lookup table: entry ``v * C + c`` is uint8 value ``v`` of channel ``c`` normalised.

    Computed with exactly the float32 operations of torchvision's ``ToTensor()`` (``x / 255``) and
    ``Normalize(mean, std)`` (``(x - mean) / std``), then cast to ``dtype``: looking values up instead of
    recomputing them makes the fast path bit-identical to the classic pipeline, whatever kernel fusion or
    approximate division a compiler would otherwise apply.
    """
    if len(mean) != len(std):
        raise ValueError(f"mean and std must have one value per channel, got {len(mean)} and {len(std)}")
    if any(s <= 0 for s in std):
        raise ValueError(f"std must be positive, got {list(std)}")
    values = torch.arange(256, dtype=torch.float32).div(255).unsqueeze(1)  # (256, 1)
    mean_t = torch.as_tensor(mean, dtype=torch.float32)
    std_t = torch.as_tensor(std, dtype=torch.float32)
    table = values.sub(mean_t).div(std_t)  # (256, C)
    return table.to(dtype).reshape(-1).to(device)


def normalize_uint8_nhwc(images_nhwc: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Normalise ``(..., C)`` uint8 pixels with a ``normalization_table``; returns the table's dtype."""
    channels = images_nhwc.shape[-1]
    if table.numel() != 256 * channels:
        raise ValueError(
            f"the normalisation table covers {table.numel() // 256} channels but the images have {channels}; "
            f"build it with one mean/std value per channel"
        )
    index = images_nhwc.long() * channels + torch.arange(channels, device=images_nhwc.device)
    return table[index]
