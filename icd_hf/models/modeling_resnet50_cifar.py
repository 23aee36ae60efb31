"""ResNet-50 for CIFAR as a transformers model, layer for layer the CRD benchmark's ``models/resnetv2.py``.

Module names match HobbitLong/RepDistiller, so its ``state_dict``s load with ``model.load_state_dict``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from .configuration_resnet50_cifar import ResNet50CifarConfig
from .modeling_common import ZooPreTrainedModel, init_conv_kaiming_fan_out, init_torch_default, init_zoo_module
from .registry import register_model


def _projection(in_planes: int, out_planes: int, stride: int) -> nn.Sequential:
    """1x1-conv + BN shortcut where shape changes, identity (an empty ``Sequential``) elsewhere."""
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out_planes)
    )


class ResNetV2BasicBlock(nn.Module):
    """Two 3x3 convs with BN, plus the shortcut, then ReLU."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.bn2.closes_residual_branch = True  # zeroed by zero_init_residual
        self.shortcut = _projection(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the output and its pre-activation."""
        out = F.relu(self.bn1(self.conv1(x)))
        preact = self.bn2(self.conv2(out)) + self.shortcut(x)
        return F.relu(preact), preact


class ResNetV2Bottleneck(nn.Module):
    """1x1-3x3-1x1 bottleneck (expansion 4, stride on the 3x3), plus the shortcut, then ReLU."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.bn3.closes_residual_branch = True  # zeroed by zero_init_residual
        self.shortcut = _projection(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the output and its pre-activation."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        preact = self.bn3(self.conv3(out)) + self.shortcut(x)
        return F.relu(preact), preact


class ResNet50CifarForImageClassification(ZooPreTrainedModel):
    """ResNet-50 for CIFAR (He et al., CVPR 2016), CRD-benchmark variant: 3x3 stride-1 stem, no max-pool, stages
    at 32/16/8/4 pixels, a 2048-d pooled feature.

    ``hidden_states``: the stem (after its ReLU) and the four stage outputs; ``preact_hidden_states`` the same
    before the final ReLU.
    """

    config_class = ResNet50CifarConfig
    stage_names = ("layer1", "layer2", "layer3", "layer4")
    classifier_name = "linear"
    _no_split_modules = ["ResNetV2BasicBlock", "ResNetV2Bottleneck"]

    def __init__(self, config: ResNet50CifarConfig) -> None:
        super().__init__(config)
        block = ResNetV2Bottleneck if config.block_type == "bottleneck" else ResNetV2BasicBlock
        self.in_planes = 64
        self.conv1 = nn.Conv2d(config.num_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(block, 64, config.num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 128, config.num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 256, config.num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 512, config.num_blocks[3], stride=2)
        self.linear = nn.Linear(512 * block.expansion, config.num_labels)
        self.post_init()

    def _make_layer(self, block: type[nn.Module], planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def _init_weights(self, module: nn.Module) -> None:
        # RepDistiller: He-normal (fan_out) convs, unit BN, PyTorch-default linear layer; optionally the last BN
        # of each residual branch at zero so every block starts as the identity. The BN itself carries the tag:
        # for remote-code models transformers skips `_init_weights` on modules without parameters of their own.
        init_zoo_module(module, conv=init_conv_kaiming_fan_out, linear=init_torch_default)
        if self.config.zero_init_residual and getattr(module, "closes_residual_branch", False):
            init.zeros_(module.weight)


@register_model
def resnet50(num_classes: int = 100, **kwargs) -> ResNet50CifarForImageClassification:
    """ResNet-50 (bottleneck blocks 3-4-6-3) for 32x32 inputs: a benchmark teacher (RepDistiller's ``ResNet50``)."""
    config = ResNet50CifarConfig(num_labels=num_classes, architecture_name="resnet50", **kwargs)
    return ResNet50CifarForImageClassification(config)
