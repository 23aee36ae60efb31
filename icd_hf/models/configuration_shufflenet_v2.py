"""Configuration of the CIFAR ShuffleNetV2 (``shufflenetv2``: RepDistiller's ``ShuffleV2``, net size 1x)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .configuration_common import ZooConfig


class ShuffleNetV2Config(ZooConfig):
    r"""Configuration of ShuffleNetV2 (Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN
    Architecture Design", ECCV 2018) for 32x32 images, as in the CRD benchmark code (HobbitLong/RepDistiller
    ``models/ShuffleNetv2.py``).

    Args:
        out_channels: channels of the three stages and of the final 1x1 conv (``[116, 232, 464, 1024]``: 1x).
        num_blocks: basic units per stage after its down-sampling unit (``[3, 7, 3]``).
        split_ratio: fraction of channels routed through the identity branch of a basic unit.
        **kwargs: ``ZooConfig``'s ``num_channels``, ``architecture_name``, ``num_labels`` and ``PretrainedConfig``'s.
    """

    model_type = "icd_shufflenet_v2"

    def __init__(
        self,
        out_channels: Sequence[int] = (116, 232, 464, 1024),
        num_blocks: Sequence[int] = (3, 7, 3),
        split_ratio: float = 0.5,
        **kwargs: Any,
    ) -> None:
        if len(out_channels) != 4 or len(num_blocks) != 3:
            raise ValueError(
                f"out_channels needs 4 entries (3 stages + head) and num_blocks 3, got {list(out_channels)}, "
                f"{list(num_blocks)}."
            )
        self.out_channels = list(out_channels)
        self.num_blocks = list(num_blocks)
        self.split_ratio = split_ratio
        super().__init__(**kwargs)
