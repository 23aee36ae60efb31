"""ICD loss: values against a hand computation, invariance properties, gradients, clamp, autocast, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from loss_helpers import (
    STUDENT_SPEC,
    TEACHER_SPEC,
    check_gradient_flow,
    make_spec,
    random_output,
    random_pair,
    run_fp32_and_autocast,
)

from icd_hf.losses import build_loss, get_loss_class
from icd_hf.losses.icd import IcdLoss
from icd_hf.models.modeling_outputs import DistillationModelOutput


def _reference_icd(loss: IcdLoss, f_s: torch.Tensor, f_t: torch.Tensor, symmetric: bool = False) -> dict[str, float]:
    """ICD from the paper's formulas with float64 numpy and explicit loops."""
    ws = loss.embed_student.linear.weight.detach().double().numpy()
    bs = loss.embed_student.linear.bias.detach().double().numpy()
    wt = loss.embed_teacher.linear.weight.detach().double().numpy()
    bt = loss.embed_teacher.linear.bias.detach().double().numpy()
    xs, xt = f_s.detach().double().numpy(), f_t.detach().double().numpy()
    n = xs.shape[0]
    zs = [ws @ xs[i] + bs for i in range(n)]
    zs = [z / math.sqrt(sum(v * v for v in z)) for z in zs]
    zt = [wt @ xt[i] + bt for i in range(n)]
    zt = [z / math.sqrt(sum(v * v for v in z)) for z in zt]
    scale = min(math.exp(loss.logit_scale.item()), loss.max_logit_scale)
    bias = loss.logit_bias.item()
    L = [[scale * float(np.dot(zs[i], zt[j])) + bias for j in range(n)] for i in range(n)]
    # P[i][j]: student i's distribution over teachers j; C[i][j]: teacher j's distribution over students i.
    P = [[math.exp(L[i][j]) / sum(math.exp(L[i][k]) for k in range(n)) for j in range(n)] for i in range(n)]
    C = [[math.exp(L[i][j]) / sum(math.exp(L[k][j]) for k in range(n)) for j in range(n)] for i in range(n)]
    row_ce = -sum(math.log(P[i][i]) for i in range(n)) / n
    col_ce = -sum(math.log(C[i][i]) for i in range(n)) / n
    contrastive = 0.5 * (row_ce + col_ce) if symmetric else row_ce
    # Q[i][j] = C[j][i]: teacher i over students j, compared with P[i][j].
    invariance = sum(C[j][i] * (math.log(C[j][i]) - math.log(P[i][j])) for i in range(n) for j in range(n)) / n
    return {
        "contrastive": contrastive,
        "invariance": invariance,
        "loss": contrastive + loss.invariance_weight * invariance,
        "scale": scale,
    }


@pytest.mark.parametrize("symmetric", [False, True])
def test_value_matches_hand_computation(symmetric):
    torch.manual_seed(0)
    loss = IcdLoss(STUDENT_SPEC, TEACHER_SPEC, feat_dim=8, invariance_weight=0.7, symmetric=symmetric)
    with torch.no_grad():
        loss.logit_scale.fill_(1.7)
        loss.logit_bias.fill_(0.3)
    student, teacher = random_pair(batch_size=6)
    out = loss(student, teacher)
    ref = _reference_icd(loss, student.pooler_output, teacher.pooler_output, symmetric)
    for key in ("loss", "contrastive", "invariance"):
        assert out[key].item() == pytest.approx(ref[key], rel=1e-5, abs=1e-7), key
    assert out["logit_scale"].item() == pytest.approx(ref["scale"], rel=1e-6)
    assert ref["invariance"] > 1e-4  # the random case is a real test of the KL, not 0 == 0
    for key in ("contrastive", "invariance", "logit_scale"):
        assert not out[key].requires_grad


def test_default_hyper_parameters_and_registry():
    loss = build_loss("icd", STUDENT_SPEC, TEACHER_SPEC)
    assert get_loss_class("ICD") is IcdLoss and IcdLoss.default_weight == 1.0
    assert loss.feat_dim == 128 and loss.invariance_weight == 0.5 and loss.max_logit_scale == 10.0
    assert loss.logit_scale.item() == 1.0 and loss.logit_bias.item() == 0.0 and loss.symmetric is False
    assert loss.embed_student.linear.in_features == STUDENT_SPEC.pooled_dim
    assert loss.embed_teacher.linear.in_features == TEACHER_SPEC.pooled_dim
    assert not IcdLoss.needs_hidden_states and not IcdLoss.needs_index
    with pytest.raises(TypeError, match="invariance_wieght"):
        build_loss("icd", STUDENT_SPEC, TEACHER_SPEC, invariance_wieght=0.1)


def test_invariance_is_zero_for_a_symmetric_logit_matrix():
    spec = make_spec(pooled_dim=12)
    loss = IcdLoss(spec, spec, feat_dim=8)
    loss.embed_teacher.load_state_dict(loss.embed_student.state_dict())
    features = random_output(spec, batch_size=7, seed=3)
    out = loss(features, random_output(spec, batch_size=7, seed=3))  # same features, same heads: L = L.T
    assert out["invariance"].item() == pytest.approx(0.0, abs=1e-6)
    # ... and it is positive as soon as the two views disagree.
    assert loss(features, random_output(spec, batch_size=7, seed=4))["invariance"].item() > 1e-4


