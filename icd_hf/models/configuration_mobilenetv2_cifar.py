"""Configuration of the CIFAR MobileNetV2 (``mobilenetv2``: RepDistiller's ``mobile_half``, width 0.5)."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from .configuration_common import with_default_num_labels


class MobileNetV2CifarConfig(PretrainedConfig):
    r"""Configuration of MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
    CVPR 2018) for 32x32 images, as in the CRD benchmark code (HobbitLong/RepDistiller ``models/mobilenetv2.py``).

    Args:
        expand_ratio: expansion factor T of the inverted residual blocks (6).
        width_mult: channel multiplier (0.5 for the benchmark's ``mobile_half``); the 1280-d head is only
            widened for multipliers above 1.
        num_channels: input image channels.
        architecture_name: the zoo name this config was built for (``"mobilenetv2"``).
        num_labels: number of classes (100 when neither it nor ``id2label`` is given).
    """

    model_type = "icd_mobilenetv2_cifar"

    def __init__(
        self,
        expand_ratio: int = 6,
        width_mult: float = 0.5,
        num_channels: int = 3,
        architecture_name: str | None = None,
        num_labels: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.expand_ratio = expand_ratio
        self.width_mult = width_mult
        self.num_channels = num_channels
        self.architecture_name = architecture_name
        super().__init__(**with_default_num_labels(num_labels, kwargs))


__all__ = ["MobileNetV2CifarConfig"]
