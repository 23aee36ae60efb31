"""The reference: a distillation loop written the way the classic CIFAR code does it.

This mirrors ``train_student.py`` of RepDistiller (Tian et al., "Contrastive Representation Distillation",
ICLR 2020, https://github.com/HobbitLong/RepDistiller), the code base most CIFAR distillation papers build on:

* data: a ``torch.utils.data.Dataset`` over the uint8 image array (``CIFAR100Instance``: returns
  ``(img, target, index)``), each sample turned into a PIL image and passed through torchvision's
  ``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize(mean, std)`` in CPU
  ``DataLoader`` workers (``shuffle=True``, ``num_workers`` configurable, no pinned memory);
* step: ``input.float()`` moved to the device, student forward, teacher forward under ``torch.no_grad()``,
  ``gamma * CE + sum_k beta_k * loss_k``, top-1/top-5 accuracy and ``loss.item()`` into average meters
  (a host sync every step), ``zero_grad``/``backward``/``step`` of a plain ``torch.optim.SGD``; fp32, no
  ``torch.compile``, contiguous NCHW tensors.

The distillation terms are icd-hf's own loss modules (taken from a ``Distiller``), so the maths is identical to
the icd-hf paths and a throughput comparison measures only the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)


class UInt8ImageInstanceDataset(Dataset):
    """RepDistiller's ``CIFAR100Instance`` over any ``(N, H, W, 3)`` uint8 array: ``(img, target, index)``."""

    def __init__(self, images: np.ndarray, labels: Sequence[int], transform: Any) -> None:
        self.data = np.ascontiguousarray(images)
        self.targets = [int(t) for t in labels]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        # As torchvision's CIFAR datasets: a PIL image per sample, so the transforms are the PIL ones.
        img = Image.fromarray(self.data[index])
        return self.transform(img), self.targets[index], index


def classic_train_transform(
    mean: Sequence[float] = CIFAR100_MEAN, std: Sequence[float] = CIFAR100_STD, size: int = 32, padding: int = 4
) -> T.Compose:
    return T.Compose(
        [T.RandomCrop(size, padding=padding), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)]
    )


def classic_train_loader(
    images: np.ndarray,
    labels: Sequence[int],
    batch_size: int,
    num_workers: int,
    mean: Sequence[float] = CIFAR100_MEAN,
    std: Sequence[float] = CIFAR100_STD,
) -> DataLoader:
    """``get_cifar100_dataloaders_sample``-style training loader (``is_instance=True``)."""
    dataset = UInt8ImageInstanceDataset(images, labels, classic_train_transform(mean, std, size=images.shape[1]))
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers)


class AverageMeter:
    """Running average, as in RepDistiller's ``helper/util.py``."""

    def __init__(self) -> None:
        self.val = self.avg = self.sum = 0.0
        self.count = 0

    def update(self, val: float | torch.Tensor, n: int = 1) -> None:
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count


def accuracy(output: torch.Tensor, target: torch.Tensor, topk: tuple[int, ...] = (1,)) -> list[torch.Tensor]:
    """Top-k accuracy (%) as RepDistiller computes it every step."""
    with torch.no_grad():
        maxk = min(max(topk), output.shape[1])
        batch_size = target.size(0)
        _, pred = output.topk(maxk, 1, True, True)
        pred = pred.t()
        correct = pred.eq(target.view(1, -1).expand_as(pred))
        return [correct[: min(k, maxk)].reshape(-1).float().sum(0, keepdim=True).mul_(100.0 / batch_size) for k in topk]


def reference_train_steps(
    student: nn.Module,
    teacher: nn.Module,
    criteria: Sequence[tuple[str, float, nn.Module]],
    ce_weight: float,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    num_steps: int,
    output_hidden_states: bool = False,
) -> Iterator[float]:
    """Run ``num_steps`` RepDistiller-style distillation steps, yielding each step's loss (already on the host).

    ``criteria`` are ``(name, weight, loss_module)`` triples of icd-hf ``DistillationLoss`` modules. The loader
    is re-iterated (a new epoch, new worker processes) whenever it runs out.
    """
    losses, top1, top5 = AverageMeter(), AverageMeter(), AverageMeter()
    student.train()
    teacher.eval()
    step, epoch = 0, 0
    while step < num_steps:
        for input, target, index in loader:
            input = input.float().to(device)
            target = target.to(device)
            index = index.to(device)

            # ===================forward=====================
            out_s = student(pixel_values=input, output_hidden_states=output_hidden_states)
            with torch.no_grad():
                out_t = teacher(pixel_values=input, output_hidden_states=output_hidden_states)

            loss = ce_weight * F.cross_entropy(out_s.logits, target)
            for _, weight, criterion in criteria:
                value = criterion(out_s, out_t, labels=target, index=index, epoch=float(epoch))
                loss = loss + weight * (value["loss"] if isinstance(value, dict) else value)

            acc1, acc5 = accuracy(out_s.logits, target, topk=(1, 5))
            losses.update(loss.item(), input.size(0))
            top1.update(acc1[0], input.size(0))  # a tensor: no sync, as in RepDistiller
            top5.update(acc5[0], input.size(0))

            # ===================backward=====================
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

            step += 1
            yield losses.val
            if step >= num_steps:
                return
        epoch += 1
