"""Any image classifier as a distillation teacher or student: the adapter between a model and icd-hf's losses.

The losses read a ``DistillationModelOutput`` (logits, the pooled penultimate vector, the stage maps) and every
model of a pair must see the input *it* was trained on. The CIFAR zoo and the timm wrapper emit that output
natively and share the batch's resolution and normalisation; a ``transformers`` image classifier (ResNet,
ConvNeXt, ViT, DeiT, Swin, MobileViT, EfficientNet, MobileNetV2...) returns an ``ImageClassifierOutput`` and was
trained at its image processor's size and mean/std. ``DistillationAdapter`` closes both gaps, so the
``Distiller`` and the losses never learn which kind of model they hold:

* **Input** - ``InputSpec`` says what a model expects (resolution, normalisation; ``None`` = as the data) and
  ``InputAdapter`` turns the one augmented batch into it on the device: undo the data normalisation, resize
  (bilinear, antialiased), apply the model's normalisation. Teacher and student thus see the *same* crop and
  flip, each at its own size and statistics (a 224-pixel ViT teacher, a 32-pixel student).
* **Output** - for ``transformers`` models: ``pooler_output`` is the classifier's input (captured by a forward
  pre-hook: the CLS token of ViT/DeiT/BEiT, DINOv2's CLS+mean concatenation), or the base model's
  ``pooler_output`` when that is the same vector before the head's dropout (MobileNetV2, EfficientNet,
  MobileViT). ``hidden_states`` follow the zoo's convention, stem then one map per stage: 4-D per-layer maps
  (CNNs; Swin's ``reshaped_hidden_states``) keep the first map as the stem and the last map of every run of
  equal resolution as that stage's output, so a per-block MobileNetV2 and a per-stage ResNet both give
  stem + 4 stages. Token sequences (ViT-like) have no spatial maps: each layer's CLS token (mean token when
  the model has none) becomes a ``(B, D, 1, 1)`` "map", and the adapter reports ``hidden_states_are_maps =
  False`` so that losses comparing spatial maps (AT, NST, FSP) refuse the model with a clear error instead
  of computing something meaningless. No model here exposes pre-activation maps, so ``preact_hidden_states``
  repeat ``hidden_states`` (as the timm wrapper does).

``unwrap_model`` returns the wrapped ``PreTrainedModel``: that is what gets exported, so a distilled
MobileNetV2 is a plain ``MobileNetV2ForImageClassification`` that ``pipeline("image-classification")`` loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .modeling_common import ZooPreTrainedModel
from .modeling_outputs import DistillationModelOutput

__all__ = [
    "DistillationAdapter",
    "InputAdapter",
    "InputSpec",
    "adapt_model",
    "ensure_distillation_model",
    "needs_adapter",
    "unwrap_model",
]

# Where the head of a transformers image classifier lives, in the order tried. DeiT's distilled variant
# averages two heads; its ``cls_classifier`` reads the CLS token, the usual penultimate vector.
_HEAD_NAMES = ("classifier", "cls_classifier", "head", "fc")

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class InputSpec:
    """The input a model expects: square ``image_size`` and ``mean``/``std`` on the [0, 1] scale.

    ``None`` fields mean "whatever the batch has" (the data's size, the data's normalisation): the case of a
    model trained by icd-hf on the same dataset, and of a fresh model. ``source`` says where the values come
    from, for logs and error messages.
    """

    image_size: int | None = None
    mean: Triple | None = None
    std: Triple | None = None
    source: str = "the data"

    def with_image_size(self, image_size: int | None, source: str) -> InputSpec:
        """A copy with ``image_size`` replaced (an explicit override), or ``self`` when it is ``None``."""
        if image_size is None:
            return self
        return InputSpec(int(image_size), self.mean, self.std, f"{source} (size), {self.source} (normalisation)")

    def resolved(self, data_size: int | None, data_mean: Sequence[float], data_std: Sequence[float]) -> InputSpec:
        """The concrete spec: ``None`` fields filled with the data's values."""
        return InputSpec(
            self.image_size if self.image_size is not None else data_size,
            tuple(float(v) for v in (self.mean if self.mean is not None else data_mean)),  # type: ignore[arg-type]
            tuple(float(v) for v in (self.std if self.std is not None else data_std)),  # type: ignore[arg-type]
            self.source,
        )


