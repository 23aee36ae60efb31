"""The fast path: data resident on the accelerator, on-device augmentation, channels_last, compile, fused SGD.

``DeviceDataLoader`` (``loader``, with ``augment``) replaces the CPU ``DataLoader`` + collator for image
classification splits that fit in device memory (CIFAR, Tiny ImageNet); ``prepare_for_speed`` (``prepare``) and
``build_sgd``/``sgd_kwargs`` (``optim``) set up the model and optimiser; ``device`` says what the device can do
and ``precision`` picks the numeric mode. Training views are a pure function of ``(seed, epoch, sample index)``
(``view_crop_flip_params``), which is what ``icd_hf.teacher_cache`` keys a teacher's outputs on. Every piece is
device-agnostic and tested on the CPU; the speed-up is on GPUs and on CPUs with native bf16 (AMX-BF16 /
AVX512-BF16), where ``choose_fast_path_precision`` turns on bf16 autocast and channels_last.
"""

from .augment import (
    VIEW_GENERATOR,
    crop_flip_gather,
    gpu_random_crop_flip,
    normalization_table,
    normalize_uint8_nhwc,
    sample_crop_flip_params,
    view_crop_flip_params,
)
from .device import bf16_supported, configure_cuda_backends, cpu_bf16_instructions, resolve_device, synchronize
from .loader import DeviceDataLoader
from .optim import build_sgd, fused_sgd_available, sgd_kwargs
from .precision import FastPathPrecision, autocast_context, channels_last_pays, choose_fast_path_precision
from .prepare import is_compiled, prepare_for_speed

__all__ = [
    "VIEW_GENERATOR",
    "DeviceDataLoader",
    "FastPathPrecision",
    "autocast_context",
    "bf16_supported",
    "build_sgd",
    "channels_last_pays",
    "choose_fast_path_precision",
    "configure_cuda_backends",
    "cpu_bf16_instructions",
    "crop_flip_gather",
    "fused_sgd_available",
    "gpu_random_crop_flip",
    "is_compiled",
    "normalization_table",
    "normalize_uint8_nhwc",
    "prepare_for_speed",
    "resolve_device",
    "sample_crop_flip_params",
    "sgd_kwargs",
    "synchronize",
    "view_crop_flip_params",
]