def test_gradients_reach_student_and_loss_parameters_never_the_teacher():
    loss = build_loss("icd", STUDENT_SPEC, TEACHER_SPEC)
    student, teacher = random_pair(batch_size=8)
    grads = check_gradient_flow(
        loss, student, teacher, student_fields=["pooler_output"], zero_grad_params=["logit_bias"]
    )
    assert set(grads["params"]) == {
        "embed_student.linear.weight",
        "embed_student.linear.bias",
        "embed_teacher.linear.weight",
        "embed_teacher.linear.bias",
        "logit_scale",
        "logit_bias",
    }
    # Softmax is shift-invariant: the bias cannot change the loss (documented in IcdLoss).
    assert abs(grads["params"]["logit_bias"].item()) < 1e-6
    assert student.logits.grad is None  # ICD reads only the penultimate features


def test_logit_scale_is_clamped_and_gets_no_gradient_when_clamped():
    loss = build_loss("icd", STUDENT_SPEC, TEACHER_SPEC, max_logit_scale=10.0)
    with torch.no_grad():
        loss.logit_scale.fill_(5.0)  # exp(5) ~ 148 > 10
    student, teacher = random_pair(batch_size=8)
    out = loss(student, teacher)
    assert out["logit_scale"].item() == pytest.approx(10.0)
    out["loss"].backward()
    assert loss.logit_scale.grad is not None and loss.logit_scale.grad.item() == 0.0
    # Below the clamp the temperature trains.
    loss.zero_grad()
    with torch.no_grad():
        loss.logit_scale.fill_(1.0)
    loss(student, teacher)["loss"].backward()
    assert loss.logit_scale.grad.abs().item() > 0


def test_no_weight_decay_names_are_the_temperature_and_bias():
    loss = build_loss("icd", STUDENT_SPEC, TEACHER_SPEC)
    names = dict(loss.named_parameters())
    assert loss.no_weight_decay() == {"logit_scale", "logit_bias"}
    assert all(n in names for n in loss.no_weight_decay())


def test_batch_of_one_is_a_clear_error():
    loss = build_loss("icd", STUDENT_SPEC, TEACHER_SPEC)
    student, teacher = random_pair(batch_size=1)
    with pytest.raises(ValueError, match="batch of at least 2"):
        loss(student, teacher)


def test_missing_teacher_or_features_is_a_clear_error():
    loss = build_loss("icd", STUDENT_SPEC, TEACHER_SPEC)
    student, _ = random_pair(batch_size=4)
    with pytest.raises(ValueError, match="teacher"):
        loss(student, None)
    with pytest.raises(ValueError, match="pooler_output"):
        loss(DistillationModelOutput(logits=student.logits), student)


def test_autocast_bf16_is_finite_and_close_to_fp32():
    loss = build_loss("icd", STUDENT_SPEC, TEACHER_SPEC)
    student, teacher = random_pair(batch_size=16)
    fp32, bf16 = run_fp32_and_autocast(loss, student, teacher, dtype=torch.bfloat16)
    assert bf16 == pytest.approx(fp32, rel=2e-2)


def _retrieval(loss: IcdLoss, f_s: torch.Tensor, f_t: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        z_s = loss.embed_student(f_s)
        z_t = loss.embed_teacher(f_t)
        cosine = (z_s * z_t).sum(1).mean().item()
        top1 = ((z_s @ z_t.T).argmax(1) == torch.arange(len(f_s))).float().mean().item()
    return cosine, top1


def test_minimising_icd_aligns_student_with_teacher():
    torch.manual_seed(0)
    n, in_dim = 64, 16
    s_spec, t_spec = make_spec(pooled_dim=24), make_spec(pooled_dim=32)
    inputs = torch.randn(n, in_dim)
    teacher_features = torch.randn(n, t_spec.pooled_dim)
    student_net = torch.nn.Sequential(
        torch.nn.Linear(in_dim, 64), torch.nn.ReLU(), torch.nn.Linear(64, s_spec.pooled_dim)
    )
    loss = IcdLoss(s_spec, t_spec, feat_dim=32)
    teacher = DistillationModelOutput(logits=torch.zeros(n, 10), pooler_output=teacher_features)
    cos_before, top1_before = _retrieval(loss, student_net(inputs), teacher_features)
    optimizer = torch.optim.Adam([*student_net.parameters(), *loss.parameters()], lr=3e-3)
    for _ in range(100):
        student = DistillationModelOutput(logits=torch.zeros(n, 10), pooler_output=student_net(inputs))
        optimizer.zero_grad()
        loss(student, teacher)["loss"].backward()
        optimizer.step()
    cos_after, top1_after = _retrieval(loss, student_net(inputs), teacher_features)
    print(f"ICD alignment: cosine {cos_before:.3f} -> {cos_after:.3f}, top-1 {top1_before:.3f} -> {top1_after:.3f}")
    assert top1_before < 0.2, top1_before
    assert top1_after > 0.9, top1_after
    assert cos_after > cos_before + 0.3, (cos_before, cos_after)
    assert loss.scale().item() > math.e  # the temperature sharpened while aligning
