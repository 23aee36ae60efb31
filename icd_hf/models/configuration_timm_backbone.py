"""Configuration of the timm wrapper: any ``timm`` architecture as an icd-hf teacher or student."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from .configuration_common import with_default_num_labels


class TimmBackboneConfig(PretrainedConfig):
    r"""Configuration of ``TimmBackboneForImageClassification``, a ``timm.create_model`` architecture behind the
    icd-hf model interface.

    Args:
        timm_model_name: a name from ``timm.list_models()``, optionally with a pretrained tag
            (``"resnet18"``, ``"resnet18.a1_in1k"``).
        pretrained: load timm's pretrained weights when the model is *built* (needs the Hub or a timm cache). The
            flag is switched off once the weights are in the model, so a saved copy reloads its own weights
            instead of downloading them again.
        model_kwargs: extra ``timm.create_model`` keywords (``in_chans``, ``drop_rate``, ``drop_path_rate``...);
            must be JSON-serialisable, since the config is saved as JSON.
        architecture_name: the name this config was built for (``"timm/resnet18"``).
        num_labels: number of classes (100 when neither it nor ``id2label`` is given).
    """

    model_type = "icd_timm_backbone"

    def __init__(
        self,
        timm_model_name: str = "resnet18",
        pretrained: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        architecture_name: str | None = None,
        num_labels: int | None = None,
        **kwargs: Any,
    ) -> None:
        model_kwargs = dict(model_kwargs or {})
        reserved = {"num_classes": "num_labels", "pretrained": "pretrained", "model_name": "timm_model_name"}
        for key, field in reserved.items():
            if key in model_kwargs:
                raise ValueError(f"model_kwargs must not contain {key!r}: set the config's `{field}` instead.")
        self.timm_model_name = timm_model_name
        self.pretrained = pretrained
        self.model_kwargs = model_kwargs
        self.architecture_name = architecture_name if architecture_name is not None else f"timm/{timm_model_name}"
        super().__init__(**with_default_num_labels(num_labels, kwargs))
