"""What a run measures: top-1/top-5 accuracy for the Trainer's evaluation, and the size of a model."""

from __future__ import annotations

import torch
from torch import nn
from transformers import EvalPrediction

__all__ = ["accuracy_metrics", "count_parameters", "topk_predictions"]


def topk_predictions(logits: torch.Tensor, labels: torch.Tensor | None = None, k: int = 5) -> torch.Tensor:
    """``preprocess_logits_for_metrics``: keep only the top-k class ids, not the (N, C) logits."""
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.topk(min(k, logits.shape[-1]), dim=-1).indices


def accuracy_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
    """Top-1 / top-5 accuracy (%) from the top-k predictions kept by ``topk_predictions``."""
    preds = torch.as_tensor(eval_pred.predictions)
    labels = torch.as_tensor(eval_pred.label_ids).reshape(-1, 1)
    hits = preds == labels
    return {"top1": 100.0 * hits[:, 0].float().mean().item(), "top5": 100.0 * hits.any(-1).float().mean().item()}


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not), as the model cards and results report it."""
    return sum(p.numel() for p in model.parameters())
