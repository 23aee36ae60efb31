"""What every zoo model shares: the forward template and output contract, the Auto-class bookkeeping and the init
schemes.

Imports only torch/transformers and a sibling file, so it travels with the modeling files into a
``save_pretrained`` folder and loads there with ``trust_remote_code=True``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init

from .modeling_outputs import DistillationModelOutput

# A zoo model answers to both Auto classes, but `register_for_auto_class` records only one: save_pretrained writes
# the other into `auto_map` too, so `AutoModel.from_pretrained(dir, trust_remote_code=True)` works as well.
_AUTO_CLASSES = ("AutoModel", "AutoModelForImageClassification")


FeatureMap = tuple[torch.Tensor, torch.Tensor]
"""A feature map and its pre-activation: ``(map, map before its final activation)``."""


class ZooPreTrainedModel(PreTrainedModel):
    """Base class of the CIFAR zoo models and the timm wrapper: an image classifier emitting the features the
    distillation losses read. ``forward`` is written here once and returns a ``DistillationModelOutput``, whose
    docstring is the output contract (logits, pooled vector, stem and stage maps before and after activation).

    The forward pass is split as timm's models are. ``forward_features(pixel_values, feature_maps)`` runs the stem
    and the stages and returns the map the head pools (collecting one ``(map, pre-activation)`` pair per stem and
    stage into ``feature_maps`` when given); ``forward_head(features, pre_logits=...)`` pools it (``forward_pool``)
    and classifies. A family supplies ``forward_stem`` and names its stage modules in ``stage_names`` (stages of
    blocks returning ``(output, pre-activation)`` need nothing more), or overrides ``forward_stage`` (and
    ``num_stages``) / ``forward_features`` where its wiring differs; ``classifier_name`` names its linear head.
    """

    main_input_name = "pixel_values"
    input_modalities = ("image",)
    # Attributes holding the stages, in order, and the classifier (kept from RepDistiller so its checkpoints load).
    stage_names: ClassVar[tuple[str, ...]] = ()
    classifier_name: ClassVar[str] = "fc"

    @property
    def num_stages(self) -> int:
        """How many stage maps follow the stem's."""
        return len(self.stage_names)

    def get_classifier(self) -> nn.Module:
        """The classification head (timm's name for it)."""
        return getattr(self, self.classifier_name)

    def forward_stem(self, pixel_values: torch.Tensor) -> FeatureMap:
        """The stem's output map and its pre-activation; by default the ResNet-like ``conv1`` - ``bn1`` - ReLU."""
        preact = self.bn1(self.conv1(pixel_values))
        return F.relu(preact), preact

    def forward_stage(self, index: int, x: torch.Tensor) -> FeatureMap:
        """Stage ``index`` (the module named by ``stage_names[index]``) on ``x``: its output and pre-activation."""
        return run_stage(getattr(self, self.stage_names[index]), x)

    def forward_features(
        self, pixel_values: torch.Tensor, feature_maps: list[FeatureMap] | None = None
    ) -> torch.Tensor:
        """Stem then stages; returns the map the head pools. ``feature_maps``, when given, receives the
        ``(map, pre-activation)`` pair of the stem and of every stage, in order."""
        x, preact = self.forward_stem(pixel_values)
        collected = [(x, preact)]
        for index in range(self.num_stages):
            x, preact = self.forward_stage(index, x)
            collected.append((x, preact))
        if feature_maps is not None:
            feature_maps.extend(collected)
        return x

    def forward_pool(self, features: torch.Tensor) -> torch.Tensor:
        """The pre-logits vector of the final map: a global average (a family with a final conv applies it first)."""
        return torch.flatten(F.adaptive_avg_pool2d(features, 1), 1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``forward_pool`` of ``forward_features``' result, then the classifier unless ``pre_logits``."""
        pooled = self.forward_pool(features)
        return pooled if pre_logits else self.get_classifier()(pooled)

    def forward_logits(self, features: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """The logits, from the pooled vector already computed (the head's pooling runs once per forward)."""
        return self.get_classifier()(pooled)

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> DistillationModelOutput | tuple[torch.Tensor, ...]:
        """Logits and pooled vector; the stem and stage maps with ``output_hidden_states``; the cross-entropy
        against ``labels`` when given (see the class docstring for the contract)."""
        feature_maps: list[FeatureMap] | None = [] if self._want_hidden_states(output_hidden_states) else None
        features = self.forward_features(pixel_values, feature_maps)
        pooled = self.forward_head(features, pre_logits=True)
        logits = self.forward_logits(features, pooled)
        hidden = preact = None
        if feature_maps is not None:
            hidden = tuple(fmap for fmap, _ in feature_maps)
            preact = tuple(fmap_preact for _, fmap_preact in feature_maps)
        out = DistillationModelOutput(
            loss=F.cross_entropy(logits, labels) if labels is not None else None,
            logits=logits,
            pooler_output=pooled,
            hidden_states=hidden,
            preact_hidden_states=preact,
        )
        return_dict = return_dict if return_dict is not None else getattr(self.config, "return_dict", True)
        return out if return_dict is not False else out.to_tuple()

    def _want_hidden_states(self, output_hidden_states: bool | None) -> bool:
        if output_hidden_states is not None:
            return output_hidden_states
        return bool(getattr(self.config, "output_hidden_states", False))

    def save_pretrained(self, save_directory: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        """``PreTrainedModel.save_pretrained``, recording this class for both ``AutoModel`` and
        ``AutoModelForImageClassification`` in the saved ``auto_map``."""
        if self._auto_class is not None:
            module = type(self).__module__.rsplit(".", 1)[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map.update({auto: f"{module}.{type(self).__name__}" for auto in _AUTO_CLASSES})
            self.config.auto_map = auto_map
        super().save_pretrained(save_directory, *args, **kwargs)


def run_stage(stage: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run blocks that return ``(output, pre-activation)``; return the last block's pair (``(x, x)`` if empty)."""
    preact = x
    for block in stage:
        x, preact = block(x)
    return x, preact


def init_zoo_module(
    module: nn.Module,
    *,
    conv: Callable[[nn.Conv2d], None],
    linear: Callable[[nn.Linear], None],
) -> None:
    """One ``_init_weights`` step of a CIFAR zoo model: ``conv`` for convs, unit BatchNorm, ``linear`` for
    linear layers; other modules are left alone. The schemes differ between references only in ``conv`` and
    ``linear``, which the model names next to the reference it follows."""
    if isinstance(module, nn.Conv2d):
        conv(module)
    elif isinstance(module, nn.BatchNorm2d):
        init_batchnorm(module)
    elif isinstance(module, nn.Linear):
        linear(module)


def init_batchnorm(module: nn.Module) -> None:
    """Unit scale, zero shift, fresh running statistics (what every CIFAR reference uses)."""
    if getattr(module, "weight", None) is not None:
        init.ones_(module.weight)
    if getattr(module, "bias", None) is not None:
        init.zeros_(module.bias)
    if getattr(module, "running_mean", None) is not None:
        init.zeros_(module.running_mean)
        init.ones_(module.running_var)
    if getattr(module, "num_batches_tracked", None) is not None:
        init.zeros_(module.num_batches_tracked)


def init_torch_default(module: nn.Conv2d | nn.Linear) -> None:
    """PyTorch's own ``reset_parameters`` for conv/linear layers, through the load-aware init functions.

    The reference models leave some layers at the PyTorch default; transformers runs ``_init_weights`` on every
    module, so the default has to be spelled out to reproduce them (and to skip tensors loaded from a checkpoint).
    """
    init.kaiming_uniform_(module.weight, a=math.sqrt(5))
    if module.bias is not None:
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(module.bias, -bound, bound)


def init_conv_kaiming_fan_out(module: nn.Conv2d) -> None:
    """He-normal with ``fan_out`` (the ``normal_(0, sqrt(2 / (k*k*out_channels)))`` of the CIFAR references)."""
    init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        init.zeros_(module.bias)


def init_torch_default_zero_bias(module: nn.Linear) -> None:
    """PyTorch's default weight (:func:`init_torch_default`), then a zero bias (RepDistiller's WRN classifier)."""
    init_torch_default(module)
    init.zeros_(module.bias)


def init_linear_normal(module: nn.Linear) -> None:
    """``N(0, 0.01)`` weight and zero bias: the classifier of the VGG and MobileNetV2 references."""
    init.normal_(module.weight, 0.0, 0.01)
    init.zeros_(module.bias)
