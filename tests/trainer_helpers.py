"""Small, fast building blocks for the trainer tests: a learnable synthetic image dataset and tiny models."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from icd_hf.models import create_model
from icd_hf.trainer import DistillationTrainingArguments


class ClassBlobs(Dataset):
    """``n`` 32x32 images: a class-dependent mean colour pattern plus noise, so a few steps already learn."""

    def __init__(self, n: int = 64, num_classes: int = 4, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % num_classes
        prototypes = torch.randn(num_classes, 3, 32, 32, generator=g)
        self.images = prototypes[self.labels] + 0.5 * torch.randn(n, 3, 32, 32, generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.images[i], "labels": self.labels[i], "index": torch.tensor(i)}


def tiny_pair(num_classes: int = 4, seed: int = 0):
    torch.manual_seed(seed)
    return create_model("resnet8", num_classes=num_classes), create_model("resnet8", num_classes=num_classes)


def tiny_args(output_dir, **overrides) -> DistillationTrainingArguments:
    values = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=16,
        per_device_eval_batch_size=32,
        learning_rate=0.05,
        optim="sgd",
        optim_args="momentum=0.9",
        weight_decay=5e-4,
        max_steps=3,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
        disable_tqdm=True,
    )
    values.update(overrides)
    return DistillationTrainingArguments(**values)


def fast_path_trainer(output_dir, method: str = "icd+kd"):
    """A ``DistillationTrainer`` of a resnet8 pair on ``ClassBlobs`` with the fast path on (uint8 copy of the data
    on the device); returns ``(trainer, student)``."""
    from icd_hf.trainer import DistillationTrainer

    data = ClassBlobs()
    images = ((data.images - data.images.min()) / (data.images.max() - data.images.min()) * 255).to(torch.uint8)
    student, teacher = tiny_pair()
    trainer = DistillationTrainer(
        model=student, teacher=teacher, method=method, args=tiny_args(output_dir, fast_path=True), train_dataset=data
    )
    trainer.enable_fast_path(images.permute(0, 2, 3, 1), data.labels, (0.5,) * 3, (0.25,) * 3)
    return trainer, student
