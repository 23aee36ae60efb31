"""Activation Boundaries (AB) distillation.

Heo, Lee, Yun & Choi, "Knowledge Transfer via Distillation of Activation Boundaries Formed by Hidden Neurons",
AAAI 2019. https://arxiv.org/abs/1811.03233
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ._utils import StagewiseLoss, float32_math
from .base import NON_NEGATIVE, FeatureSpec, register_loss
from .fitnet import ConvRegressor


def activation_boundary_loss(source: torch.Tensor, target: torch.Tensor, margin: float) -> torch.Tensor:
    """Sum of the hinge-squared "alternative L2" of the AB paper over all neurons.

    A neuron the teacher keeps off (``target <= 0``) is pushed below ``-margin``; one it turns on pushed above
    ``+margin``; a neuron already on the right side by the margin costs nothing.
    """
    off = (source > -margin) & (target <= 0)
    on = (source <= margin) & (target > 0)
    return ((source + margin).pow(2) * off + (source - margin).pow(2) * on).sum()


@register_loss
class ABLoss(StagewiseLoss):
    """AB: transfer the teacher's activation boundaries (on/off pattern of pre-ReLU neurons) to the student.

    Heo et al., AAAI 2019 (https://arxiv.org/abs/1811.03233); RepDistiller ``distiller_zoo/AB.py`` with the
    ``Connector`` of ``models/util.py`` and the two-stage schedule of ``train_student.py --distill abound``.

    On every pair of ``preact_hidden_states[1:]``, a connector (identity when channels and size already match,
    else conv + BatchNorm, no ReLU) maps the student's pre-activation map to the teacher's shape; stage ``i`` of
    ``n`` is weighted ``2^(i - n + 1)`` (the last stage 1, each earlier one half the next), and each term is
    ``activation_boundary_loss / B * 3 / 1000`` (the reference's scaling).

    Schedule, as RepDistiller: an initialisation stage of ``init_epochs = 30`` epochs trains the student and
    the connectors on this loss alone (``init_loss``; ``init_parameters`` = the student's and the connectors'
    parameters). In the main stage RepDistiller adds nothing (its training loop sets the AB term to 0 whatever
    ``-b`` is; the CRD recipe's ``-b 1`` is inert), so ``forward`` returns 0 by default: AB's effect is the
    initialisation. Set ``main_stage=True`` to keep the AB term during distillation with the recipe weight 1.

    Hyper-parameters: ``margin`` (1.0), ``main_stage`` (False). Student and teacher must have the same number
    of stages.
    """

    name = "ab"
    init_epochs = 30
    default_weight = 1.0

    # The paper, and how the cards and results tables present the method.
    bibtex = """@inproceedings{heo2019knowledge,
  title     = {Knowledge Transfer via Distillation of Activation Boundaries Formed by Hidden Neurons},
  author    = {Heo, Byeongho and Lee, Minsik and Yun, Sangdoo and Choi, Jin Young},
  booktitle = {AAAI Conference on Artificial Intelligence},
  year      = {2019}
}"""
    paper_name = "AB"
    description = "transfer the activation boundaries (pre-ReLU signs) of the teacher's hidden neurons."
    table_order = 8
    hyperparameter_ranges = {"margin": NON_NEGATIVE}
    stage_preact = True  # the activation boundaries are the signs of the pre-ReLU responses

    def __init__(
        self,
        student_spec: FeatureSpec,
        teacher_spec: FeatureSpec,
        *,
        margin: float = 1.0,
        main_stage: bool = False,
    ) -> None:
        super().__init__(student_spec, teacher_spec)
        self.margin = float(margin)
        self.main_stage = bool(main_stage)
        self.connectors = nn.ModuleList(
            nn.Identity() if s == t else ConvRegressor(s, t, use_relu=False)
            for s, t in zip(student_spec.hidden_shapes[1:], teacher_spec.hidden_shapes[1:])
        )
        self.stage_weights = [2.0 ** (i - self.num_pairs + 1) for i in range(self.num_pairs)]

    def stage_term(self, index: int, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        source = self.connectors[index](f_s)
        if source.shape != f_t.shape:
            raise ValueError(
                f"AB connector output {tuple(source.shape)} does not match the teacher map {tuple(f_t.shape)} "
                f"at stage {index + 1}: the inputs must have the image size the loss was built for."
            )
        with float32_math(source):
            value = activation_boundary_loss(source.float(), f_t.float(), self.margin)
            return self.stage_weights[index] * value / f_s.shape[0] * 3 / 1000

    def init_parameters(self, student: nn.Module) -> Iterator[nn.Parameter]:
        """The student's and the connectors' parameters (the classifier gets no gradient from AB)."""
        yield from student.parameters()
        yield from self.connectors.parameters()