class InputAdapter(nn.Module):
    """From a batch normalised with the data's ``mean``/``std`` to the input a model expects.

    ``x_model = (x * data_std + data_mean - mean) / std``, after resizing to ``image_size``: resizing (bilinear,
    antialiased when shrinking) is linear with weights summing to one, so it commutes with the per-channel affine
    map and is done first, on whichever tensor is smaller. Holds no parameters; its buffers are not persistent,
    so checkpoints do not change with it.
    """

    def __init__(self, data_mean: Sequence[float], data_std: Sequence[float], spec: InputSpec) -> None:
        super().__init__()
        mean = spec.mean if spec.mean is not None else data_mean
        std = spec.std if spec.std is not None else data_std
        for name, values in (("data_std", data_std), ("std", std)):
            if len(values) != 3 or any(float(v) <= 0 for v in values):
                raise ValueError(f"{name} needs 3 positive values, got {list(values)}.")
        d_mean, d_std = torch.tensor(data_mean, dtype=torch.float32), torch.tensor(data_std, dtype=torch.float32)
        m_mean, m_std = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
        self.register_buffer("scale", (d_std / m_std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((d_mean - m_mean) / m_std).view(1, 3, 1, 1), persistent=False)
        self.renormalise = not (torch.allclose(d_mean, m_mean) and torch.allclose(d_std, m_std))
        self.image_size = spec.image_size
        self.spec = spec

    @property
    def is_identity(self) -> bool:
        """Nothing to do: no renormalisation and no fixed size."""
        return not self.renormalise and self.image_size is None

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        size = self.image_size
        if size is not None and tuple(pixel_values.shape[-2:]) != (size, size):
            shrink = pixel_values.shape[-1] > size or pixel_values.shape[-2] > size
            pixel_values = F.interpolate(
                pixel_values, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
            )
        if self.renormalise:
            pixel_values = pixel_values * self.scale.to(pixel_values.dtype) + self.shift.to(pixel_values.dtype)
        return pixel_values

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}, renormalise={self.renormalise}, source={self.spec.source!r}"


def needs_adapter(model: nn.Module) -> bool:
    """Whether ``model`` returns something other than ``DistillationModelOutput`` (a ``transformers`` classifier).

    Zoo and timm-wrapper models, loaded with icd-hf or through ``trust_remote_code`` (``transformers_modules``),
    emit it natively; so do custom modules. Only classes of the ``transformers`` library itself are converted.
    """
    if isinstance(model, (ZooPreTrainedModel, DistillationAdapter)):
        return False
    return isinstance(model, PreTrainedModel) and type(model).__module__.startswith("transformers.")


def _find_head(model: nn.Module) -> nn.Module:
    for name in _HEAD_NAMES:
        head = getattr(model, name, None)
        if isinstance(head, nn.Module):
            return head
    raise ValueError(
        f"{type(model).__name__} has no classification head named {' / '.join(_HEAD_NAMES)}, so icd-hf cannot find "
        f"its penultimate (pooled) feature. Use an AutoModelForImageClassification model, or wrap it in a module "
        f"that returns icd_hf.models.DistillationModelOutput."
    )


