"""CRD loss: NCE value by hand, memory momentum update, Z constants, index errors, checkpoint state."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from loss_helpers import STUDENT_SPEC, TEACHER_SPEC, check_gradient_flow, random_pair, run_fp32_and_autocast

from icd_hf.losses import build_loss
from icd_hf.losses._utils import gather_for_memory
from icd_hf.losses.crd import CrdLoss

N, K, D = 20, 5, 8


def _crd(**kwargs) -> CrdLoss:
    torch.manual_seed(0)
    return CrdLoss(STUDENT_SPEC, TEACHER_SPEC, **{"num_data": N, "nce_k": K, "feat_dim": D, **kwargs})


def _embed(head, x: torch.Tensor) -> np.ndarray:
    w = head.linear.weight.detach().double().numpy()
    b = head.linear.bias.detach().double().numpy()
    z = x.detach().double().numpy() @ w.T + b
    return z / np.sqrt((z**2).sum(1, keepdims=True))


def _nce(scores: np.ndarray, n_data: int) -> float:
    k = scores.shape[1] - 1
    noise = k / n_data
    total = 0.0
    for row in scores:
        total += math.log(row[0] / (row[0] + noise + 1e-7))
        total += sum(math.log(noise / (x + noise + 1e-7)) for x in row[1:])
    return -total / len(scores)


def test_value_matches_hand_computation(monkeypatch):
    loss = _crd(nce_t=0.5)
    student, teacher = random_pair(batch_size=4)
    index = torch.tensor([3, 7, 11, 19])
    contrast = torch.tensor([[3, 0, 1, 2, 3, 4], [7, 5, 6, 8, 9, 7], [11, 12, 13, 14, 15, 16], [19, 17, 18, 0, 1, 2]])
    monkeypatch.setattr(loss.memory, "sample_contrast_indices", lambda idx: contrast)
    mem_s = loss.memory.memory_student.double().numpy().copy()
    mem_t = loss.memory.memory_teacher.double().numpy().copy()
    v_s = _embed(loss.embed_student, student.pooler_output)
    v_t = _embed(loss.embed_teacher, teacher.pooler_output)
    # Student anchors are scored against the teacher memory, teacher anchors against the student memory.
    raw_s = np.array([[math.exp(mem_t[j] @ v_s[b] / 0.5) for j in contrast[b].tolist()] for b in range(4)])
    raw_t = np.array([[math.exp(mem_s[j] @ v_t[b] / 0.5) for j in contrast[b].tolist()] for b in range(4)])
    z_s, z_t = raw_s.mean() * N, raw_t.mean() * N
    expected_s, expected_t = _nce(raw_s / z_s, N), _nce(raw_t / z_t, N)

    out = loss(student, teacher, index=index)
    assert out["student_anchor"].item() == pytest.approx(expected_s, rel=1e-5)
    assert out["teacher_anchor"].item() == pytest.approx(expected_t, rel=1e-5)
    assert out["loss"].item() == pytest.approx(expected_s + expected_t, rel=1e-5)
    assert loss.memory.z_student.item() == pytest.approx(z_s, rel=1e-5)
    assert loss.memory.z_teacher.item() == pytest.approx(z_t, rel=1e-5)


def test_memory_update_is_the_momentum_formula():
    loss = _crd(nce_mom=0.3)
    student, teacher = random_pair(batch_size=3)
    index = torch.tensor([2, 9, 15])
    before_s = loss.memory.memory_student.clone()
    before_t = loss.memory.memory_teacher.clone()
    loss(student, teacher, index=index)
    for memory, before, head, feats in (
        (loss.memory.memory_student, before_s, loss.embed_student, student.pooler_output),
        (loss.memory.memory_teacher, before_t, loss.embed_teacher, teacher.pooler_output),
    ):
        v = _embed(head, feats)
        for row, i in enumerate(index.tolist()):
            mixed = 0.3 * before[i].double().numpy() + 0.7 * v[row]
            np.testing.assert_allclose(memory[i].numpy(), mixed / np.linalg.norm(mixed), rtol=1e-5, atol=1e-6)
        untouched = [i for i in range(N) if i not in index.tolist()]
        assert torch.equal(memory[untouched], before[untouched])


def test_memory_initialisation_is_uniform_in_the_reference_range():
    loss = CrdLoss(STUDENT_SPEC, TEACHER_SPEC, num_data=500, feat_dim=12)
    stdv = 1 / math.sqrt(12 / 3)
    for memory in (loss.memory.memory_student, loss.memory.memory_teacher):
        assert memory.shape == (500, 12)
        assert memory.min() >= -stdv and memory.max() <= stdv
        assert memory.min() < -0.9 * stdv and memory.max() > 0.9 * stdv  # spread over the range, not zeros
    assert loss.memory.z_student.item() == -1 and loss.memory.z_teacher.item() == -1


def test_normalisation_constants_are_set_once():
    loss = _crd()
    student, teacher = random_pair(batch_size=4)
    loss(student, teacher, index=torch.tensor([0, 1, 2, 3]))
    z = (loss.memory.z_student.item(), loss.memory.z_teacher.item())
    assert z[0] > 0 and z[1] > 0
    other_s, other_t = random_pair(batch_size=4, seed=5)
    loss(other_s, other_t, index=torch.tensor([4, 5, 6, 7]))
    assert (loss.memory.z_student.item(), loss.memory.z_teacher.item()) == z


def test_state_dict_holds_memory_and_constants_and_restores_exactly():
    loss = _crd()
    student, teacher = random_pair(batch_size=4)
    loss(student, teacher, index=torch.tensor([0, 1, 2, 3]))
    state = loss.state_dict()
    for key in ("memory.memory_student", "memory.memory_teacher", "memory.z_student", "memory.z_teacher"):
        assert key in state
    restored = CrdLoss(STUDENT_SPEC, TEACHER_SPEC, num_data=N, nce_k=K, feat_dim=D)
    restored(student, teacher, index=torch.tensor([4, 5, 6, 7]))  # sets its own Z: loading must replace it
    restored.load_state_dict(state)
    assert restored.memory.z_student.item() == loss.memory.z_student.item()
    torch.manual_seed(123)
    a = loss(student, teacher, index=torch.tensor([8, 9, 10, 11]))["loss"]
    torch.manual_seed(123)
    b = restored(student, teacher, index=torch.tensor([8, 9, 10, 11]))["loss"]
    assert torch.equal(a, b)
    assert torch.equal(loss.memory.memory_student, restored.memory.memory_student)


def test_negatives_keep_the_positive_first_and_stay_in_range():
    loss = _crd(nce_k=50)  # more negatives than samples: drawn with replacement
    index = torch.tensor([1, 4, 19])
    contrast = loss.memory.sample_contrast_indices(index)
    assert contrast.shape == (3, 51)
    assert torch.equal(contrast[:, 0], index)
    assert contrast.min() >= 0 and contrast.max() < N
    student, teacher = random_pair(batch_size=3)
    assert torch.isfinite(loss(student, teacher, index=index)["loss"])


def test_defaults_and_required_hyper_parameters():
    loss = build_loss("crd", STUDENT_SPEC, TEACHER_SPEC, num_data=100)
    assert (loss.memory.nce_k, loss.memory.nce_t, loss.memory.nce_mom) == (16384, 0.07, 0.5)
    assert loss.memory.memory_student.shape == (100, 128)
    assert CrdLoss.default_weight == 0.8 and CrdLoss.needs_index
    with pytest.raises(ValueError, match="num_data"):
        build_loss("crd", STUDENT_SPEC, TEACHER_SPEC)


def test_index_errors_are_clear():
    loss = _crd()
    student, teacher = random_pair(batch_size=4)
    with pytest.raises(ValueError, match="'index'"):
        loss(student, teacher)
    with pytest.raises(ValueError, match="num_data"):
        loss(student, teacher, index=torch.tensor([0, 1, 2, N]))


def test_gradients_reach_student_and_both_heads_never_the_teacher():
    loss = _crd()
    student, teacher = random_pair(batch_size=6)
    grads = check_gradient_flow(loss, student, teacher, student_fields=["pooler_output"], index=torch.arange(6))
    assert set(grads["params"]) == {
        "embed_student.linear.weight",
        "embed_student.linear.bias",
        "embed_teacher.linear.weight",
        "embed_teacher.linear.bias",
    }


def test_autocast_bf16_close_to_fp32():
    loss = _crd()
    student, teacher = random_pair(batch_size=8)
    fp32, bf16 = run_fp32_and_autocast(loss, student, teacher, index=torch.arange(8))
    assert bf16 == pytest.approx(fp32, rel=2e-2)


def test_gather_for_memory_single_process_returns_detached_inputs():
    x = torch.randn(3, 4, requires_grad=True)
    i = torch.tensor([0, 1, 2])
    gx, gi = gather_for_memory(x, i)
    assert torch.equal(gx, x.detach()) and not gx.requires_grad and torch.equal(gi, i)
