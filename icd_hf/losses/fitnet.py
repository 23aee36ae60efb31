"""FitNet hints: regress an intermediate teacher map from the student's through a small conv regressor.

Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015. https://arxiv.org/abs/1412.6550
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import float32_math, hidden_maps
from .base import BatchContext, DistillationLoss, FeatureSpec, register_loss


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class ConvRegressor(nn.Module):
    """Map a student ``(C_s, H_s, W_s)`` map to the teacher's ``(C_t, H_t, W_t)``: conv, BatchNorm, optional ReLU.

    The conv is chosen from the spatial sizes as RepDistiller's ``ConvReg``: stride-2 3x3 conv when the student
    map is twice as large, stride-2 4x4 transposed conv when it is half as large, otherwise a stride-1 conv
    whose kernel ``(1 + H_s - H_t, 1 + W_s - W_t)`` shrinks it to the teacher's size. Also AB's connector
    (``use_relu=False``).
    """

    def __init__(
        self,
        student_shape: tuple[int, int, int],
        teacher_shape: tuple[int, int, int],
        use_relu: bool = True,
    ) -> None:
        super().__init__()
        s_c, s_h, s_w = student_shape
        t_c, t_h, t_w = teacher_shape
        if s_h == 2 * t_h:
            self.conv: nn.Module = nn.Conv2d(s_c, t_c, kernel_size=3, stride=2, padding=1)
            out = (_conv_out(s_h, 3, 2, 1), _conv_out(s_w, 3, 2, 1))
        elif 2 * s_h == t_h:
            self.conv = nn.ConvTranspose2d(s_c, t_c, kernel_size=4, stride=2, padding=1)
            out = (2 * s_h, 2 * s_w)
        elif s_h >= t_h and s_w >= t_w:
            self.conv = nn.Conv2d(s_c, t_c, kernel_size=(1 + s_h - t_h, 1 + s_w - t_w))
            out = (t_h, t_w)
        else:
            out = None
        if out != (t_h, t_w):
            raise ValueError(
                f"Cannot regress a student map of spatial size {s_h}x{s_w} onto a teacher map of {t_h}x{t_w}: the "
                f"regressor handles a student map 2x larger, 2x smaller, or larger than the teacher's. Pick a "
                f"hint layer where the sizes are compatible (hint_layer=...)."
            )
        self.bn = nn.BatchNorm2d(t_c)
        self.use_relu = use_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x) if self.use_relu else x


@register_loss
class FitNetLoss(DistillationLoss):
    """FitNet hint loss: ``MSE(regressor(student.hidden_states[k]), teacher.hidden_states[k])``.

    Romero et al., ICLR 2015 (https://arxiv.org/abs/1412.6550); RepDistiller ``distiller_zoo/FitNet.py`` with
    ``models/util.py:ConvReg`` and ``train_student.py --distill hint``.

    Hyper-parameters:
        hint_layer: index into ``hidden_states`` (stem = 0) of the hint/guided maps, default 2. RepDistiller's
            ``--hint_layer 2`` indexes its feature list ``[stem, stage1, stage2, stage3, pooled]``, i.e. the same
            map: the middle stage of a three-stage CIFAR network. Negative indices count from the end.

    The regressor (conv + BatchNorm + ReLU) is trained with the student. As in RepDistiller's CIFAR runs,
    FitNet's original hint-pre-training stage is skipped (``init_epochs = 0``). Default weight 100.
    """

    name = "fitnet"
    needs_hidden_states = True
    default_weight = 100.0

    # The paper, and how the cards and results tables present the method.
    bibtex = """@inproceedings{romero2015fitnets,
  title     = {FitNets: Hints for Thin Deep Nets},
  author    = {Romero, Adriana and Ballas, Nicolas and Kahou, Samira Ebrahimi and Chassang, Antoine and
               Gatta, Carlo and Bengio, Yoshua},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2015}
}"""
    paper_name = "FitNet"
    description = "the student regresses a middle teacher feature map from its own (hint learning)."
    table_order = 1

    def __init__(self, student_spec: FeatureSpec, teacher_spec: FeatureSpec, *, hint_layer: int = 2) -> None:
        super().__init__(student_spec, teacher_spec)
        n = min(len(student_spec.hidden_shapes), len(teacher_spec.hidden_shapes))
        if not -n <= hint_layer < n:
            raise ValueError(
                f"FitNet hint_layer={hint_layer} is out of range: student has {len(student_spec.hidden_shapes)} "
                f"and teacher {len(teacher_spec.hidden_shapes)} hidden_states (stem = 0); use 0..{n - 1}."
            )
        self.hint_layer = int(hint_layer)
        self.regressor = ConvRegressor(
            student_spec.hidden_shapes[self.hint_layer], teacher_spec.hidden_shapes[self.hint_layer]
        )

    def compute(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput, batch: BatchContext
    ) -> torch.Tensor:
        f_s = hidden_maps(student, "FitNet")[self.hint_layer]
        f_t = hidden_maps(teacher, "FitNet", role="teacher")[self.hint_layer].detach()
        pred = self.regressor(f_s)
        if pred.shape != f_t.shape:
            raise ValueError(
                f"FitNet regressor output {tuple(pred.shape)} does not match the teacher hint {tuple(f_t.shape)}: "
                f"the inputs must have the image size the loss was built for."
            )
        with float32_math(pred):
            return F.mse_loss(pred.float(), f_t.float())
