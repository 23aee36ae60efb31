"""Contrastive Representation Distillation (Tian, Krishnan & Isola, ICLR 2020)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import LinearEmbed, float32_math, gather_for_memory, mean_across_processes, require_field
from .base import AT_LEAST_ONE, POSITIVE, BatchContext, DistillationLoss, FeatureSpec, Range, register_loss

_EPS = 1e-7  # RepDistiller's eps in the NCE ratio


class ContrastMemory(nn.Module):
    """The two memory banks of CRD and the NCE scores computed against them (RepDistiller ``crd/memory.py``).

    ``memory_student`` (the reference's ``memory_v1``) holds a momentum average of every training sample's
    student embedding, ``memory_teacher`` (``memory_v2``) the teacher's; both start uniform in
    ``[-1/sqrt(d/3), 1/sqrt(d/3)]``. For a batch, each student embedding is scored against ``K + 1`` rows of
    the *teacher* memory (the positive, then ``K`` negatives) and each teacher embedding against the same rows
    of the *student* memory: ``exp(m . v / T) / Z``. The constants ``Z`` (``z_student`` for student-anchored
    scores, ``z_teacher`` for teacher-anchored ones) are set once, from the first batch, to
    ``mean(exp(m . v / T)) * num_data``; they are buffers (``-1`` = not yet set) so a resumed run keeps them.
    """

    def __init__(self, feat_dim: int, num_data: int, nce_k: int, nce_t: float, nce_mom: float) -> None:
        super().__init__()
        self.num_data = int(num_data)
        self.nce_k = int(nce_k)
        self.nce_t = float(nce_t)
        self.nce_mom = float(nce_mom)
        stdv = 1.0 / math.sqrt(feat_dim / 3)
        self.register_buffer("memory_student", torch.rand(num_data, feat_dim).mul_(2 * stdv).add_(-stdv))
        self.register_buffer("memory_teacher", torch.rand(num_data, feat_dim).mul_(2 * stdv).add_(-stdv))
        self.register_buffer("z_student", torch.tensor(-1.0))
        self.register_buffer("z_teacher", torch.tensor(-1.0))
        self._z_ready = False  # cache of "both Z are set", to read the buffers (a device sync) only until then

    def extra_repr(self) -> str:
        return f"num_data={self.num_data}, nce_k={self.nce_k}, nce_t={self.nce_t}, nce_mom={self.nce_mom}"

    def sample_contrast_indices(self, index: torch.Tensor) -> torch.Tensor:
        """``(B, K + 1)`` memory rows: column 0 the batch's own indices, then ``K`` uniform random draws.

        As the reference's default (``idx=None``) path: its ``AliasMethod`` over uniform weights is a uniform
        draw with replacement, and neither the sample itself nor its class is excluded from the negatives.
        Drawing with replacement also makes ``nce_k >= num_data`` (tiny datasets) work as is.
        """
        contrast = torch.randint(
            0, self.num_data, (index.shape[0], self.nce_k + 1), device=self.memory_student.device
        )
        contrast[:, 0] = index
        return contrast

    def forward(
        self, v_student: torch.Tensor, v_teacher: torch.Tensor, index: torch.Tensor, contrast_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores ``(B, K + 1)`` of student and teacher embeddings, then the momentum update of both memories."""
        batch_size, dim = v_student.shape
        rows = contrast_index.reshape(-1)
        weight_teacher = self.memory_teacher.index_select(0, rows).view(batch_size, -1, dim)
        weight_student = self.memory_student.index_select(0, rows).view(batch_size, -1, dim)
        out_student = torch.exp(torch.bmm(weight_teacher, v_student.unsqueeze(2)).squeeze(2) / self.nce_t)
        out_teacher = torch.exp(torch.bmm(weight_student, v_teacher.unsqueeze(2)).squeeze(2) / self.nce_t)
        if not self._z_ready:
            self._set_normalizers(out_student, out_teacher)
        out_student = out_student / self.z_student
        out_teacher = out_teacher / self.z_teacher
        self.update(v_student, v_teacher, index)
        return out_student, out_teacher

    @torch.no_grad()
    def _set_normalizers(self, out_student: torch.Tensor, out_teacher: torch.Tensor) -> None:
        # Processes would otherwise each estimate their own Z from their own first batch: agree on the mean.
        if self.z_student.item() < 0:
            self.z_student.copy_(mean_across_processes(out_student.mean() * self.num_data))
        if self.z_teacher.item() < 0:
            self.z_teacher.copy_(mean_across_processes(out_teacher.mean() * self.num_data))
        self._z_ready = True

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super()._load_from_state_dict(*args, **kwargs)
        self._z_ready = False  # re-read the loaded constants on the next forward

    @torch.no_grad()
    def update(self, v_student: torch.Tensor, v_teacher: torch.Tensor, index: torch.Tensor) -> None:
        """``m[i] <- normalize(mom * m[i] + (1 - mom) * v)`` for the batch's rows, in both memories.

        Under ``torch.distributed`` the embeddings and indices of every process are gathered first, so every
        process applies the same update and the memories stay identical.
        """
        v_student, v_teacher, index = gather_for_memory(v_student, v_teacher, index)
        index = index.to(self.memory_student.device)
        for memory, v in ((self.memory_student, v_student), (self.memory_teacher, v_teacher)):
            mixed = memory.index_select(0, index).mul_(self.nce_mom).add_(v.to(memory.dtype), alpha=1 - self.nce_mom)
            memory.index_copy_(0, index, mixed.div_(mixed.norm(dim=1, keepdim=True)))


def contrast_loss(scores: torch.Tensor, num_data: int) -> torch.Tensor:
    """NCE loss of CRD (eq. 18 of the paper; RepDistiller ``ContrastLoss``) on ``(B, K + 1)`` scores.

    With ``P_n = 1 / num_data``: ``-(1/B) * sum_b [log(x_pos / (x_pos + K P_n + eps))
    + sum_k log(K P_n / (x_neg,k + K P_n + eps))]``, column 0 being the positive.
    """
    batch_size, k = scores.shape[0], scores.shape[1] - 1
    noise = k / float(num_data)
    positive, negatives = scores[:, 0], scores[:, 1:]
    log_d1 = torch.log(positive / (positive + noise + _EPS))
    log_d0 = torch.log(noise / (negatives + noise + _EPS))
    return -(log_d1.sum() + log_d0.sum()) / batch_size


@register_loss
class CrdLoss(DistillationLoss):
    """CRD: NCE between student and teacher embeddings with negatives from a memory bank of the whole dataset.

    Paper: Y. Tian, D. Krishnan, P. Isola, "Contrastive Representation Distillation", ICLR 2020,
    arXiv:1910.10699. Reproduces RepDistiller ``crd/criterion.py`` (``CRDLoss``, ``ContrastLoss``, ``Embed``)
    and ``crd/memory.py`` (``ContrastMemory``, see that class here): penultimate features go through a
    linear + L2-norm head per model, each embedding is contrasted against ``nce_k`` negatives of the other
    model's memory, and the loss is the sum of the student-anchored and the teacher-anchored NCE losses.

    Negatives follow ``ContrastMemory``'s own sampler (uniform over the dataset, with replacement; the
    sample's own index may reappear among them). RepDistiller's CIFAR-100 script instead has its dataset
    return ``contrast_idx`` drawn from *other classes* without replacement; icd-hf datasets return only
    ``index``, and with 100 classes a uniform negative is of the anchor's class 1% of the time.

    Hyper-parameters:
        num_data: number of training samples = rows of each memory bank (required; ``len(train_dataset)``).
        feat_dim: embedding size (default 128).
        nce_k: negatives per sample (default 16384).
        nce_t: temperature (default 0.07).
        nce_mom: memory momentum (default 0.5).

    ``needs_index``: the training batches must carry each sample's dataset ``index`` (icd_hf.data returns it).
    The memory banks and ``Z`` are buffers: checkpoints hold them and a resumed run continues exactly. In
    multi-process training each memory update uses the embeddings and indices gathered from every process.
    """

    name = "crd"
    needs_index = True
    default_weight = 0.8

    # The paper, and how the cards and results tables present the method.
    bibtex = """@inproceedings{tian2020contrastive,
  title     = {Contrastive Representation Distillation},
  author    = {Tian, Yonglong and Krishnan, Dilip and Isola, Phillip},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2020}
}"""
    paper_name = "CRD"
    description = "a contrastive loss between student and teacher embeddings with a memory bank of negatives."
    table_order = 12
    hyperparameter_ranges = {"num_data": AT_LEAST_ONE, "feat_dim": AT_LEAST_ONE, "nce_k": AT_LEAST_ONE,
                             "nce_t": POSITIVE, "nce_mom": Range(0, 1, high_open=True)}

    def __init__(
        self,
        student_spec: FeatureSpec,
        teacher_spec: FeatureSpec,
        num_data: int | None = None,
        feat_dim: int = 128,
        nce_k: int = 16384,
        nce_t: float = 0.07,
        nce_mom: float = 0.5,
    ) -> None:
        super().__init__(student_spec, teacher_spec)
        if num_data is None:
            raise ValueError(
                "CRD needs `num_data`, the number of training samples (the rows of its memory bank): pass it as "
                "a hyper-parameter, e.g. loss_overrides={'crd': {'num_data': len(train_dataset)}}."
            )
        if int(num_data) < 1 or int(nce_k) < 1:
            raise ValueError(f"CRD needs num_data >= 1 and nce_k >= 1, got num_data={num_data}, nce_k={nce_k}.")
        if not 0.0 <= nce_mom < 1.0:
            raise ValueError(f"CRD nce_mom must be in [0, 1), got {nce_mom}.")
        self.num_data = int(num_data)
        self.embed_student = LinearEmbed(student_spec.pooled_dim, feat_dim)
        self.embed_teacher = LinearEmbed(teacher_spec.pooled_dim, feat_dim)
        self.memory = ContrastMemory(feat_dim, self.num_data, nce_k, nce_t, nce_mom)

    def compute(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput, batch: BatchContext
    ) -> dict[str, torch.Tensor]:
        if batch.index is None:
            raise ValueError(
                "CRD needs the dataset index of every sample (its memory bank is indexed by them): the training "
                "dataset/collator must return an 'index' tensor next to 'pixel_values' and 'labels'."
            )
        f_s = require_field(student, "pooler_output", self.name, "student")
        f_t = require_field(teacher, "pooler_output", self.name, "teacher")
        index = batch.index.reshape(-1).long()
        if index.shape[0] != f_s.shape[0]:
            raise ValueError(f"CRD got {index.shape[0]} indices for a batch of {f_s.shape[0]} samples.")
        if index.device.type == "cpu":
            lo, hi = int(index.min()), int(index.max())
            if lo < 0 or hi >= self.num_data:
                raise ValueError(
                    f"CRD got dataset index {hi if hi >= self.num_data else lo} outside [0, num_data={self.num_data}): "
                    f"set num_data to the size of the training set."
                )
        else:
            # Reading the indices back would stall the accelerator's queue every step: check asynchronously.
            torch._assert_async(((index >= 0) & (index < self.num_data)).all(), "CRD index outside [0, num_data)")
        index = index.to(self.memory.memory_student.device)
        with float32_math(f_s):
            v_s = self.embed_student(f_s.float())
            v_t = self.embed_teacher(f_t.detach().float())
            contrast_index = self.memory.sample_contrast_indices(index)
            out_s, out_t = self.memory(v_s.float(), v_t.float(), index, contrast_index)
            loss_s = contrast_loss(out_s, self.num_data)
            loss_t = contrast_loss(out_t, self.num_data)
        return {"loss": loss_s + loss_t, "student_anchor": loss_s.detach(), "teacher_anchor": loss_t.detach()}
