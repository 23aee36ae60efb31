"""MobileNetV2 for CIFAR as a transformers model, layer for layer the CRD benchmark's ``models/mobilenetv2.py``.

Module names match HobbitLong/RepDistiller, so its ``state_dict``s load with ``model.load_state_dict``.
"""

from __future__ import annotations

import torch
from torch import nn

from .configuration_mobilenetv2_cifar import MobileNetV2CifarConfig
from .modeling_common import (
    FeatureMap,
    ZooPreTrainedModel,
    init_conv_kaiming_fan_out,
    init_linear_normal,
    init_zoo_module,
)
from .registry import register_model

# (expansion t, output channels c, repeats n, first stride s); t=None means "the config's expand_ratio"
_INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1),
    (None, 24, 2, 1),
    (None, 32, 3, 2),
    (None, 64, 4, 2),
    (None, 96, 3, 1),
    (None, 160, 3, 2),
    (None, 320, 1, 1),
]


class InvertedResidual(nn.Module):
    """Pointwise expansion - depthwise 3x3 - linear pointwise projection, with identity shortcut when shapes
    allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, 1, 0, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2CifarForImageClassification(ZooPreTrainedModel):
    """MobileNetV2 (Sandler et al., CVPR 2018) for CIFAR, CRD-benchmark variant (stride-2 stem, 1280-d head).

    ``hidden_states`` are RepDistiller's ``is_feat`` maps: the stem (after its ReLU) and the outputs of block
    groups 1, 2, 4 and 6 (at 16, 8, 4 and 2 pixels). Those are linear bottlenecks with no activation, so
    ``preact_hidden_states`` equal them except for the stem (its BN output).
    """

    config_class = MobileNetV2CifarConfig
    classifier_name = "classifier"
    # The block groups (of `blocks`) whose outputs are the stage maps: RepDistiller's feature taps.
    stage_groups = ((0, 1), (2,), (3, 4), (5, 6))
    num_stages = len(stage_groups)
    _no_split_modules = ["InvertedResidual"]

    def __init__(self, config: MobileNetV2CifarConfig) -> None:
        super().__init__(config)
        width = config.width_mult
        input_channel = int(32 * width)
        # Not in-place: the stem's BN output is returned as its pre-activation.
        self.conv1 = nn.Sequential(
            nn.Conv2d(config.num_channels, input_channel, 3, 2, 1, bias=False),
            nn.BatchNorm2d(input_channel),
            nn.ReLU(inplace=False),
        )
        self.blocks = nn.ModuleList()
        for t, c, n, s in _INVERTED_RESIDUAL_SETTING:
            output_channel = int(c * width)
            layers = []
            for stride in [s] + [1] * (n - 1):
                layers.append(InvertedResidual(input_channel, output_channel, stride, t or config.expand_ratio))
                input_channel = output_channel
            self.blocks.append(nn.Sequential(*layers))
        self.last_channel = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = nn.Sequential(
            nn.Conv2d(input_channel, self.last_channel, 1, 1, 0, bias=False),
            nn.BatchNorm2d(self.last_channel),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(nn.Linear(self.last_channel, config.num_labels))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # RepDistiller: N(0, sqrt(2 / (k*k*out))) convs, unit BN, N(0, 0.01) classifier with zero bias.
        init_zoo_module(module, conv=init_conv_kaiming_fan_out, linear=init_linear_normal)

    def forward_stem(self, pixel_values: torch.Tensor) -> FeatureMap:
        conv, bn, relu = self.conv1
        preact = bn(conv(pixel_values))
        return relu(preact), preact

    def forward_stage(self, index: int, x: torch.Tensor) -> FeatureMap:
        # Linear bottlenecks: a stage map has no activation, so it is its own pre-activation.
        for block in self.stage_groups[index]:
            x = self.blocks[block](x)
        return x, x

    def forward_pool(self, features: torch.Tensor) -> torch.Tensor:
        # The reference's AvgPool2d(2, ceil_mode=True) on the 2x2 map of a 32-pixel input is a global mean.
        return super().forward_pool(self.conv2(features))


@register_model
def mobilenetv2(num_classes: int = 100, **kwargs) -> MobileNetV2CifarForImageClassification:
    """MobileNetV2 at width 0.5, expansion 6 (RepDistiller's ``mobile_half``)."""
    config = MobileNetV2CifarConfig(num_labels=num_classes, architecture_name="mobilenetv2", **kwargs)
    return MobileNetV2CifarForImageClassification(config)
