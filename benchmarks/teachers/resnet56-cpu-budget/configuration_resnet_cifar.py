"""Configuration of the CIFAR ResNets (``resnet8`` ... ``resnet110``, ``resnet8x4``, ``resnet32x4``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import PretrainedConfig

from .configuration_common import with_default_num_labels


class ResNetCifarConfig(PretrainedConfig):
    r"""Configuration of a 3-stage CIFAR ResNet (He et al., "Deep Residual Learning for Image Recognition",
    CVPR 2016, section 4.2), as in the CRD benchmark code (HobbitLong/RepDistiller ``models/resnet.py``).

    Args:
        depth: total depth: ``6n + 2`` for basic blocks, ``9n + 2`` for bottlenecks (``n`` blocks per stage).
        num_filters: ``[stem, stage1, stage2, stage3]`` widths; ``[16, 16, 32, 64]`` for resnet8..110 and
            ``[32, 64, 128, 256]`` for the 4x-wide resnet8x4/resnet32x4.
        block_type: ``"basic"`` (two 3x3 convs) or ``"bottleneck"`` (1x1-3x3-1x1, expansion 4).
        num_channels: input image channels.
        architecture_name: the zoo name this config was built for (``"resnet56"``).
        num_labels: number of classes (100 when neither it nor ``id2label`` is given).
    """

    model_type = "icd_resnet_cifar"

    def __init__(
        self,
        depth: int = 8,
        num_filters: Sequence[int] = (16, 16, 32, 64),
        block_type: str = "basic",
        num_channels: int = 3,
        architecture_name: str | None = None,
        num_labels: int | None = None,
        **kwargs: Any,
    ) -> None:
        if block_type not in ("basic", "bottleneck"):
            raise ValueError(f"block_type must be 'basic' or 'bottleneck', got {block_type!r}.")
        per_block = 2 if block_type == "basic" else 3
        if (depth - 2) % (3 * per_block) != 0 or depth < 2 + 3 * per_block:
            raise ValueError(
                f"A CIFAR ResNet with {block_type} blocks needs depth = {3 * per_block}n + 2 (n >= 1), got {depth}."
            )
        if len(num_filters) != 4:
            raise ValueError(f"num_filters must list 4 widths [stem, stage1, stage2, stage3], got {list(num_filters)}.")
        self.depth = depth
        self.num_filters = list(num_filters)
        self.block_type = block_type
        self.num_channels = num_channels
        self.architecture_name = architecture_name
        super().__init__(**with_default_num_labels(num_labels, kwargs))


__all__ = ["ResNetCifarConfig"]
