"""ShuffleNetV2 for CIFAR as a transformers model, layer for layer the CRD benchmark's ``models/ShuffleNetv2.py``.

Module names match HobbitLong/RepDistiller, so its ``state_dict``s load with ``model.load_state_dict``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_shufflenet_v2 import ShuffleNetV2Config
from .modeling_common import ZooPreTrainedModel, init_torch_default, init_zoo_module
from .registry import register_model


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """``[N, C, H, W] -> [N, g, C/g, H, W] -> [N, C/g, g, H, W] -> [N, C, H, W]``."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)


class ShuffleV2BasicBlock(nn.Module):
    """Split the channels; 1x1 - depthwise 3x3 - 1x1 on one half; concatenate with the other half; shuffle."""

    def __init__(self, in_channels: int, split_ratio: float = 0.5) -> None:
        super().__init__()
        self.split_ratio = split_ratio
        in_channels = int(in_channels * split_ratio)
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(
            in_channels, in_channels, kernel_size=3, stride=1, padding=1, groups=in_channels, bias=False
        )
        self.bn2 = nn.BatchNorm2d(in_channels)
        self.conv3 = nn.Conv2d(in_channels, in_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(in_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the output and its pre-activation, both channel-shuffled.

        The reference returns the pre-activation *unshuffled*, i.e. in a different channel order than the output;
        shuffling it too keeps ``relu(preact) == output`` channel by channel (the identity half is already >= 0).
        """
        c = int(x.shape[1] * self.split_ratio)
        x1, x2 = x[:, :c], x[:, c:]
        out = F.relu(self.bn1(self.conv1(x2)))
        out = self.bn2(self.conv2(out))
        preact = self.bn3(self.conv3(out))
        out = channel_shuffle(torch.cat([x1, F.relu(preact)], 1))
        return out, channel_shuffle(torch.cat([x1, preact], 1))


class ShuffleV2DownBlock(nn.Module):
    """Stride-2 unit: both branches see the whole input (depthwise-pointwise / pointwise-depthwise-pointwise),
    then concatenate and shuffle."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid_channels = out_channels // 2
        # left branch
        self.conv1 = nn.Conv2d(
            in_channels, in_channels, kernel_size=3, stride=2, padding=1, groups=in_channels, bias=False
        )
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_channels)
        # right branch
        self.conv3 = nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid_channels)
        self.conv4 = nn.Conv2d(
            mid_channels, mid_channels, kernel_size=3, stride=2, padding=1, groups=mid_channels, bias=False
        )
        self.bn4 = nn.BatchNorm2d(mid_channels)
        self.conv5 = nn.Conv2d(mid_channels, mid_channels, kernel_size=1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the output and its pre-activation (both branches before their last ReLU, shuffled)."""
        left_pre = self.bn2(self.conv2(self.bn1(self.conv1(x))))
        right = F.relu(self.bn3(self.conv3(x)))
        right_pre = self.bn5(self.conv5(self.bn4(self.conv4(right))))
        preact = channel_shuffle(torch.cat([left_pre, right_pre], 1))
        return F.relu(preact), preact


class ShuffleNetV2ForImageClassification(ZooPreTrainedModel):
    """ShuffleNetV2 (Ma et al., ECCV 2018) for CIFAR, CRD-benchmark variant (1x1 stem, no max-pool).

    ``hidden_states``: the stem and the three stage outputs; ``preact_hidden_states`` the same before their last
    ReLU (see ``ShuffleV2BasicBlock.forward`` for the one difference from the reference). ``pooler_output`` is the
    average-pooled output of the final 1x1 conv (1024-d). PyTorch-default initialisation, as in the reference.
    """

    config_class = ShuffleNetV2Config
    stage_names = ("layer1", "layer2", "layer3")
    classifier_name = "linear"
    _no_split_modules = ["ShuffleV2BasicBlock", "ShuffleV2DownBlock"]

    def __init__(self, config: ShuffleNetV2Config) -> None:
        super().__init__(config)
        channels = config.out_channels
        self.conv1 = nn.Conv2d(config.num_channels, 24, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.in_channels = 24
        self.layer1 = self._make_layer(channels[0], config.num_blocks[0], config.split_ratio)
        self.layer2 = self._make_layer(channels[1], config.num_blocks[1], config.split_ratio)
        self.layer3 = self._make_layer(channels[2], config.num_blocks[2], config.split_ratio)
        self.conv2 = nn.Conv2d(channels[2], channels[3], kernel_size=1, stride=1, padding=0, bias=False)
        self.bn2 = nn.BatchNorm2d(channels[3])
        self.linear = nn.Linear(channels[3], config.num_labels)
        self.post_init()

    def _make_layer(self, out_channels: int, num_blocks: int, split_ratio: float) -> nn.Sequential:
        layers: list[nn.Module] = [ShuffleV2DownBlock(self.in_channels, out_channels)]
        layers += [ShuffleV2BasicBlock(out_channels, split_ratio) for _ in range(num_blocks)]
        self.in_channels = out_channels
        return nn.Sequential(*layers)

    def _init_weights(self, module: nn.Module) -> None:
        # The reference keeps PyTorch's defaults (spelled out: transformers re-initialises every module).
        init_zoo_module(module, conv=init_torch_default, linear=init_torch_default)

    def forward_pool(self, features: torch.Tensor) -> torch.Tensor:
        # The final 1x1 conv (to 1024 channels) belongs to the head: the last stage map stays a feature map.
        return super().forward_pool(F.relu(self.bn2(self.conv2(features))))


@register_model
def shufflenetv2(num_classes: int = 100, **kwargs) -> ShuffleNetV2ForImageClassification:
    """ShuffleNetV2 1x: stages of 116/232/464 channels and a 1024-d head (RepDistiller's ``ShuffleV2``)."""
    config = ShuffleNetV2Config(num_labels=num_classes, architecture_name="shufflenetv2", **kwargs)
    return ShuffleNetV2ForImageClassification(config)
