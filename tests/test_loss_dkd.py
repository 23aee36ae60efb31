"""DKD loss: the paper's TCKD/NCKD formulas by hand, the KD decomposition identity, warm-up, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from loss_helpers import (
    STUDENT_SPEC,
    TEACHER_SPEC,
    check_gradient_flow,
    random_labels,
    random_output,
    random_pair,
    run_fp32_and_autocast,
)

from icd_hf.losses import build_loss
from icd_hf.losses.dkd import DkdLoss
from icd_hf.losses.kd import KdLoss


def _softmax(row: list[float]) -> list[float]:
    m = max(row)
    e = [math.exp(v - m) for v in row]
    return [v / sum(e) for v in e]


def _reference_dkd(z_s: torch.Tensor, z_t: torch.Tensor, labels: torch.Tensor, T: float) -> tuple[float, float]:
    """Batch-mean TCKD and NCKD (times T^2) from the paper's definitions, float64 loops."""
    tckd = nckd = 0.0
    z_s, z_t = z_s.detach(), z_t.detach()
    n, c = z_s.shape
    for i in range(n):
        y = int(labels[i])
        ps = _softmax([float(v) / T for v in z_s[i]])
        pt = _softmax([float(v) / T for v in z_t[i]])
        bs, bt = [ps[y], 1 - ps[y]], [pt[y], 1 - pt[y]]
        tckd += sum(bt[k] * math.log(bt[k] / bs[k]) for k in range(2))
        # Non-target classes renormalised among themselves.
        for j in range(c):
            if j != y:
                qs, qt = ps[j] / (1 - ps[y]), pt[j] / (1 - pt[y])
                nckd += qt * math.log(qt / qs)
    return T * T * tckd / n, T * T * nckd / n


def test_value_matches_the_paper_formulas():
    loss = DkdLoss(STUDENT_SPEC, TEACHER_SPEC, alpha=1.5, beta=8.0, temperature=4.0, warmup_epochs=20)
    student, teacher = random_pair(batch_size=6)
    labels = random_labels(STUDENT_SPEC.num_classes, 6)
    out = loss(student, teacher, labels=labels, epoch=25.0)
    tckd, nckd = _reference_dkd(student.logits, teacher.logits, labels, 4.0)
    assert out["tckd"].item() == pytest.approx(tckd, rel=1e-4)
    assert out["nckd"].item() == pytest.approx(nckd, rel=1e-4)
    assert out["loss"].item() == pytest.approx(1.5 * tckd + 8.0 * nckd, rel=1e-4)
    assert tckd > 1e-4 and nckd > 1e-4


def test_kd_decomposes_into_tckd_plus_weighted_nckd():
    # Eq. (1) of the paper, per sample: KD = TCKD + (1 - p_t^teacher) * NCKD, checked against KdLoss.
    for seed in range(3):
        student, teacher = random_pair(batch_size=1, seed=seed)
        label = random_labels(STUDENT_SPEC.num_classes, 1, seed=seed)
        T = 3.0
        dkd = DkdLoss(STUDENT_SPEC, TEACHER_SPEC, temperature=T, warmup_epochs=0)(student, teacher, labels=label)
        kd = KdLoss(STUDENT_SPEC, TEACHER_SPEC, temperature=T)(student, teacher)
        p_teacher = torch.softmax(teacher.logits.detach() / T, dim=1)[0, label.item()].item()
        assert kd.item() == pytest.approx(dkd["tckd"].item() + (1 - p_teacher) * dkd["nckd"].item(), rel=1e-4)


def test_warmup_scales_the_whole_loss():
    loss = build_loss("dkd", STUDENT_SPEC, TEACHER_SPEC)
    assert (loss.alpha, loss.beta, loss.temperature, loss.warmup_epochs) == (1.0, 8.0, 4.0, 20.0)
    assert DkdLoss.default_weight == 1.0
    student, teacher = random_pair(batch_size=4)
    labels = random_labels(STUDENT_SPEC.num_classes, 4)
    full = loss(student, teacher, labels=labels, epoch=20.0)["loss"].item()
    assert loss(student, teacher, labels=labels, epoch=0.0)["loss"].item() == 0.0
    assert loss(student, teacher, labels=labels, epoch=5.0)["loss"].item() == pytest.approx(0.25 * full, rel=1e-6)
    assert loss(student, teacher, labels=labels, epoch=200.0)["loss"].item() == pytest.approx(full, rel=1e-6)
    no_warmup = build_loss("dkd", STUDENT_SPEC, TEACHER_SPEC, warmup_epochs=0)
    assert no_warmup(student, teacher, labels=labels, epoch=0.0)["loss"].item() == pytest.approx(full, rel=1e-6)


def test_identical_logits_give_zero():
    out = random_output(STUDENT_SPEC, 5, seed=2)
    same = random_output(STUDENT_SPEC, 5, seed=2)
    labels = random_labels(STUDENT_SPEC.num_classes, 5)
    loss = DkdLoss(STUDENT_SPEC, STUDENT_SPEC, warmup_epochs=0)(out, same, labels=labels)
    assert loss["loss"].item() == pytest.approx(0.0, abs=1e-6)


def test_saturated_predictions_stay_finite():
    # Teacher certain of the target class: mdistiller's log(sum(softmax)) would take log(0) for the student.
    student, teacher = random_pair(batch_size=4)
    labels = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        student.logits.mul_(50).scatter_(1, labels[:, None], 400.0)
        teacher.logits.scatter_(1, labels[:, None], -400.0)
    out = DkdLoss(STUDENT_SPEC, TEACHER_SPEC, warmup_epochs=0)(student, teacher, labels=labels)
    assert torch.isfinite(out["loss"]) and out["tckd"].item() > 1.0


def test_gradients_reach_student_logits_never_the_teacher():
    student, teacher = random_pair(batch_size=6)
    labels = random_labels(STUDENT_SPEC.num_classes, 6)
    loss = build_loss("dkd", STUDENT_SPEC, TEACHER_SPEC)
    check_gradient_flow(loss, student, teacher, student_fields=["logits"], labels=labels, epoch=30.0)


def test_missing_labels_is_a_clear_error():
    student, teacher = random_pair(batch_size=3)
    with pytest.raises(ValueError, match="labels"):
        build_loss("dkd", STUDENT_SPEC, TEACHER_SPEC)(student, teacher, epoch=30.0)


def test_autocast_bf16_close_to_fp32():
    student, teacher = random_pair(batch_size=16)
    labels = random_labels(STUDENT_SPEC.num_classes, 16)
    loss = build_loss("dkd", STUDENT_SPEC, TEACHER_SPEC)
    fp32, bf16 = run_fp32_and_autocast(loss, student, teacher, labels=labels, epoch=30.0)
    assert bf16 == pytest.approx(fp32, rel=3e-2)
