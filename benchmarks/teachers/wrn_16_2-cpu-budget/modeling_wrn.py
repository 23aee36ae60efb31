"""Wide ResNets for CIFAR as transformers models, layer for layer the CRD benchmark's ``models/wrn.py``.

Module names match HobbitLong/RepDistiller, so its ``state_dict``s load with ``model.load_state_dict``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_wrn import WideResNetConfig
from .modeling_common import (
    FeatureMap,
    ZooPreTrainedModel,
    init_conv_kaiming_fan_out,
    init_torch_default_zero_bias,
    init_zoo_module,
)
from .registry import register_model


class WideResNetBasicBlock(nn.Module):
    """Pre-activation block BN-ReLU-conv3x3-BN-ReLU-conv3x3; a 1x1 conv shortcut (on the activated input) when
    the width or resolution changes."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, dropout_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        # not in-place: the normalised input is returned as the previous stage's pre-activation
        self.relu1 = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.dropout_rate = dropout_rate
        self.equal_in_out = in_planes == out_planes
        # camelCase is RepDistiller's parameter name, kept so its checkpoints load
        self.convShortcut = (
            None
            if self.equal_in_out
            else nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, padding=0, bias=False)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the block output and ``bn1(x)``, the pre-activation of the input."""
        preact = self.bn1(x)
        act = self.relu1(preact)
        out = self.relu2(self.bn2(self.conv1(act)))
        if self.dropout_rate > 0:
            out = F.dropout(out, p=self.dropout_rate, training=self.training)
        out = self.conv2(out)
        shortcut = x if self.convShortcut is None else self.convShortcut(act)
        return shortcut + out, preact


class WideResNetStage(nn.Module):
    """``nb_layers`` blocks; the first one changes width/resolution (RepDistiller's ``NetworkBlock``)."""

    def __init__(self, nb_layers: int, in_planes: int, out_planes: int, stride: int, dropout_rate: float) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *[
                WideResNetBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1,
                                     dropout_rate)
                for i in range(nb_layers)
            ]
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the stage output and the pre-activation of the stage *input* (its first block's ``bn1``)."""
        input_preact = None
        for i, block in enumerate(self.layer):
            x, preact = block(x)
            if i == 0:
                input_preact = preact
        return x, input_preact


class WideResNetForImageClassification(ZooPreTrainedModel):
    """Wide ResNet-(depth)-(k) for CIFAR (Zagoruyko & Komodakis, BMVC 2016), CRD-benchmark variant.

    ``hidden_states`` are RepDistiller's ``is_feat`` maps: the stem conv output and the raw output of each stage.
    The network is pre-activation, so a stage output has no activation of its own; ``preact_hidden_states`` are
    those maps after the BatchNorm that precedes the next ReLU (RepDistiller's ``preact=True``), i.e. the
    responses that ReLU gates. The stem entry is the same in both.
    """

    config_class = WideResNetConfig
    num_stages = 3  # block1..block3, wired by forward_features
    _no_split_modules = ["WideResNetBasicBlock"]

    def __init__(self, config: WideResNetConfig) -> None:
        super().__init__(config)
        n = (config.depth - 4) // 6
        channels = [16, 16 * config.widen_factor, 32 * config.widen_factor, 64 * config.widen_factor]
        self.conv1 = nn.Conv2d(config.num_channels, channels[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = WideResNetStage(n, channels[0], channels[1], 1, config.dropout_rate)
        self.block2 = WideResNetStage(n, channels[1], channels[2], 2, config.dropout_rate)
        self.block3 = WideResNetStage(n, channels[2], channels[3], 2, config.dropout_rate)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.relu = nn.ReLU(inplace=False)
        self.fc = nn.Linear(channels[3], config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # RepDistiller: He-normal (fan_out) convs, unit BN, PyTorch-default linear weight with a zero bias.
        init_zoo_module(module, conv=init_conv_kaiming_fan_out, linear=init_torch_default_zero_bias)

    def forward_features(
        self, pixel_values: torch.Tensor, feature_maps: list[FeatureMap] | None = None
    ) -> torch.Tensor:
        # Pre-activation wiring: a stage's BN-ReLU opens the *next* stage, so each map's pre-activation comes back
        # from the stage after it (the last one's from the final BN, whose ReLU output the head pools).
        f0 = self.conv1(pixel_values)
        f1, _ = self.block1(f0)
        f2, f1_pre = self.block2(f1)
        f3, f2_pre = self.block3(f2)
        f3_pre = self.bn1(f3)
        if feature_maps is not None:
            feature_maps.extend(((f0, f0), (f1, f1_pre), (f2, f2_pre), (f3, f3_pre)))
        return self.relu(f3_pre)


def _wrn(name: str, depth: int, widen_factor: int, num_classes: int, **kwargs) -> WideResNetForImageClassification:
    config = WideResNetConfig(
        depth=depth, widen_factor=widen_factor, num_labels=num_classes, architecture_name=name, **kwargs
    )
    return WideResNetForImageClassification(config)


@register_model
def wrn_40_2(num_classes: int = 100, **kwargs) -> WideResNetForImageClassification:
    """WRN-40-2 (2.26M parameters with 100 classes): the benchmark's WRN teacher."""
    return _wrn("wrn_40_2", 40, 2, num_classes, **kwargs)


@register_model
def wrn_16_2(num_classes: int = 100, **kwargs) -> WideResNetForImageClassification:
    """WRN-16-2 (0.70M parameters)."""
    return _wrn("wrn_16_2", 16, 2, num_classes, **kwargs)


@register_model
def wrn_40_1(num_classes: int = 100, **kwargs) -> WideResNetForImageClassification:
    """WRN-40-1 (0.57M parameters)."""
    return _wrn("wrn_40_1", 40, 1, num_classes, **kwargs)


@register_model
def wrn_16_1(num_classes: int = 100, **kwargs) -> WideResNetForImageClassification:
    """WRN-16-1 (0.18M parameters)."""
    return _wrn("wrn_16_1", 16, 1, num_classes, **kwargs)