def _stage_maps(maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Stem + one map per stage from per-layer maps: the first map, then the last map of each resolution run."""
    stem, rest = maps[0], maps[1:]
    stages = [m for i, m in enumerate(rest) if i + 1 == len(rest) or rest[i + 1].shape[-2:] != m.shape[-2:]]
    return (stem, *stages)


class DistillationAdapter(nn.Module):
    """An image classifier behind the icd-hf model interface: input adaptation + ``DistillationModelOutput``.

    Args:
        model: any ``PreTrainedModel`` image classifier. A ``transformers`` classifier's output is converted
            (see the module docstring); a zoo/timm model's is passed through.
        input_adapter: maps the data's batch to the model's input; ``None`` feeds the batch unchanged.

    ``config`` is the wrapped model's config; ``unwrap_model`` gives the model to export.
    """

    def __init__(self, model: PreTrainedModel, input_adapter: InputAdapter | None = None) -> None:
        super().__init__()
        self.model = model
        self.input_adapter = input_adapter if input_adapter is not None and not input_adapter.is_identity else None
        self.convert_output = needs_adapter(model)
        self._head = _find_head(model) if self.convert_output else None
        # Known once hidden states have been computed (probe_feature_spec does that before any loss is built).
        self.hidden_states_are_maps: bool | None = None if self.convert_output else True

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def input_spec(self) -> InputSpec | None:
        return self.input_adapter.spec if self.input_adapter is not None else None

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> DistillationModelOutput:
        if self.input_adapter is not None:
            pixel_values = self.input_adapter(pixel_values)
        if not self.convert_output:
            return self.model(pixel_values=pixel_values, labels=labels, output_hidden_states=output_hidden_states)
        return self._converted_forward(pixel_values, labels, bool(output_hidden_states))

    def _converted_forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None, output_hidden_states: bool
    ) -> DistillationModelOutput:
        captured: dict[str, Any] = {}
        base = self.model.base_model if self.model.base_model is not self.model else None

        def head_hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            captured.setdefault("head_input", args[0])

        def base_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            captured["base_output"] = output

        handles = [self._head.register_forward_pre_hook(head_hook)]
        if base is not None:
            handles.append(base.register_forward_hook(base_hook))
        try:
            out = self.model(pixel_values=pixel_values, output_hidden_states=output_hidden_states)
        finally:
            for handle in handles:
                handle.remove()
        logits = out["logits"] if isinstance(out, ModelOutput) else out[0]
        pooled = self._pooled(captured)
        hidden = self._hidden(out) if output_hidden_states else None
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return DistillationModelOutput(
            loss=loss, logits=logits, pooler_output=pooled, hidden_states=hidden, preact_hidden_states=hidden
        )

    def _pooled(self, captured: dict[str, Any]) -> torch.Tensor:
        if "head_input" not in captured:
            raise RuntimeError(
                f"{type(self.model).__name__}'s forward did not call its head {type(self._head).__name__}: cannot "
                f"read the pooled feature."
            )
        head_input = captured["head_input"].flatten(1)
        base_output = captured.get("base_output")
        pooler = base_output.get("pooler_output") if isinstance(base_output, ModelOutput) else None
        # The base model's pooled vector, when it is what the head reads, is taken before the head's dropout.
        if isinstance(pooler, torch.Tensor) and pooler.flatten(1).shape == head_input.shape:
            return pooler.flatten(1)
        return head_input

    def _hidden(self, out: Any) -> tuple[torch.Tensor, ...]:
        hidden = out.get("reshaped_hidden_states") or out.get("hidden_states")
        if not hidden:
            raise ValueError(
                f"{type(self.model).__name__} returned no hidden_states with output_hidden_states=True; it can only "
                f"be used with losses that read only logits and the pooled feature "
                f"(icd_hf.losses.losses_without_hidden_states())."
            )
        if all(h.dim() == 4 for h in hidden):
            self.hidden_states_are_maps = True
            return _stage_maps(hidden)
        if all(h.dim() == 3 for h in hidden):
            self.hidden_states_are_maps = False
            embeddings = getattr(self.model.base_model, "embeddings", None)
            has_cls = getattr(embeddings, "cls_token", None) is not None
            return tuple((h[:, 0] if has_cls else h.mean(dim=1))[:, :, None, None] for h in hidden)
        raise ValueError(
            f"{type(self.model).__name__} returned hidden states of shapes {[tuple(h.shape) for h in hidden]}: "
            f"neither (B, C, H, W) maps nor (B, tokens, D) sequences."
        )


def ensure_distillation_model(model: nn.Module) -> nn.Module:
    """``model`` itself when it emits ``DistillationModelOutput``, else wrapped in a ``DistillationAdapter``."""
    return DistillationAdapter(model) if needs_adapter(model) else model


def adapt_model(
    model: PreTrainedModel, spec: InputSpec, data_mean: Sequence[float], data_std: Sequence[float]
) -> nn.Module:
    """``model`` ready for the ``Distiller``: wrapped when it needs output conversion or input adaptation.

    A zoo model whose spec is the data's (the common case) is returned as is, so nothing changes for it.
    """
    adapter = InputAdapter(data_mean, data_std, spec)
    if adapter.is_identity and not needs_adapter(model):
        return model
    return DistillationAdapter(model, adapter)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model to export: through ``torch.compile`` and ``DistillationAdapter`` wrappers."""
    model = getattr(model, "_orig_mod", model)
    if isinstance(model, DistillationAdapter):
        model = getattr(model.model, "_orig_mod", model.model)
    return model
