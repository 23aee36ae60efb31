"""KD loss: value against a hand computation, zero for identical logits, gradients, autocast."""

from __future__ import annotations

import math

import pytest
import torch
from loss_helpers import (
    STUDENT_SPEC,
    TEACHER_SPEC,
    check_gradient_flow,
    random_output,
    random_pair,
    run_fp32_and_autocast,
)

from icd_hf.losses import build_loss
from icd_hf.losses.kd import KdLoss
from icd_hf.models.modeling_outputs import DistillationModelOutput


def _reference_kd(z_s: torch.Tensor, z_t: torch.Tensor, T: float) -> float:
    total = 0.0
    for row_s, row_t in zip(z_s.tolist(), z_t.tolist()):
        es = [math.exp(v / T) for v in row_s]
        et = [math.exp(v / T) for v in row_t]
        ps = [v / sum(es) for v in es]
        pt = [v / sum(et) for v in et]
        total += sum(b * math.log(b / a) for a, b in zip(ps, pt))
    return T * T * total / len(z_s)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_value_matches_hand_computation(temperature):
    student, teacher = random_pair(batch_size=5)
    value = KdLoss(STUDENT_SPEC, TEACHER_SPEC, temperature=temperature)(student, teacher)
    expected = _reference_kd(student.logits.detach(), teacher.logits.detach(), temperature)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    assert expected > 1e-3


def test_defaults():
    loss = build_loss("kd", STUDENT_SPEC, TEACHER_SPEC)
    assert loss.temperature == 4.0 and KdLoss.default_weight == 0.9
    with pytest.raises(ValueError, match="temperature"):
        build_loss("kd", STUDENT_SPEC, TEACHER_SPEC, temperature=0)


def test_identical_logits_give_zero_and_shifted_logits_too():
    a, b = random_output(STUDENT_SPEC, 4, seed=1), random_output(STUDENT_SPEC, 4, seed=1)
    loss = build_loss("kd", STUDENT_SPEC, STUDENT_SPEC)
    assert loss(a, b).item() == pytest.approx(0.0, abs=1e-6)
    shifted = DistillationModelOutput(logits=b.logits.detach() + 3.0)  # softmax is shift-invariant
    assert loss(a, shifted).item() == pytest.approx(0.0, abs=1e-6)


def test_gradients_reach_student_logits_never_the_teacher():
    student, teacher = random_pair(batch_size=4)
    loss = build_loss("kd", STUDENT_SPEC, TEACHER_SPEC)
    grads = check_gradient_flow(loss, student, teacher, student_fields=["logits"])
    # d/dz_s of T^2 KL = T (p_s - p_t) / B.
    T = 4.0
    expected = T * (torch.softmax(student.logits / T, 1) - torch.softmax(teacher.logits / T, 1)) / 4
    torch.testing.assert_close(grads["student"]["logits"], expected.detach(), rtol=1e-5, atol=1e-7)


def test_class_count_mismatch_is_a_clear_error():
    other = STUDENT_SPEC.__class__(num_classes=7, pooled_dim=4, hidden_shapes=())
    with pytest.raises(ValueError, match="same label set"):
        build_loss("kd", STUDENT_SPEC, other)


def test_autocast_bf16_close_to_fp32():
    student, teacher = random_pair(batch_size=16)
    fp32, bf16 = run_fp32_and_autocast(build_loss("kd", STUDENT_SPEC, TEACHER_SPEC), student, teacher)
    assert bf16 == pytest.approx(fp32, rel=2e-2)
