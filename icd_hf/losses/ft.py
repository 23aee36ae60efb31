"""Factor Transfer (FT): a teacher paraphraser and a student translator meet in a compressed factor space.

Kim, Park & Kwak, "Paraphrasing Complex Network: Network Compression via Factor Transfer", NeurIPS 2018.
https://arxiv.org/abs/1802.04977
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..models.modeling_outputs import DistillationModelOutput
from ._utils import float32_math, hidden_maps, match_spatial_size
from .base import POSITIVE, BatchContext, DistillationLoss, FeatureSpec, Range, register_loss


def _conv_stack(channels: list[int], batch_norm: bool, transposed: bool = False) -> nn.Sequential:
    """3x3 stride-1 (transposed) convs ``channels[0] -> channels[1] -> ...``, each followed by [BN and]
    LeakyReLU(0.1), the block the FT authors use for both paraphraser and translator."""
    conv = nn.ConvTranspose2d if transposed else nn.Conv2d
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers.append(conv(c_in, c_out, kernel_size=3, stride=1, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.LeakyReLU(0.1))
    return nn.Sequential(*layers)


class Paraphraser(nn.Module):
    """Convolutional auto-encoder of the teacher map; its code (``rate * C_t`` channels) is the teacher factor."""

    def __init__(self, channels: int, factor_channels: int) -> None:
        super().__init__()
        self.encoder = _conv_stack([channels, channels, factor_channels, factor_channels], batch_norm=False)
        self.decoder = _conv_stack(
            [factor_channels, factor_channels, channels, channels], batch_norm=False, transposed=True
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(factor, reconstruction)``."""
        factor = self.encoder(x)
        return factor, self.decoder(factor)


def factor_map(factor: torch.Tensor, p: float) -> torch.Tensor:
    """``normalise(mean_c factor^p)`` flattened to ``(B, H*W)``: RepDistiller's ``FactorTransfer.factor``."""
    return F.normalize(factor.pow(p).mean(dim=1).flatten(1), dim=1)


@register_loss
class FTLoss(DistillationLoss):
    """FT: L1 distance between the normalised student (translator) and teacher (paraphraser) factors.

    Kim et al., NeurIPS 2018 (https://arxiv.org/abs/1802.04977); RepDistiller ``distiller_zoo/FT.py`` with
    ``models/util.py:Paraphraser``/``Translator`` and ``train_student.py --distill factor``.

    Both work on the last stage map (``hidden_states[-1]``). The paraphraser (three 3x3 convs down to
    ``int(rate * C_t)`` channels + a mirrored transposed-conv decoder, LeakyReLU 0.1, no BatchNorm) is trained
    first, for ``init_epochs = 30``, to reconstruct the teacher map (``init_loss`` = MSE of the
    reconstruction; ``init_parameters`` = the paraphraser only), then frozen. The translator (three 3x3 convs
    ``C_s -> C_s -> rate*C_t -> rate*C_t`` with BatchNorm and LeakyReLU) trains with the student. The main
    loss, as RepDistiller, is ``mean |Q_s - Q_t|^p2`` with ``Q = normalise(mean_c factor^p1)``: a factor
    *attention* map (the paper normalises the whole factor tensor instead).

    Hyper-parameters: ``rate`` (0.5), ``p1`` (2), ``p2`` (1). Default weight 200. Note: RepDistiller trains the
    paraphraser with lr 0.01 when the student is a ResNet/WRN (the run's lr, 0.05 or 0.01, otherwise); the
    trainer's initialisation stage uses the run's learning rate.
    """

    name = "ft"
    needs_hidden_states = True
    init_epochs = 30
    default_weight = 200.0

    # The paper, and how the cards and results tables present the method.
    bibtex = """@inproceedings{kim2018paraphrasing,
  title     = {Paraphrasing Complex Network: Network Compression via Factor Transfer},
  author    = {Kim, Jangho and Park, SeongUk and Kwak, Nojun},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2018}
}"""
    paper_name = "FT"
    description = "match the factors a paraphraser extracts from the teacher's last feature map."
    table_order = 9
    hyperparameter_ranges = {"rate": Range(0, 1, low_open=True), "p1": POSITIVE, "p2": POSITIVE}

    def __init__(
        self,
        student_spec: FeatureSpec,
        teacher_spec: FeatureSpec,
        *,
        rate: float = 0.5,
        p1: float = 2.0,
        p2: float = 1.0,
    ) -> None:
        super().__init__(student_spec, teacher_spec)
        s_channels, t_channels = student_spec.hidden_shapes[-1][0], teacher_spec.hidden_shapes[-1][0]
        factor_channels = int(t_channels * rate)
        if factor_channels < 1:
            raise ValueError(
                f"FT rate={rate} gives {factor_channels} factor channels for a {t_channels}-channel teacher map; "
                f"use a rate in (0, 1] with rate * C_t >= 1."
            )
        self.p1, self.p2 = float(p1), float(p2)
        self.paraphraser = Paraphraser(t_channels, factor_channels)
        self.translator = _conv_stack([s_channels, s_channels, factor_channels, factor_channels], batch_norm=True)

    def init_loss(self, student: DistillationModelOutput, teacher: DistillationModelOutput) -> torch.Tensor:
        """Reconstruction MSE of the teacher's last stage map through the paraphraser."""
        f_t = hidden_maps(teacher, "FT", role="teacher")[-1].detach()
        _, reconstruction = self.paraphraser(f_t)
        with float32_math(f_t):
            return F.mse_loss(reconstruction.float(), f_t.float())

    def init_parameters(self, student: nn.Module) -> Iterator[nn.Parameter]:
        """Only the paraphraser: the initialisation stage is an auto-encoder fit of the teacher features."""
        yield from self.paraphraser.parameters()

    def compute(
        self, student: DistillationModelOutput, teacher: DistillationModelOutput, batch: BatchContext
    ) -> torch.Tensor:
        factor_s = self.translator(hidden_maps(student, "FT")[-1])
        # The paraphraser is frozen after its initialisation stage: no gradient, so no update, no weight decay.
        with torch.no_grad():
            factor_t = self.paraphraser.encoder(hidden_maps(teacher, "FT", role="teacher")[-1])
        with float32_math(factor_s):
            factor_s, factor_t = match_spatial_size(factor_s.float(), factor_t.float())
            diff = factor_map(factor_s, self.p1) - factor_map(factor_t, self.p1)
            return diff.abs().mean() if self.p2 == 1 else diff.pow(self.p2).mean()
