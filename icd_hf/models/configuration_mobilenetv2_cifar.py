"""Configuration of the CIFAR MobileNetV2 (``mobilenetv2``: RepDistiller's ``mobile_half``, width 0.5)."""

from __future__ import annotations

from typing import Any

from .configuration_common import ZooConfig


class MobileNetV2CifarConfig(ZooConfig):
    r"""Configuration of MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
    CVPR 2018) for 32x32 images, as in the CRD benchmark code (HobbitLong/RepDistiller ``models/mobilenetv2.py``).

    Args:
        expand_ratio: expansion factor T of the inverted residual blocks (6).
        width_mult: channel multiplier (0.5 for the benchmark's ``mobile_half``); the 1280-d head is only
            widened for multipliers above 1.
        **kwargs: ``ZooConfig``'s ``num_channels``, ``architecture_name``, ``num_labels`` and ``PretrainedConfig``'s.
    """

    model_type = "icd_mobilenetv2_cifar"

    def __init__(
        self,
        expand_ratio: int = 6,
        width_mult: float = 0.5,
        **kwargs: Any,
    ) -> None:
        self.expand_ratio = expand_ratio
        self.width_mult = width_mult
        super().__init__(**kwargs)
