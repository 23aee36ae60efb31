"""CIFAR VGG-BN networks as transformers models, layer for layer the CRD benchmark's ``models/vgg.py``.

Module names match HobbitLong/RepDistiller, so its ``state_dict``s load with ``model.load_state_dict``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_vgg_cifar import VGG_CIFAR_BLOCKS, VGGCifarConfig
from .modeling_common import (
    FeatureMap,
    ZooPreTrainedModel,
    init_conv_kaiming_fan_out,
    init_linear_normal,
    init_zoo_module,
)
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
    classifier_name = "classifier"
    num_stages = 4  # block1..block4 after the stem block0, wired by forward_features

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
        self.classifier = nn.Linear(blocks[4][-1], config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # RepDistiller: He-normal (fan_out) convs with zero bias, unit BN, N(0, 0.01) classifier with zero bias.
        init_zoo_module(module, conv=init_conv_kaiming_fan_out, linear=init_linear_normal)

    def forward_features(
        self, pixel_values: torch.Tensor, feature_maps: list[FeatureMap] | None = None
    ) -> torch.Tensor:
        # Block i ends before its last ReLU; max-pooling precedes blocks 1-3, and block 4 only for 64-pixel inputs
        # (as in the reference, which keeps a 4x4 map for the last block on CIFAR).
        pools = [None, self.pool0, self.pool1, self.pool2, self.pool3 if pixel_values.shape[-2] == 64 else None]
        x = pixel_values
        for index, pool in enumerate(pools):
            preact = getattr(self, f"block{index}")(x if pool is None else pool(x))
            x = F.relu(preact)
            if feature_maps is not None:
                feature_maps.append((x, preact))
        return x


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
