"""Configuration of the CIFAR Wide Residual Networks (``wrn_40_2``, ``wrn_16_2``, ``wrn_40_1``, ``wrn_16_1``)."""

from __future__ import annotations

from typing import Any

from .configuration_common import ZooConfig


class WideResNetConfig(ZooConfig):
    r"""Configuration of a pre-activation Wide ResNet for 32x32 images (Zagoruyko & Komodakis, "Wide Residual
    Networks", BMVC 2016), as in the CRD benchmark code (HobbitLong/RepDistiller ``models/wrn.py``).

    Args:
        depth: total depth; ``(depth - 4)`` must be divisible by 6 (``n = (depth - 4) / 6`` blocks per stage).
        widen_factor: channel multiplier k; the stages have ``16k, 32k, 64k`` channels.
        dropout_rate: dropout between the two convolutions of a block (0 in the benchmark).
        **kwargs: ``ZooConfig``'s ``num_channels``, ``architecture_name``, ``num_labels`` and ``PretrainedConfig``'s.
    """

    model_type = "icd_wrn"

    def __init__(
        self,
        depth: int = 40,
        widen_factor: int = 2,
        dropout_rate: float = 0.0,
        **kwargs: Any,
    ) -> None:
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"WideResNet depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40...), got {depth}.")
        self.depth = depth
        self.widen_factor = widen_factor
        self.dropout_rate = dropout_rate
        super().__init__(**kwargs)
