"""Configuration of the CIFAR VGG networks with BatchNorm (``vgg8``, ``vgg11``, ``vgg13``, ``vgg16``, ``vgg19``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .configuration_common import ZooConfig

# Channels of the convolutions of the five blocks (pooling between blocks), per depth, as in RepDistiller.
VGG_CIFAR_BLOCKS: dict[int, list[list[int]]] = {
    8: [[64], [128], [256], [512], [512]],
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    19: [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


class VGGCifarConfig(ZooConfig):
    r"""Configuration of a CIFAR VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
    Recognition", ICLR 2015) with BatchNorm, as in the CRD benchmark code (HobbitLong/RepDistiller
    ``models/vgg.py``, the ``vgg*_bn`` variants): five conv blocks and a single linear classifier.

    Args:
        block_channels: output channels of each 3x3 conv, grouped in 5 blocks (see ``VGG_CIFAR_BLOCKS``).
        batch_norm: BatchNorm after every conv (True in the benchmark).
        **kwargs: ``ZooConfig``'s ``num_channels``, ``architecture_name``, ``num_labels`` and ``PretrainedConfig``'s.
    """

    model_type = "icd_vgg_cifar"

    def __init__(
        self,
        block_channels: Sequence[Sequence[int]] = tuple(tuple(b) for b in VGG_CIFAR_BLOCKS[13]),
        batch_norm: bool = True,
        **kwargs: Any,
    ) -> None:
        if len(block_channels) != 5 or any(len(block) == 0 for block in block_channels):
            raise ValueError(f"block_channels must list 5 non-empty blocks of conv widths, got {block_channels}.")
        self.block_channels = [[int(c) for c in block] for block in block_channels]
        self.batch_norm = batch_norm
        super().__init__(**kwargs)
