"""Configuration of the 4-stage CIFAR ResNets of RepDistiller's ``resnetv2.py`` (``resnet50``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import PretrainedConfig

from .configuration_common import with_default_num_labels


class ResNet50CifarConfig(PretrainedConfig):
    r"""Configuration of an ImageNet-width ResNet adapted to 32x32 images (He et al., "Deep Residual Learning for
    Image Recognition", CVPR 2016): a 3x3 stride-1 stem, no max-pool, four stages of 64/128/256/512 planes, as
    in the CRD benchmark code (HobbitLong/RepDistiller ``models/resnetv2.py``).

    Args:
        block_type: ``"bottleneck"`` (ResNet-50: expansion 4) or ``"basic"`` (ResNet-18/34 layouts).
        num_blocks: blocks per stage (``[3, 4, 6, 3]`` for ResNet-50).
        zero_init_residual: start every residual branch's last BN at zero (off in the benchmark).
        num_channels: input image channels.
        architecture_name: the zoo name this config was built for (``"resnet50"``).
        num_labels: number of classes (100 when neither it nor ``id2label`` is given).
    """

    model_type = "icd_resnet50_cifar"

    def __init__(
        self,
        block_type: str = "bottleneck",
        num_blocks: Sequence[int] = (3, 4, 6, 3),
        zero_init_residual: bool = False,
        num_channels: int = 3,
        architecture_name: str | None = None,
        num_labels: int | None = None,
        **kwargs: Any,
    ) -> None:
        if block_type not in ("basic", "bottleneck"):
            raise ValueError(f"block_type must be 'basic' or 'bottleneck', got {block_type!r}.")
        if len(num_blocks) != 4 or min(num_blocks) < 1:
            raise ValueError(f"num_blocks must give 4 stages of at least one block, got {list(num_blocks)}.")
        self.block_type = block_type
        self.num_blocks = list(num_blocks)
        self.zero_init_residual = zero_init_residual
        self.num_channels = num_channels
        self.architecture_name = architecture_name
        super().__init__(**with_default_num_labels(num_labels, kwargs))


__all__ = ["ResNet50CifarConfig"]
