"""Linear-probe transfer: how well do a frozen student's features separate the classes of another dataset?

Paper table 3 (as CRD, Tian et al. 2020, section 4.3 "transferability of representations"): the student's
penultimate features, computed once on STL-10 / Tiny ImageNet resized to 32x32, are fed to a linear
classifier trained on the target training split; its top-1 on the target test split measures how transferable
the distilled representation is.

Training recipe (chosen for robustness, not tuned per dataset; every knob is an argument):

* features are standardised with the per-dimension mean/std of the *training* features (dimensions that never
  vary, e.g. dead ReLUs, are left unscaled), so one learning rate suits any backbone;
* multinomial logistic regression: ``nn.Linear`` initialised at zero (the problem is convex, so the start only
  affects speed), cross-entropy loss;
* AdamW (decoupled weight decay) on shuffled mini-batches, cosine learning-rate decay to zero over all steps;
* the classifier of the *last* epoch is evaluated once on the test features. No test-set selection of
  epochs or hyper-parameters.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["standardise_features", "train_linear_probe"]


def standardise_features(
    train_feats: torch.Tensor, *others: torch.Tensor, eps: float = 1e-6
) -> tuple[torch.Tensor, ...]:
    """Centre and scale every dimension with the training features' statistics; apply the same map to ``others``.

    Dimensions whose training std is below ``eps`` (constant features) are only centred, not divided by ~0.
    """
    mean = train_feats.mean(dim=0, keepdim=True)
    std = train_feats.std(dim=0, unbiased=False, keepdim=True)
    std = torch.where(std < eps, torch.ones_like(std), std)
    return tuple((x - mean) / std for x in (train_feats, *others))


def _check_inputs(feats: torch.Tensor, labels: torch.Tensor, split: str) -> None:
    if feats.ndim != 2:
        raise ValueError(f"{split}_feats must be (N, D), got shape {tuple(feats.shape)}; flatten or pool them first.")
    if labels.ndim != 1 or labels.shape[0] != feats.shape[0]:
        raise ValueError(
            f"{split}_labels must be (N,) with N = {feats.shape[0]} rows of {split}_feats, got {tuple(labels.shape)}."
        )
    if labels.numel() == 0:
        raise ValueError(f"The {split} split is empty.")
    if labels.min() < 0:
        raise ValueError(f"{split}_labels has negative values; labels must be class indices 0..C-1.")


@torch.no_grad()
def _accuracy(classifier: nn.Module, feats: torch.Tensor, labels: torch.Tensor, batch_size: int) -> dict[str, float]:
    correct1 = correct5 = 0
    loss = 0.0
    num_classes = classifier.out_features
    k = min(5, num_classes)
    for start in range(0, feats.shape[0], batch_size):
        logits = classifier(feats[start : start + batch_size])
        target = labels[start : start + batch_size]
        loss += float(F.cross_entropy(logits, target, reduction="sum"))
        topk = logits.topk(k, dim=1).indices
        correct1 += int((topk[:, 0] == target).sum())
        correct5 += int((topk == target[:, None]).any(dim=1).sum())
    n = feats.shape[0]
    return {"top1": 100.0 * correct1 / n, "top5": 100.0 * correct5 / n, "loss": loss / n}


def train_linear_probe(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    epochs: int = 100,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    batch_size: int | None = 256,
    seed: int = 0,
    num_classes: int | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Fit a linear classifier on frozen training features and report its accuracy on the test features.

    Args:
        train_feats, train_labels: ``(N, D)`` features and ``(N,)`` class indices of the target training split.
        test_feats, test_labels: the same for the target test split.
        epochs: passes over the training features.
        lr: peak AdamW learning rate (cosine-decayed to zero).
        weight_decay: AdamW decoupled weight decay (L2 regularisation of the classifier).
        batch_size: mini-batch size; ``None`` or ``0`` means full-batch.
        seed: seeds the mini-batch order (the zero initialisation has no randomness), so results repeat exactly.
        num_classes: number of classes; default ``1 + max label`` over both splits.
        device: where to train; default where ``train_feats`` lives.

    Returns:
        ``{"top1", "top5", "test_loss", "train_top1", "train_loss"}`` (accuracies in %, top-5 capped at the number
        of classes) plus the settings used (``num_classes``, ``feature_dim``, ``num_train``, ``num_test``,
        ``epochs``, ``lr``, ``weight_decay``, ``batch_size``, ``seed``).

    Example:
        >>> result = train_linear_probe(tr_x, tr_y, te_x, te_y, epochs=50)
        >>> print(f"linear-probe top-1 {result['top1']:.2f}%")
    """
    _check_inputs(train_feats, train_labels, "train")
    _check_inputs(test_feats, test_labels, "test")
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(
            f"train and test features have different widths ({train_feats.shape[1]} vs {test_feats.shape[1]}); "
            f"they must come from the same model."
        )
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    device = torch.device(device) if device is not None else train_feats.device
    seen_classes = int(max(train_labels.max(), test_labels.max())) + 1
    if num_classes is None:
        num_classes = seen_classes
    elif num_classes < seen_classes:
        raise ValueError(f"num_classes={num_classes} but the labels go up to {seen_classes - 1}.")

    x_train, x_test = standardise_features(train_feats.float().to(device), test_feats.float().to(device))
    y_train, y_test = train_labels.long().to(device), test_labels.long().to(device)
    n = x_train.shape[0]
    step_size = n if not batch_size or batch_size >= n else int(batch_size)
    steps_per_epoch = math.ceil(n / step_size)

    classifier = nn.Linear(x_train.shape[1], num_classes).to(device)
    nn.init.zeros_(classifier.weight)
    nn.init.zeros_(classifier.bias)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator).to(device)
            for start in range(0, n, step_size):
                idx = order[start : start + step_size]
                loss = F.cross_entropy(classifier(x_train[idx]), y_train[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()

    eval_batch = max(step_size, 1024)
    test = _accuracy(classifier, x_test, y_test, eval_batch)
    train = _accuracy(classifier, x_train, y_train, eval_batch)
    return {
        "top1": test["top1"],
        "top5": test["top5"],
        "test_loss": test["loss"],
        "train_top1": train["top1"],
        "train_loss": train["loss"],
        "num_classes": num_classes,
        "feature_dim": int(x_train.shape[1]),
        "num_train": int(n),
        "num_test": int(x_test.shape[0]),
        "epochs": epochs,
        "lr": lr,
        "weight_decay": weight_decay,
        "batch_size": step_size,
        "seed": seed,
    }
