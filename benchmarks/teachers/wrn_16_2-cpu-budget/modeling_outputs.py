"""The output every icd-hf model returns: logits plus what the distillation losses read. Its docstring is the
output contract of the zoo (``ZooPreTrainedModel.forward``), the timm wrapper and the transformers adapter."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput


@dataclass
class DistillationModelOutput(ModelOutput):
    """Output of every zoo model, of the timm wrapper and of ``DistillationAdapter``: the output contract.

    Attributes:
        loss: cross-entropy against ``labels`` when they are passed.
        logits: ``(B, num_classes)``: the classifier applied to ``pooler_output``.
        pooler_output: the penultimate (pre-logit) feature vector ``(B, D)``, i.e. ``forward_head(features,
            pre_logits=True)``; always returned because RKD/PKT/CC/CRD/ICD read it and it costs nothing.
        hidden_states: only with ``output_hidden_states=True``: the stem output followed by the output
            of every stage, each ``(B, C, H, W)``, after the activation. This is the ``feat[:-1]`` list of
            the CRD benchmark code: ``hidden_states[1:]`` are the intermediate blocks (AT, NST, VID),
            ``hidden_states[-1]`` is the last block's map (SP, FT), the middle entry is FitNet's hint.
        preact_hidden_states: with ``output_hidden_states=True``: the same maps before their final
            activation (AB needs the pre-ReLU responses). Entries equal ``hidden_states`` where a model has
            no trailing activation.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    preact_hidden_states: tuple[torch.FloatTensor, ...] | None = None
