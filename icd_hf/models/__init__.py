"""CIFAR model zoo and timm backbones as transformers models, and the adapter that lets any other image classifier
(``transformers`` ResNet, ConvNeXt, ViT, MobileNetV2...) take part in distillation (``modeling_hf_adapter``,
``load_image_classifier``).

Importing this package registers every architecture with the model registry (``create_model``) and with
``AutoConfig`` / ``AutoModel`` / ``AutoModelForImageClassification``, and marks the classes for
``register_for_auto_class`` so that ``save_pretrained`` writes an ``auto_map`` and the modeling code: a saved
model then also loads with ``trust_remote_code=True`` where icd-hf is not installed.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from .auto_classifier import load_image_classifier
from .configuration_mobilenetv2_cifar import MobileNetV2CifarConfig
from .configuration_resnet50_cifar import ResNet50CifarConfig
from .configuration_resnet_cifar import ResNetCifarConfig
from .configuration_shufflenet_v1 import ShuffleNetV1Config
from .configuration_shufflenet_v2 import ShuffleNetV2Config
from .configuration_timm_backbone import TimmBackboneConfig
from .configuration_vgg_cifar import VGG_CIFAR_BLOCKS, VGGCifarConfig
from .configuration_wrn import WideResNetConfig
from .modeling_common import ZooPreTrainedModel
from .modeling_hf_adapter import DistillationAdapter, InputAdapter, InputSpec, adapt_model
from .modeling_mobilenetv2_cifar import MobileNetV2CifarForImageClassification
from .modeling_outputs import DistillationModelOutput
from .modeling_resnet50_cifar import ResNet50CifarForImageClassification
from .modeling_resnet_cifar import ResNetCifarForImageClassification
from .modeling_shufflenet_v1 import ShuffleNetV1ForImageClassification
from .modeling_shufflenet_v2 import ShuffleNetV2ForImageClassification
from .modeling_timm_backbone import TimmBackboneForImageClassification, create_timm_model
from .modeling_vgg_cifar import VGGCifarForImageClassification
from .modeling_wrn import WideResNetForImageClassification
from .registry import create_model, is_model, list_models, load_model, register_model, register_model_prefix

MODEL_CLASSES: tuple[type[ZooPreTrainedModel], ...] = (
    WideResNetForImageClassification,
    ResNetCifarForImageClassification,
    VGGCifarForImageClassification,
    MobileNetV2CifarForImageClassification,
    ShuffleNetV1ForImageClassification,
    ShuffleNetV2ForImageClassification,
    ResNet50CifarForImageClassification,
    TimmBackboneForImageClassification,
)


def _register_auto_classes() -> None:
    for model_class in MODEL_CLASSES:
        config_class = model_class.config_class
        # exist_ok: re-importing (reload, notebooks) must not fail on our own earlier registration
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, model_class, exist_ok=True)
        AutoModelForImageClassification.register(config_class, model_class, exist_ok=True)
        config_class.register_for_auto_class()
        # One Auto class is recorded here; ZooPreTrainedModel.save_pretrained adds AutoModel to the auto_map.
        model_class.register_for_auto_class("AutoModelForImageClassification")


_register_auto_classes()

__all__ = [
    "MODEL_CLASSES",
    "VGG_CIFAR_BLOCKS",
    "DistillationAdapter",
    "DistillationModelOutput",
    "InputAdapter",
    "InputSpec",
    "MobileNetV2CifarConfig",
    "MobileNetV2CifarForImageClassification",
    "ResNet50CifarConfig",
    "ResNet50CifarForImageClassification",
    "ResNetCifarConfig",
    "ResNetCifarForImageClassification",
    "ShuffleNetV1Config",
    "ShuffleNetV1ForImageClassification",
    "ShuffleNetV2Config",
    "ShuffleNetV2ForImageClassification",
    "TimmBackboneConfig",
    "TimmBackboneForImageClassification",
    "VGGCifarConfig",
    "VGGCifarForImageClassification",
    "WideResNetConfig",
    "WideResNetForImageClassification",
    "ZooPreTrainedModel",
    "adapt_model",
    "create_model",
    "create_timm_model",
    "is_model",
    "list_models",
    "load_image_classifier",
    "load_model",
    "register_model",
    "register_model_prefix",
]
