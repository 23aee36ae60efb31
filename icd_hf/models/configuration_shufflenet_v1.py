"""Configuration of the CIFAR ShuffleNetV1 (``shufflenetv1``: RepDistiller's ``ShuffleV1``, 3 groups)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .configuration_common import ZooConfig


class ShuffleNetV1Config(ZooConfig):
    r"""Configuration of ShuffleNetV1 (Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural
    Network for Mobile Devices", CVPR 2018) for 32x32 images, as in the CRD benchmark code
    (HobbitLong/RepDistiller ``models/ShuffleNetv1.py``).

    Args:
        out_planes: output channels of the three stages (``[240, 480, 960]`` for 3 groups).
        num_blocks: blocks per stage (``[4, 8, 4]``).
        groups: groups of the pointwise convolutions; every ``out_planes`` entry must be divisible by ``4 * groups``.
        **kwargs: ``ZooConfig``'s ``num_channels``, ``architecture_name``, ``num_labels`` and ``PretrainedConfig``'s.
    """

    model_type = "icd_shufflenet_v1"

    def __init__(
        self,
        out_planes: Sequence[int] = (240, 480, 960),
        num_blocks: Sequence[int] = (4, 8, 4),
        groups: int = 3,
        **kwargs: Any,
    ) -> None:
        if len(out_planes) != 3 or len(num_blocks) != 3:
            raise ValueError(f"out_planes and num_blocks need 3 entries, got {list(out_planes)}, {list(num_blocks)}.")
        self.out_planes = list(out_planes)
        self.num_blocks = list(num_blocks)
        self.groups = groups
        super().__init__(**kwargs)
