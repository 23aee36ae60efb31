"""CIFAR VGG-BN networks as transformers models, layer for layer the CRD benchmark's ``models/vgg.py``.

Module names match HobbitLong/RepDistiller, so its ``state_dict``s load with ``model.load_state_dict``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_vgg_cifar import VGG_CIFAR_BLOCKS, VGGCifarConfig
from .modeling_common import ZooPreTrainedModel, init_conv_kaiming_fan_out, init_linear_normal, init_zoo_module
from .modeling_outputs import DistillationModelOutput
from .registry import register_model


def _make_block(channels: list[int], batch_norm: bool, in_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for v in channels:
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    # The block ends before its last ReLU, so the model can read the pre-activation map.
    return nn.Sequential(*layers[:-1])


class VGGCifarForImageClassification(ZooPreTrainedModel):
    """VGG with BatchNorm for CIFAR (Simonyan & Zisserman, ICLR 2015), CRD-benchmark variant.

    Max-pooling follows blocks 0-2 (and block 3 only for 64-pixel inputs, as in the reference); the last block's
    map is average-pooled into a 512-d vector and classified by one linear layer.
    ``hidden_states`` are the five block outputs after their ReLU, ``preact_hidden_states`` the same before it.
    """

    config_class = VGGCifarConfig
    base_model_prefix = "vgg"

    def __init__(self, config: VGGCifarConfig) -> None:
        super().__init__(config)
        blocks = config.block_channels
        in_channels = [config.num_channels] + [block[-1] for block in blocks[:-1]]
        self.block0 = _make_block(blocks[0], config.batch_norm, in_channels[0])
        self.block1 = _make_block(blocks[1], config.batch_norm, in_channels[1])
        self.block2 = _make_block(blocks[2], config.batch_norm, in_channels[2])
        self.block3 = _make_block(blocks[3], config.batch_norm, in_channels[3])
        self.block4 = _make_block(blocks[4], config.batch_norm, in_channels[4])
        self.pool0 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool3 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool4 = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(blocks[4][-1], config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # RepDistiller: He-normal (fan_out) convs with zero bias, unit BN, N(0, 0.01) classifier with zero bias.
        init_zoo_module(module, conv=init_conv_kaiming_fan_out, linear=init_linear_normal)

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> DistillationModelOutput | tuple[torch.Tensor, ...]:
        height = pixel_values.shape[-2]
        f0_pre = self.block0(pixel_values)
        f0 = F.relu(f0_pre)
        f1_pre = self.block1(self.pool0(f0))
        f1 = F.relu(f1_pre)
        f2_pre = self.block2(self.pool1(f1))
        f2 = F.relu(f2_pre)
        f3_pre = self.block3(self.pool2(f2))
        f3 = F.relu(f3_pre)
        # The reference pools here only for 64-pixel inputs, keeping a 4x4 map for the last block on CIFAR.
        f4_pre = self.block4(self.pool3(f3) if height == 64 else f3)
        f4 = F.relu(f4_pre)
        pooled = torch.flatten(self.pool4(f4), 1)
        feature_maps = ((f0, f0_pre), (f1, f1_pre), (f2, f2_pre), (f3, f3_pre), (f4, f4_pre))
        return self._output_from_feature_maps(
            self.classifier(pooled), pooled, feature_maps, labels, output_hidden_states, return_dict
        )


def _vgg(name: str, depth: int, num_classes: int, **kwargs) -> VGGCifarForImageClassification:
    config = VGGCifarConfig(
        block_channels=VGG_CIFAR_BLOCKS[depth], num_labels=num_classes, architecture_name=name, **kwargs
    )
    return VGGCifarForImageClassification(config)


@register_model
def vgg8(num_classes: int = 100, **kwargs) -> VGGCifarForImageClassification:
    """VGG-8 with BatchNorm (one conv per block)."""
    return _vgg("vgg8", 8, num_classes, **kwargs)


@register_model
def vgg11(num_classes: int = 100, **kwargs) -> VGGCifarForImageClassification:
    """VGG-11 with BatchNorm (configuration A)."""
    return _vgg("vgg11", 11, num_classes, **kwargs)


@register_model
def vgg13(num_classes: int = 100, **kwargs) -> VGGCifarForImageClassification:
    """VGG-13 with BatchNorm (configuration B): a benchmark teacher."""
    return _vgg("vgg13", 13, num_classes, **kwargs)


@register_model
def vgg16(num_classes: int = 100, **kwargs) -> VGGCifarForImageClassification:
    """VGG-16 with BatchNorm (configuration D)."""
    return _vgg("vgg16", 16, num_classes, **kwargs)


@register_model
def vgg19(num_classes: int = 100, **kwargs) -> VGGCifarForImageClassification:
    """VGG-19 with BatchNorm (configuration E)."""
    return _vgg("vgg19", 19, num_classes, **kwargs)


__all__ = ["VGGCifarForImageClassification", "vgg8", "vgg11", "vgg13", "vgg16", "vgg19"]
