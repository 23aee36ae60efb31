"""CIFAR ResNets as transformers models, layer for layer the CRD benchmark's ``models/resnet.py``.

Module names match HobbitLong/RepDistiller, so its ``state_dict``s load with ``model.load_state_dict``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_resnet_cifar import ResNetCifarConfig
from .modeling_common import (
    ZooPreTrainedModel,
    init_conv_kaiming_fan_out,
    init_torch_default,
    init_zoo_module,
    run_stage,
)
from .modeling_outputs import DistillationModelOutput
from .registry import register_model


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class ResNetCifarBasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the output and its pre-activation (the residual sum before the last ReLU)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        preact = out + residual
        return F.relu(preact), preact


class ResNetCifarBottleneck(nn.Module):
    """1x1-3x3-1x1 bottleneck (expansion 4), plus the shortcut, then ReLU."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the output and its pre-activation (the residual sum before the last ReLU)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        preact = out + residual
        return F.relu(preact), preact


class ResNetCifarForImageClassification(ZooPreTrainedModel):
    """CIFAR ResNet (He et al., CVPR 2016), CRD-benchmark variant: a 3x3 stem and three stages at 32, 16 and 8
    pixels.

    ``hidden_states`` are RepDistiller's ``is_feat`` maps: the stem (after its ReLU) and each stage output.
    ``preact_hidden_states`` are the same before the final ReLU (the residual sums; the stem's BN output).
    """

    config_class = ResNetCifarConfig
    base_model_prefix = "resnet"
    _no_split_modules = ["ResNetCifarBasicBlock", "ResNetCifarBottleneck"]

    def __init__(self, config: ResNetCifarConfig) -> None:
        super().__init__(config)
        if config.block_type == "basic":
            block, n = ResNetCifarBasicBlock, (config.depth - 2) // 6
        else:
            block, n = ResNetCifarBottleneck, (config.depth - 2) // 9
        filters = config.num_filters
        self.inplanes = filters[0]
        self.conv1 = nn.Conv2d(config.num_channels, filters[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(filters[0])
        self.relu = nn.ReLU(inplace=False)
        self.layer1 = self._make_layer(block, filters[1], n)
        self.layer2 = self._make_layer(block, filters[2], n, stride=2)
        self.layer3 = self._make_layer(block, filters[3], n, stride=2)
        self.fc = nn.Linear(filters[3] * block.expansion, config.num_labels)
        self.post_init()

    def _make_layer(self, block: type[nn.Module], planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self, module: nn.Module) -> None:
        # RepDistiller: He-normal (fan_out) convs, unit BN, PyTorch-default linear layer.
        init_zoo_module(module, conv=init_conv_kaiming_fan_out, linear=init_torch_default)

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> DistillationModelOutput | tuple[torch.Tensor, ...]:
        f0_pre = self.bn1(self.conv1(pixel_values))
        f0 = self.relu(f0_pre)
        f1, f1_pre = run_stage(self.layer1, f0)
        f2, f2_pre = run_stage(self.layer2, f1)
        f3, f3_pre = run_stage(self.layer3, f2)
        pooled = torch.flatten(F.adaptive_avg_pool2d(f3, 1), 1)
        feature_maps = ((f0, f0_pre), (f1, f1_pre), (f2, f2_pre), (f3, f3_pre))
        return self._output_from_feature_maps(
            self.fc(pooled), pooled, feature_maps, labels, output_hidden_states, return_dict
        )


def _resnet(
    name: str, depth: int, num_filters: list[int], num_classes: int, **kwargs
) -> ResNetCifarForImageClassification:
    config = ResNetCifarConfig(
        depth=depth, num_filters=num_filters, num_labels=num_classes, architecture_name=name, **kwargs
    )
    return ResNetCifarForImageClassification(config)


_NARROW = [16, 16, 32, 64]
_WIDE = [32, 64, 128, 256]


@register_model
def resnet8(num_classes: int = 100, **kwargs) -> ResNetCifarForImageClassification:
    """ResNet-8 (3 stages of 1 basic block, widths 16/32/64)."""
    return _resnet("resnet8", 8, _NARROW, num_classes, **kwargs)


@register_model
def resnet14(num_classes: int = 100, **kwargs) -> ResNetCifarForImageClassification:
    """ResNet-14 (2 basic blocks per stage)."""
    return _resnet("resnet14", 14, _NARROW, num_classes, **kwargs)


@register_model
def resnet20(num_classes: int = 100, **kwargs) -> ResNetCifarForImageClassification:
    """ResNet-20 (3 basic blocks per stage)."""
    return _resnet("resnet20", 20, _NARROW, num_classes, **kwargs)


@register_model
def resnet32(num_classes: int = 100, **kwargs) -> ResNetCifarForImageClassification:
    """ResNet-32 (5 basic blocks per stage)."""
    return _resnet("resnet32", 32, _NARROW, num_classes, **kwargs)


@register_model
def resnet44(num_classes: int = 100, **kwargs) -> ResNetCifarForImageClassification:
    """ResNet-44 (7 basic blocks per stage)."""
    return _resnet("resnet44", 44, _NARROW, num_classes, **kwargs)


@register_model
def resnet56(num_classes: int = 100, **kwargs) -> ResNetCifarForImageClassification:
    """ResNet-56 (9 basic blocks per stage): a benchmark teacher."""
    return _resnet("resnet56", 56, _NARROW, num_classes, **kwargs)


@register_model
def resnet110(num_classes: int = 100, **kwargs) -> ResNetCifarForImageClassification:
    """ResNet-110 (18 basic blocks per stage): a benchmark teacher."""
    return _resnet("resnet110", 110, _NARROW, num_classes, **kwargs)


@register_model
def resnet8x4(num_classes: int = 100, **kwargs) -> ResNetCifarForImageClassification:
    """ResNet-8x4: ResNet-8 with 4x the channels (32/64/128/256)."""
    return _resnet("resnet8x4", 8, _WIDE, num_classes, **kwargs)


@register_model
def resnet32x4(num_classes: int = 100, **kwargs) -> ResNetCifarForImageClassification:
    """ResNet-32x4: ResNet-32 with 4x the channels: the benchmark's strongest teacher."""
    return _resnet("resnet32x4", 32, _WIDE, num_classes, **kwargs)


__all__ = [
    "ResNetCifarForImageClassification",
    "resnet8",
    "resnet8x4",
    "resnet14",
    "resnet20",
    "resnet32",
    "resnet32x4",
    "resnet44",
    "resnet56",
    "resnet110",
]
