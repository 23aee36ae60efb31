"""Configuration of the CIFAR MobileNetV2 (``mobilenetv2``: RepDistiller's ``mobile_half``, width 0.5)."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig


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
        # A default `num_labels` would overwrite the `id2label` of a saved config on reload: only fall back to the
        # CIFAR-100 head when no label information is given at all.
        if num_labels is None and kwargs.get("id2label") is None:
            num_labels = 100
        if num_labels is not None:
            kwargs["num_labels"] = num_labels
        super().__init__(**kwargs)


__all__ = ["MobileNetV2CifarConfig"]
