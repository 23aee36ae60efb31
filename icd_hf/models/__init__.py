"""CIFAR model zoo and timm backbones as transformers models, and the adapter that lets any other image classifier
(``transformers`` ResNet, ConvNeXt, ViT, MobileNetV2...) take part in distillation (``modeling_hf_adapter``,
``load_image_classifier``).

Every ``modeling_*.py`` file of this package is imported here, as the losses are: adding an architecture is adding
a ``configuration_<name>.py`` / ``modeling_<name>.py`` pair whose ``ZooPreTrainedModel`` subclass names its
``config_class`` and whose factories carry ``@register_model``. Each such class (and its config) is then
registered with the model registry (``create_model``) and with ``AutoConfig`` / ``AutoModel`` /
``AutoModelForImageClassification``, marked for ``register_for_auto_class`` so that ``save_pretrained`` writes an
``auto_map`` and the modeling code (a saved model also loads with ``trust_remote_code=True`` where icd-hf is not
installed), and exported from this package under its class name.
"""

import importlib
import pkgutil

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from .auto_classifier import load_image_classifier
from .modeling_common import ZooPreTrainedModel
from .modeling_hf_adapter import DistillationAdapter, InputAdapter, InputSpec, adapt_model
from .modeling_outputs import DistillationModelOutput
from .modeling_timm_backbone import create_timm_model
from .registry import create_model, is_model, list_models, load_model, register_model, register_model_prefix
from .torch_checkpoint import read_torch_checkpoint, recognise_architecture  # also makes load_model read .pth files

for _module in pkgutil.iter_modules(__path__):
    if _module.name.startswith("modeling_"):
        importlib.import_module(f"{__name__}.{_module.name}")


def _zoo_classes() -> tuple[type[ZooPreTrainedModel], ...]:
    """The model classes defined in this package, one per ``config_class`` (the latest, after a reload)."""
    by_type: dict[str, type[ZooPreTrainedModel]] = {}
    pending = list(ZooPreTrainedModel.__subclasses__())
    while pending:
        cls = pending.pop(0)
        pending.extend(cls.__subclasses__())
        config_class = getattr(cls, "config_class", None)
        if cls.__module__.startswith(f"{__name__}.") and getattr(config_class, "model_type", ""):
            by_type[config_class.model_type] = cls
    return tuple(by_type[key] for key in sorted(by_type))


MODEL_CLASSES: tuple[type[ZooPreTrainedModel], ...] = _zoo_classes()


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
        globals()[model_class.__name__] = model_class
        globals()[config_class.__name__] = config_class


_register_auto_classes()

__all__ = [
    "MODEL_CLASSES",
    "DistillationAdapter",
    "DistillationModelOutput",
    "InputAdapter",
    "InputSpec",
    "ZooPreTrainedModel",
    "adapt_model",
    "create_model",
    "create_timm_model",
    "is_model",
    "list_models",
    "load_image_classifier",
    "load_model",
    "read_torch_checkpoint",
    "recognise_architecture",
    "register_model",
    "register_model_prefix",
    *sorted(name for cls in MODEL_CLASSES for name in (cls.__name__, cls.config_class.__name__)),
]
