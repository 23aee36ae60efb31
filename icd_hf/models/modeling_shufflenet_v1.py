"""ShuffleNetV1 for CIFAR as a transformers model, layer for layer the CRD benchmark's ``models/ShuffleNetv1.py``.

Module names match HobbitLong/RepDistiller, so its ``state_dict``s load with ``model.load_state_dict``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_shufflenet_v1 import ShuffleNetV1Config
from .modeling_common import ZooPreTrainedModel, init_torch_default, init_zoo_module
from .registry import register_model


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """``[N, C, H, W] -> [N, g, C/g, H, W] -> [N, C/g, g, H, W] -> [N, C, H, W]``."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)


class ShuffleBlock(nn.Module):
    """Channel shuffle between grouped convolutions."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)


class ShuffleV1Bottleneck(nn.Module):
    """Grouped 1x1 - shuffle - depthwise 3x3 - grouped 1x1; stride-2 units concatenate an average-pooled
    shortcut instead of adding it."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, groups: int) -> None:
        super().__init__()
        self.stride = stride
        mid_planes = int(out_planes / 4)
        # The first unit sees the 24-channel stem, too narrow to split into groups.
        g = 1 if in_planes == 24 else groups
        self.conv1 = nn.Conv2d(in_planes, mid_planes, kernel_size=1, groups=g, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_planes)
        self.shuffle1 = ShuffleBlock(groups=g)
        self.conv2 = nn.Conv2d(
            mid_planes, mid_planes, kernel_size=3, stride=stride, padding=1, groups=mid_planes, bias=False
        )
        self.bn2 = nn.BatchNorm2d(mid_planes)
        self.conv3 = nn.Conv2d(mid_planes, out_planes, kernel_size=1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()
        if stride == 2:
            self.shortcut = nn.Sequential(nn.AvgPool2d(3, stride=2, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the output and its pre-activation."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.shuffle1(out)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = self.shortcut(x)
        preact = torch.cat([out, res], 1) if self.stride == 2 else out + res
        return F.relu(preact), preact


class ShuffleNetV1ForImageClassification(ZooPreTrainedModel):
    """ShuffleNetV1 (Zhang et al., CVPR 2018) for CIFAR, CRD-benchmark variant (1x1 stem, no max-pool).

    ``hidden_states``: the stem and the three stage outputs after their ReLU; ``preact_hidden_states`` the same
    before it. The reference leaves every layer at PyTorch's default initialisation, and so does this model.
    """

    config_class = ShuffleNetV1Config
    stage_names = ("layer1", "layer2", "layer3")
    classifier_name = "linear"
    _no_split_modules = ["ShuffleV1Bottleneck"]

    def __init__(self, config: ShuffleNetV1Config) -> None:
        super().__init__(config)
        self.conv1 = nn.Conv2d(config.num_channels, 24, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.in_planes = 24
        self.layer1 = self._make_layer(config.out_planes[0], config.num_blocks[0], config.groups)
        self.layer2 = self._make_layer(config.out_planes[1], config.num_blocks[1], config.groups)
        self.layer3 = self._make_layer(config.out_planes[2], config.num_blocks[2], config.groups)
        self.linear = nn.Linear(config.out_planes[2], config.num_labels)
        self.post_init()

    def _make_layer(self, out_planes: int, num_blocks: int, groups: int) -> nn.Sequential:
        layers = []
        for i in range(num_blocks):
            stride = 2 if i == 0 else 1
            # the stride-2 unit concatenates its input, so its branch produces only the missing channels
            cat_planes = self.in_planes if i == 0 else 0
            layers.append(ShuffleV1Bottleneck(self.in_planes, out_planes - cat_planes, stride=stride, groups=groups))
            self.in_planes = out_planes
        return nn.Sequential(*layers)

    def _init_weights(self, module: nn.Module) -> None:
        # The reference keeps PyTorch's defaults (spelled out: transformers re-initialises every module).
        init_zoo_module(module, conv=init_torch_default, linear=init_torch_default)


@register_model
def shufflenetv1(num_classes: int = 100, **kwargs) -> ShuffleNetV1ForImageClassification:
    """ShuffleNetV1 with 3 groups, stages of 240/480/960 channels (RepDistiller's ``ShuffleV1``)."""
    config = ShuffleNetV1Config(num_labels=num_classes, architecture_name="shufflenetv1", **kwargs)
    return ShuffleNetV1ForImageClassification(config)
