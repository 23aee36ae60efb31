"""Any timm model as an icd-hf teacher/student: the same ``DistillationModelOutput`` interface as the CIFAR zoo.

timm does all the work (``forward_features``/``forward_head(pre_logits=True)`` for the pooled vector,
``forward_intermediates`` for the feature maps); this file only adapts the calling convention.
"""

from __future__ import annotations

from typing import Any

import timm
import torch
from torch import nn

from .configuration_timm_backbone import TimmBackboneConfig
from .modeling_common import FeatureMap, ZooPreTrainedModel
from .registry import register_model_prefix


class TimmBackboneForImageClassification(ZooPreTrainedModel):
    """A ``timm.create_model(config.timm_model_name, num_classes=config.num_labels, **config.model_kwargs)``.

    ``pooler_output`` is timm's pre-logits vector (``forward_head(..., pre_logits=True)``). ``hidden_states`` are
    the maps of ``forward_intermediates`` in NCHW (for CNNs the stem and every stage, for ViTs every block's
    patch tokens as a grid). timm exposes no pre-activation maps, so ``preact_hidden_states`` are the same
    tensors.
    """

    config_class = TimmBackboneConfig
    base_model_prefix = "timm_model"
    # timm models do not support splitting across devices
    _no_split_modules = ["TimmBackboneForImageClassification"]

    def __init__(self, config: TimmBackboneConfig) -> None:
        super().__init__(config)
        try:
            self.timm_model = timm.create_model(
                config.timm_model_name,
                pretrained=config.pretrained,
                num_classes=config.num_labels,
                **config.model_kwargs,
            )
        except RuntimeError as err:
            if "Unknown model" in str(err):
                raise ValueError(
                    f"timm {timm.__version__} has no model {config.timm_model_name!r}; see timm.list_models() "
                    f"(or upgrade timm)."
                ) from err
            raise
        # The pretrained weights now live in this module: a saved copy must reload them, not download them again.
        config.pretrained = False
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # timm initialises its models in their constructors (schemes differ per architecture): keep that. Only
        # buffers that checkpoints do not store are rebuilt, since from_pretrained creates modules on the meta device.
        if hasattr(module, "init_non_persistent_buffers"):
            module.init_non_persistent_buffers()

    def get_classifier(self) -> nn.Module:
        return self.timm_model.get_classifier()

    def forward_features(
        self, pixel_values: torch.Tensor, feature_maps: list[FeatureMap] | None = None
    ) -> torch.Tensor:
        if feature_maps is None:
            return self.timm_model.forward_features(pixel_values)
        if not hasattr(self.timm_model, "forward_intermediates"):
            raise ValueError(
                f"timm model {self.config.timm_model_name!r} has no forward_intermediates(), so it cannot "
                f"return hidden_states; use it with losses that only read logits/pooler_output."
            )
        features, intermediates = self.timm_model.forward_intermediates(pixel_values)
        # timm exposes no pre-activation maps: each map stands for its own.
        feature_maps.extend((fmap, fmap) for fmap in intermediates)
        return features

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.timm_model.forward_head(features, pre_logits=pre_logits)

    def forward_logits(self, features: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        # Not classifier(pooled): some heads (MobileNetV3...) apply dropout after their pre-logits output.
        return self.timm_model.forward_head(features)


def create_timm_model(
    timm_model_name: str, num_classes: int = 100, pretrained: bool = False, **model_kwargs: Any
) -> TimmBackboneForImageClassification:
    """Build ``timm/<timm_model_name>`` (the ``create_model`` handler of the ``timm/`` prefix)."""
    config = TimmBackboneConfig(
        timm_model_name=timm_model_name, pretrained=pretrained, model_kwargs=model_kwargs, num_labels=num_classes
    )
    return TimmBackboneForImageClassification(config)


def _timm_has_model(name: str) -> bool:
    return timm.is_model(name)


register_model_prefix("timm", create_timm_model, _timm_has_model)
