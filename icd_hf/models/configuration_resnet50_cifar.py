"""Configuration of the 4-stage CIFAR ResNets of RepDistiller's ``resnetv2.py`` (``resnet50``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .configuration_common import ZooConfig


class ResNet50CifarConfig(ZooConfig):
    r"""Configuration of an ImageNet-width ResNet adapted to 32x32 images (He et al., "Deep Residual Learning for
    Image Recognition", CVPR 2016): a 3x3 stride-1 stem, no max-pool, four stages of 64/128/256/512 planes, as
    in the CRD benchmark code (HobbitLong/RepDistiller ``models/resnetv2.py``).

    Args:
        block_type: ``"bottleneck"`` (ResNet-50: expansion 4) or ``"basic"`` (ResNet-18/34 layouts).
        num_blocks: blocks per stage (``[3, 4, 6, 3]`` for ResNet-50).
        zero_init_residual: start every residual branch's last BN at zero (off in the benchmark).
        **kwargs: ``ZooConfig``'s ``num_channels``, ``architecture_name``, ``num_labels`` and ``PretrainedConfig``'s.
    """

    model_type = "icd_resnet50_cifar"

    def __init__(
        self,
        block_type: str = "bottleneck",
        num_blocks: Sequence[int] = (3, 4, 6, 3),
        zero_init_residual: bool = False,
        **kwargs: Any,
    ) -> None:
        if block_type not in ("basic", "bottleneck"):
            raise ValueError(f"block_type must be 'basic' or 'bottleneck', got {block_type!r}.")
        if len(num_blocks) != 4 or min(num_blocks) < 1:
            raise ValueError(f"num_blocks must give 4 stages of at least one block, got {list(num_blocks)}.")
        self.block_type = block_type
        self.num_blocks = list(num_blocks)
        self.zero_init_residual = zero_init_residual
        super().__init__(**kwargs)
