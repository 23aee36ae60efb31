"""The teacher and student of an experiment, each fed the input it expects from one augmented batch.

The data pipeline produces one batch per step: one random crop and flip, at one resolution, normalised with the
dataset's statistics. A Hub teacher (a 224-pixel ViT with ImageNet statistics) and a CIFAR-sized student cannot
both take that batch as it is, and two pipelines would give them different crops, which distillation must not
do: the student imitates the teacher *on the same image*. So the batch stays one, and each model gets its own
``InputAdapter`` (``icd_hf.models.modeling_hf_adapter``) that resizes and renormalises it on the device.

Which size and normalisation a model expects comes from ``input_spec_of``: its image processor, its icd-hf run,
its config, or the data's when nothing says otherwise (a fresh student is trained at the batch's size and
statistics). The student's own spec is written next to it at export as a ``ViTImageProcessor``, so
``pipeline("image-classification", model=run/student)`` feeds it what training fed it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn
from transformers import PreTrainedModel

from .config import ExperimentConfig
from .input_spec import build_image_processor, input_spec_of
from .models.modeling_hf_adapter import InputSpec, adapt_model

logger = logging.getLogger(__name__)

__all__ = ["AdaptedPair", "adapt_pair", "fallback_image_size"]


@dataclass
class AdaptedPair:
    """What the ``DistillationTrainer`` takes: the models as the ``Distiller`` runs them, the student's export
    processor, and the resolved input of each model (for logs and records)."""

    student: nn.Module
    teachers: list[nn.Module]
    processor: Any
    student_input: InputSpec
    teacher_inputs: list[InputSpec]
    teacher_names: list[str]

    def distillation_teacher(self, weighting: str = "uniform") -> nn.Module | None:
        """What the ``Distiller`` runs as its teacher: none, the one teacher, or a ``TeacherEnsemble`` of them."""
        if len(self.teachers) < 2:
            return self.teachers[0] if self.teachers else None
        from .distiller import TeacherEnsemble

        return TeacherEnsemble(self.teachers, names=self.teacher_names, weighting=weighting)


def fallback_image_size(cfg: ExperimentConfig) -> int | None:
    """The batch side for a dataset whose images vary in size: the largest input the models' processors or runs
    ask for (read without loading any weights), so no model gets an upsampled batch; ``None`` if none says."""
    sizes = [input_spec_of(cfg.student, None, cfg.student_image_size).image_size]
    sizes += [input_spec_of(source.checkpoint, None, cfg.teacher_image_size).image_size
              for source in cfg.teacher_sources()]
    known = [s for s in sizes if s]
    return max(known) if known else None


def adapt_pair(
    cfg: ExperimentConfig,
    info: Any,
    student: PreTrainedModel,
    teachers: Sequence[PreTrainedModel],
) -> AdaptedPair:
    """Wrap ``student`` and each teacher (``cfg.teacher_sources()``'s, in order) with the input adaptation (and
    output conversion) it needs.

    ``info`` is the datasets' ``ImageDatasetInfo``: its ``image_size``, ``mean`` and ``std`` describe the batch.
    """
    data = (info.image_size, info.mean, info.std)
    student_spec = input_spec_of(cfg.student, student, cfg.student_image_size)
    student_input = student_spec.resolved(*data)
    sources = cfg.teacher_sources()[: len(teachers)]
    names = [source.label for source in sources]
    adapted, inputs = [], []
    for name, source, teacher in zip(names, sources, teachers, strict=True):
        spec = input_spec_of(source.checkpoint, teacher, cfg.teacher_image_size)
        inputs.append(spec.resolved(*data))
        adapted.append(adapt_model(teacher, spec, info.mean, info.std))
        logger.info("Teacher %s input: %s", name, _describe(inputs[-1]))
    logger.info("Student input: %s (batch: %s px)", _describe(student_input), info.image_size)
    return AdaptedPair(
        student=adapt_model(student, student_spec, info.mean, info.std),
        teachers=adapted,
        processor=build_image_processor(student_input) if student_input.image_size else None,
        student_input=student_input,
        teacher_inputs=inputs,
        teacher_names=names,
    )


def _describe(spec: InputSpec) -> str:
    mean = ", ".join(f"{v:.3f}" for v in spec.mean or ())
    std = ", ".join(f"{v:.3f}" for v in spec.std or ())
    return f"{spec.image_size} px, mean ({mean}), std ({std}) from {spec.source}"
