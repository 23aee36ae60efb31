"""The feature-based CRD-benchmark baselines: FitNet, AT, SP, CC, VID, RKD, PKT, AB, FT, FSP, NST.

Values are checked against float64 numpy re-computations written from the papers' formulas (explicit loops
where they are clearer), not against a copy of the implementation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from loss_helpers import check_gradient_flow, loss_value, output_tensors, random_output, run_fp32_and_autocast
from torch import nn

from icd_hf.losses import FeatureSpec, build_loss, get_loss_class, probe_feature_spec
from icd_hf.losses.fitnet import ConvRegressor
from icd_hf.models.modeling_outputs import DistillationModelOutput

STUDENT = FeatureSpec(num_classes=10, pooled_dim=32, hidden_shapes=((8, 16, 16), (8, 16, 16), (16, 8, 8), (32, 4, 4)))
TEACHER = FeatureSpec(num_classes=10, pooled_dim=64, hidden_shapes=((16, 16, 16), (16, 16, 16), (32, 8, 8), (64, 4, 4)))
# Teacher maps twice as large as the student's: the stage losses must average-pool them down.
TEACHER_BIG = FeatureSpec(
    num_classes=10, pooled_dim=64, hidden_shapes=((16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8))
)
# Same channels as STUDENT (FSP compares C_k x C_(k+1) matrices) but a larger stem/stage-1 resolution.
TEACHER_SAME_WIDTH = FeatureSpec(
    num_classes=10, pooled_dim=32, hidden_shapes=((8, 32, 32), (8, 16, 16), (16, 8, 8), (32, 4, 4))
)
B = 6

ALL = ["fitnet", "at", "sp", "cc", "vid", "rkd", "pkt", "ab", "ft", "fsp", "nst"]


def pair(teacher_spec: FeatureSpec = TEACHER, batch_size: int = B, seed: int = 0):
    return random_output(STUDENT, batch_size, seed=seed), random_output(teacher_spec, batch_size, seed=seed + 1)


def npy(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def value(result) -> float:
    return loss_value(result).item()


def block_pool(x: np.ndarray, size: int) -> np.ndarray:
    """Average over non-overlapping blocks (what adaptive pooling does for an integer ratio)."""
    b, c, h, w = x.shape
    r = h // size
    return x.reshape(b, c, size, r, size, r).mean(axis=(3, 5))


def conv1x1_bn(x: np.ndarray, conv: nn.Conv2d, bn: nn.BatchNorm2d, relu: bool) -> np.ndarray:
    """A 1x1 conv followed by training-mode BatchNorm (batch statistics, biased variance)."""
    weight = npy(conv.weight)[:, :, 0, 0]
    y = np.einsum("oc,bchw->bohw", weight, x) + npy(conv.bias)[None, :, None, None]
    mean = y.mean(axis=(0, 2, 3), keepdims=True)
    var = y.var(axis=(0, 2, 3), keepdims=True)
    y = (y - mean) / np.sqrt(var + bn.eps) * npy(bn.weight)[None, :, None, None] + npy(bn.bias)[None, :, None, None]
    return np.maximum(y, 0) if relu else y


def huber(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 1, 0.5 * x**2, np.abs(x) - 0.5)


def unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 1e-12 else v * 0


def same_as(output: DistillationModelOutput) -> DistillationModelOutput:
    """An independent copy of ``output`` (fresh leaves): a teacher that is exactly the student."""
    return DistillationModelOutput(
        **{
            k: (tuple(t.detach().clone().requires_grad_() for t in v) if isinstance(v, tuple) else v.detach().clone())
            for k, v in output.items()
        }
    )


# ----------------------------------------------------------------------------- registry and defaults


def test_registry_defaults_follow_the_crd_recipes():
    expected = {  # name: (default weight, needs hidden states, init epochs)
        "fitnet": (100, True, 0),
        "at": (1000, True, 0),
        "sp": (3000, True, 0),
        "cc": (0.02, False, 0),
        "vid": (1, True, 0),
        "rkd": (1, False, 0),
        "pkt": (30000, False, 0),
        "ab": (1, True, 30),
        "ft": (200, True, 30),
        "fsp": (50, True, 30),
        "nst": (50, True, 0),
    }
    for name, (weight, hidden, init) in expected.items():
        cls = get_loss_class(name)
        assert (cls.default_weight, cls.needs_hidden_states, cls.init_epochs) == (weight, hidden, init), name
        assert cls.__doc__ and "20" in cls.__doc__, f"{name} must cite its paper"


@pytest.mark.parametrize("name", ALL)
def test_unknown_hyper_parameter_is_rejected(name):
    teacher = TEACHER_SAME_WIDTH if name == "fsp" else TEACHER
    with pytest.raises(TypeError, match="unknown hyper-parameters"):
        build_loss(name, STUDENT, teacher, temprature=4)


@pytest.mark.parametrize("name", ALL)
def test_missing_teacher_spec_is_rejected(name):
    with pytest.raises(ValueError, match="teacher"):
        build_loss(name, STUDENT, None)


# ----------------------------------------------------------------------------- values vs hand computation


def test_fitnet_value_and_regressor_shapes():
    loss = build_loss("fitnet", STUDENT, TEACHER)
    assert loss.hint_layer == 2
    s, t = pair()
    x = conv1x1_bn(npy(s.hidden_states[2]), loss.regressor.conv, loss.regressor.bn, relu=True)
    expected = ((x - npy(t.hidden_states[2])) ** 2).mean()
    assert math.isclose(value(loss(s, t)), expected, rel_tol=1e-5)

    # Spatial bridging chosen from sizes: 2x larger -> stride-2 conv, 2x smaller -> transposed conv.
    down = ConvRegressor((8, 16, 16), (32, 8, 8))
    up = ConvRegressor((16, 8, 8), (32, 16, 16))
    shrink = ConvRegressor((8, 6, 6), (4, 4, 4))
    assert isinstance(down.conv, nn.Conv2d) and down.conv.stride == (2, 2)
    assert isinstance(up.conv, nn.ConvTranspose2d)
    assert shrink.conv.kernel_size == (3, 3)
    assert down(torch.randn(2, 8, 16, 16)).shape == (2, 32, 8, 8)
    assert up(torch.randn(2, 16, 8, 8)).shape == (2, 32, 16, 16)
    assert shrink(torch.randn(2, 8, 6, 6)).shape == (2, 4, 4, 4)
    fit_big = build_loss("fitnet", STUDENT, TEACHER_BIG, hint_layer=-1)
    s, t = pair(TEACHER_BIG)
    assert torch.isfinite(loss_value(fit_big(s, t)))


def test_fitnet_rejects_unbridgeable_hints():
    with pytest.raises(ValueError, match="spatial size 4x4 onto a teacher map of 16x16"):
        ConvRegressor((8, 4, 4), (8, 16, 16))
    with pytest.raises(ValueError, match="hint_layer=4 is out of range"):
        build_loss("fitnet", STUDENT, TEACHER, hint_layer=4)


def at_reference(s_maps, t_maps) -> float:
    total = 0.0
    for fs, ft in zip(s_maps, t_maps):
        fs, ft = npy(fs), npy(ft)
        if fs.shape[2] > ft.shape[2]:
            fs = block_pool(fs, ft.shape[2])
        elif ft.shape[2] > fs.shape[2]:
            ft = block_pool(ft, fs.shape[2])
        sq = []
        for b in range(fs.shape[0]):
            qs = (fs[b] ** 2).mean(axis=0).ravel()
            qt = (ft[b] ** 2).mean(axis=0).ravel()
            sq.append((qs / np.linalg.norm(qs) - qt / np.linalg.norm(qt)) ** 2)
        total += np.mean(sq)
    return total


@pytest.mark.parametrize("teacher_spec", [TEACHER, TEACHER_BIG], ids=["same-size", "pooled"])
def test_at_value(teacher_spec):
    loss = build_loss("at", STUDENT, teacher_spec)
    s, t = pair(teacher_spec)
    out = loss(s, t)
    assert math.isclose(value(out), at_reference(s.hidden_states[1:], t.hidden_states[1:]), rel_tol=1e-5)
    assert set(out) == {"loss", "stage1", "stage2", "stage3"}
    assert math.isclose(out["stage2"].item(), at_reference(s.hidden_states[2:3], t.hidden_states[2:3]), rel_tol=1e-5)


def test_sp_value():
    loss = build_loss("sp", STUDENT, TEACHER)
    s, t = pair()
    fs, ft = npy(s.hidden_states[-1]).reshape(B, -1), npy(t.hidden_states[-1]).reshape(B, -1)
    gs, gt = np.zeros((B, B)), np.zeros((B, B))
    for i in range(B):
        for j in range(B):
            gs[i, j], gt[i, j] = fs[i] @ fs[j], ft[i] @ ft[j]
    gs /= np.linalg.norm(gs, axis=1, keepdims=True)
    gt /= np.linalg.norm(gt, axis=1, keepdims=True)
    expected = ((gs - gt) ** 2).sum() / B**2
    assert math.isclose(value(loss(s, t)), expected, rel_tol=1e-5)


def test_cc_value():
    loss = build_loss("cc", STUDENT, TEACHER)
    assert loss.embed_s.out_features == loss.embed_t.out_features == 128
    s, t = pair()
    es = npy(s.pooler_output) @ npy(loss.embed_s.weight).T + npy(loss.embed_s.bias)
    et = npy(t.pooler_output) @ npy(loss.embed_t.weight).T + npy(loss.embed_t.bias)
    delta = np.abs(es - et)
    expected = np.mean([sum(delta[i, d] * delta[i + 1, d] for d in range(128)) for i in range(B - 1)])
    assert math.isclose(value(loss(s, t)), expected, rel_tol=1e-5)


def test_vid_value():
    loss = build_loss("vid", STUDENT, TEACHER_BIG)
    with torch.no_grad():  # move the variances away from their shared initial value
        for head in loss.heads:
            head.log_scale.normal_()
    s, t = pair(TEACHER_BIG)
    expected = 0.0
    for head, fs, ft in zip(loss.heads, s.hidden_states[1:], t.hidden_states[1:]):
        fs, ft = npy(fs), npy(ft)
        ft = block_pool(ft, fs.shape[2])
        w1, w2, w3 = (npy(m.weight)[:, :, 0, 0] for m in head.regressor if isinstance(m, nn.Conv2d))
        mu = np.einsum("oc,bchw->bohw", w1, fs)
        mu = np.einsum("oc,bchw->bohw", w2, np.maximum(mu, 0))
        mu = np.einsum("oc,bchw->bohw", w3, np.maximum(mu, 0))
        var = np.log1p(np.exp(npy(head.log_scale))) + 1e-5
        nll = 0.5 * ((mu - ft) ** 2 / var[None, :, None, None] + np.log(var)[None, :, None, None])
        expected += nll.mean()
    assert math.isclose(value(loss(s, t)), expected, rel_tol=1e-5)


def test_vid_variance_starts_at_init_pred_var():
    loss = build_loss("vid", STUDENT, TEACHER, init_pred_var=3.0)
    for head in loss.heads:
        torch.testing.assert_close(head.variance(), torch.full_like(head.variance(), 3.0))


def test_rkd_value():
    loss = build_loss("rkd", STUDENT, TEACHER)
    s, t = pair()
    es, et = npy(s.pooler_output), npy(t.pooler_output)

    def distances(e):
        d = np.array([[np.linalg.norm(e[i] - e[j]) for j in range(B)] for i in range(B)])
        return d / d[~np.eye(B, dtype=bool)].mean()

    def angles(e):
        return np.array([unit(e[j] - e[i]) @ unit(e[k] - e[i]) for i in range(B) for j in range(B) for k in range(B)])

    dist_term = huber(distances(es) - distances(et)).mean()
    angle_term = huber(angles(es) - angles(et)).mean()
    out = loss(s, t)
    assert math.isclose(out["distance"].item(), dist_term, rel_tol=1e-4)
    assert math.isclose(out["angle"].item(), angle_term, rel_tol=1e-4)
    assert math.isclose(value(out), 25 * dist_term + 50 * angle_term, rel_tol=1e-4)


def test_pkt_value():
    loss = build_loss("pkt", STUDENT, TEACHER)
    s, t = pair()
    eps = 1e-7

    def probabilities(f):
        k = np.zeros((B, B))
        for i in range(B):
            for j in range(B):
                cos = f[i] @ f[j] / ((np.linalg.norm(f[i]) + eps) * (np.linalg.norm(f[j]) + eps))
                k[i, j] = (cos + 1) / 2
        return k / k.sum(axis=1, keepdims=True)

    ps, pt = probabilities(npy(s.pooler_output)), probabilities(npy(t.pooler_output))
    expected = sum(pt[i, j] * math.log((pt[i, j] + eps) / (ps[i, j] + eps)) for i in range(B) for j in range(B))
    # The log-ratios of two close distributions cancel in float32: 1e-4 is its precision here.
    assert math.isclose(value(loss(s, t)), expected / B**2, rel_tol=1e-4)


def nst_reference(s_maps, t_maps) -> float:
    total = 0.0
    for fs, ft in zip(s_maps, t_maps):
        fs, ft = npy(fs), npy(ft)
        ft = block_pool(ft, fs.shape[2]) if ft.shape[2] > fs.shape[2] else ft
        per_sample = []
        for b in range(fs.shape[0]):
            xs = [c.ravel() / np.linalg.norm(c) for c in fs[b]]
            xt = [c.ravel() / np.linalg.norm(c) for c in ft[b]]

            def k(a, c):
                return np.mean([(u @ v) ** 2 for u in a for v in c])

            per_sample.append(k(xt, xt) + k(xs, xs) - 2 * k(xs, xt))
        total += np.mean(per_sample)
    return total


def test_nst_value():
    loss = build_loss("nst", STUDENT, TEACHER_BIG)
    s, t = pair(TEACHER_BIG, batch_size=3)
    assert math.isclose(value(loss(s, t)), nst_reference(s.hidden_states[1:], t.hidden_states[1:]), rel_tol=1e-4)


def test_fsp_value():
    loss = build_loss("fsp", STUDENT, TEACHER_SAME_WIDTH, main_stage=True)
    s, t = pair(TEACHER_SAME_WIDTH)

    def fsp_matrices(maps):
        maps = [npy(m) for m in maps]
        out = []
        for bot, top in zip(maps[:-1], maps[1:]):
            size = min(bot.shape[2], top.shape[2])
            bot, top = block_pool(bot, size), block_pool(top, size)
            g = np.zeros((bot.shape[0], top.shape[1], bot.shape[1]))
            for n in range(bot.shape[0]):
                for j in range(top.shape[1]):
                    for i in range(bot.shape[1]):
                        g[n, j, i] = (top[n, j] * bot[n, i]).mean()
            out.append(g)
        return out

    g_s, g_t = fsp_matrices(s.hidden_states), fsp_matrices(t.hidden_states)
    expected = sum(((a - b) ** 2).mean() for a, b in zip(g_s, g_t))
    assert math.isclose(value(loss(s, t)), expected, rel_tol=1e-5)
    assert math.isclose(loss.init_loss(s, t).item(), expected, rel_tol=1e-5)


def ab_reference(loss, s, t) -> float:
    total = 0.0
    n = len(loss.connectors)
    for i, (conn, fs, ft) in enumerate(zip(loss.connectors, s.preact_hidden_states[1:], t.preact_hidden_states[1:])):
        src = conv1x1_bn(npy(fs), conn.conv, conn.bn, relu=False)
        tgt = npy(ft)
        cost = np.where(tgt > 0, np.maximum(0.0, 1.0 - src) ** 2, np.maximum(0.0, src + 1.0) ** 2)
        total += 2.0 ** (i + 1 - n) * cost.sum() / fs.shape[0] * 3 / 1000
    return total


def test_ab_value_and_main_stage_switch():
    loss = build_loss("ab", STUDENT, TEACHER)
    s, t = pair()
    expected = ab_reference(loss, s, t)
    assert math.isclose(loss.init_loss(s, t).item(), expected, rel_tol=1e-5)
    # RepDistiller's main stage adds nothing for AB.
    assert value(loss(s, t)) == 0.0
    main = build_loss("ab", STUDENT, TEACHER, main_stage=True)
    main.load_state_dict(loss.state_dict())
    out = main(s, t)
    assert math.isclose(value(out), expected, rel_tol=1e-5)
    assert set(out) == {"loss", "stage1", "stage2", "stage3"}


def test_ab_identity_connector_when_shapes_match():
    loss = build_loss("ab", STUDENT, STUDENT)
    assert all(isinstance(c, nn.Identity) for c in loss.connectors)
    assert not list(loss.parameters())


def test_ft_value_init_loss_and_modules():
    loss = build_loss("ft", STUDENT, TEACHER)
    convs = [m for m in loss.paraphraser.encoder if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(64, 64), (64, 32), (32, 32)]
    convs = [m for m in loss.translator if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(32, 32), (32, 32), (32, 32)]
    s, t = pair()

    captured = {}
    hooks = [
        loss.translator.register_forward_hook(lambda m, i, o: captured.__setitem__("s", o)),
        loss.paraphraser.encoder.register_forward_hook(lambda m, i, o: captured.__setitem__("t", o)),
        loss.paraphraser.decoder.register_forward_hook(lambda m, i, o: captured.__setitem__("rec", o)),
    ]
    main = value(loss(s, t))

    def factor(f):
        a = (f**2).mean(axis=1).reshape(f.shape[0], -1)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    assert math.isclose(main, np.abs(factor(npy(captured["s"])) - factor(npy(captured["t"]))).mean(), rel_tol=1e-5)
    init = loss.init_loss(s, t).item()
    assert math.isclose(init, ((npy(captured["rec"]) - npy(t.hidden_states[-1])) ** 2).mean(), rel_tol=1e-5)
    for h in hooks:
        h.remove()


# ----------------------------------------------------------------------------- zero when student == teacher


@pytest.mark.parametrize("name", ["at", "sp", "pkt", "rkd", "nst", "fsp"])
def test_zero_when_student_equals_teacher(name):
    kwargs = {"main_stage": True} if name == "fsp" else {}
    loss = build_loss(name, STUDENT, STUDENT, **kwargs)
    s = random_output(STUDENT, B, seed=3)
    assert abs(value(loss(s, same_as(s)))) < 1e-6
    # ... and not zero for a different teacher, so the check above can fail.
    assert abs(value(loss(s, random_output(STUDENT, B, seed=4)))) > 1e-5


# ----------------------------------------------------------------------------- gradients


GRADIENT_CASES = {
    "fitnet": (TEACHER, {}, ["hidden_states.2"], ["regressor.conv.bias"]),
    "at": (TEACHER_BIG, {}, ["hidden_states.1", "hidden_states.2", "hidden_states.3"], []),
    "sp": (TEACHER, {}, ["hidden_states.3"], []),
    "cc": (TEACHER, {}, ["pooler_output"], []),
    "vid": (TEACHER_BIG, {}, ["hidden_states.1", "hidden_states.2", "hidden_states.3"], []),
    "rkd": (TEACHER, {}, ["pooler_output"], []),
    "pkt": (TEACHER, {}, ["pooler_output"], []),
    "nst": (TEACHER_BIG, {}, ["hidden_states.1", "hidden_states.2", "hidden_states.3"], []),
    "ab": (
        TEACHER,
        {"main_stage": True},
        ["preact_hidden_states.1", "preact_hidden_states.2", "preact_hidden_states.3"],
        [f"connectors.{i}.conv.bias" for i in range(3)],
    ),
    "fsp": (TEACHER_SAME_WIDTH, {"main_stage": True}, [f"hidden_states.{i}" for i in range(4)], []),
}


@pytest.mark.parametrize("name", sorted(GRADIENT_CASES))
def test_gradients_reach_student_and_loss_parameters_never_teacher(name):
    teacher_spec, kwargs, fields, bn_fed_biases = GRADIENT_CASES[name]
    loss = build_loss(name, STUDENT, teacher_spec, **kwargs)
    s, t = pair(teacher_spec)
    # Conv biases feeding a training-mode BatchNorm are cancelled by its mean subtraction.
    grads = check_gradient_flow(loss, s, t, student_fields=fields, zero_grad_params=bn_fed_biases)
    for bias in bn_fed_biases:
        assert grads["params"][bias].abs().max() < 1e-4


def test_ft_gradients_translator_trains_paraphraser_frozen():
    loss = build_loss("ft", STUDENT, TEACHER)
    s, t = pair()
    loss_value(loss(s, t)).backward()
    assert s.hidden_states[-1].grad is not None and s.hidden_states[-1].grad.abs().sum() > 0
    assert all(v.grad is None for v in output_tensors(t).values())
    assert all(p.grad is None for p in loss.paraphraser.parameters())
    assert all(p.grad is not None for p in loss.translator.parameters())
    # The initialisation stage trains the paraphraser from teacher features only.
    loss.zero_grad(set_to_none=True)
    loss.init_loss(s, t).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in loss.paraphraser.parameters())
    assert all(p.grad is None for p in loss.translator.parameters())
    assert all(v.grad is None for v in output_tensors(t).values())


# ----------------------------------------------------------------------------- initialisation stage API


def test_init_stage_parameters():
    student_model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(8, 10))
    student_ids = {id(p) for p in student_model.parameters()}

    ab = build_loss("ab", STUDENT, TEACHER)
    ab_ids = [id(p) for p in ab.init_parameters(student_model)]
    assert set(ab_ids) == student_ids | {id(p) for p in ab.connectors.parameters()}
    assert len(ab_ids) == len(set(ab_ids)) > len(student_ids)

    ft = build_loss("ft", STUDENT, TEACHER)
    assert [id(p) for p in ft.init_parameters(student_model)] == [id(p) for p in ft.paraphraser.parameters()]

    fsp = build_loss("fsp", STUDENT, TEACHER_SAME_WIDTH)
    assert {id(p) for p in fsp.init_parameters(student_model)} == student_ids

    for name in ["fitnet", "at", "sp", "cc", "vid", "rkd", "pkt", "nst"]:
        loss = build_loss(name, STUDENT, TEACHER)
        with pytest.raises(NotImplementedError):
            loss.init_loss(*pair())


@pytest.mark.parametrize("name", ["ab", "fsp"])
def test_init_loss_trains_the_student_features(name):
    teacher_spec = TEACHER_SAME_WIDTH if name == "fsp" else TEACHER
    loss = build_loss(name, STUDENT, teacher_spec)
    s, t = pair(teacher_spec)
    value_ = loss.init_loss(s, t)
    assert value_.dim() == 0 and torch.isfinite(value_) and value_ > 0
    value_.backward()
    field = "preact_hidden_states" if name == "ab" else "hidden_states"
    assert getattr(s, field)[-1].grad.abs().sum() > 0
    assert all(v.grad is None for v in output_tensors(t).values())
    # Main stage (the RepDistiller default): a zero that carries no gradient into anything.
    assert value(loss(s, t)) == 0.0


# ----------------------------------------------------------------------------- autocast


AUTOCAST_CASES = {
    "fitnet": TEACHER,
    "at": TEACHER_BIG,
    "sp": TEACHER,
    "cc": TEACHER,
    "vid": TEACHER_BIG,
    "rkd": TEACHER,
    "pkt": TEACHER,
    "nst": TEACHER_BIG,
    "ab": TEACHER,
    "ft": TEACHER,
    "fsp": TEACHER_SAME_WIDTH,
}


@pytest.mark.parametrize("name", sorted(AUTOCAST_CASES))
def test_bf16_autocast_is_finite_and_close(name):
    teacher_spec = AUTOCAST_CASES[name]
    kwargs = {"main_stage": True} if name in {"ab", "fsp"} else {}
    loss = build_loss(name, STUDENT, teacher_spec, **kwargs)
    s, t = pair(teacher_spec)
    fp32, low = run_fp32_and_autocast(loss, s, t)
    # bf16 keeps 8 mantissa bits: inputs and conv outputs are rounded at ~0.4%, the loss math is float32.
    assert math.isclose(low, fp32, rel_tol=0.02), (low, fp32)
    if name in {"ab", "ft", "fsp"}:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            init = loss.init_loss(s, t)
        assert init.dtype == torch.float32 and torch.isfinite(init)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", ["sp", "cc", "rkd", "pkt"])
def test_relational_losses_need_two_samples(name):
    loss = build_loss(name, STUDENT, TEACHER)
    s, t = pair(batch_size=1)
    with pytest.raises(ValueError, match="batch of at least 2, got 1"):
        loss(s, t)


@pytest.mark.parametrize("name", ["at", "nst", "vid", "ab", "fsp"])
def test_different_stage_counts_are_rejected(name):
    deeper = FeatureSpec(10, 64, TEACHER.hidden_shapes + ((64, 2, 2),))
    with pytest.raises(ValueError, match="student has 3 stage maps and the teacher 4|student has 4 stage maps"):
        build_loss(name, STUDENT, deeper)


def test_fsp_rejects_different_widths():
    expected = r"equal channel counts.*student \[8, 8, 16, 32\] and teacher \[16, 16, 32, 64\]"
    with pytest.raises(ValueError, match=expected):
        build_loss("fsp", STUDENT, TEACHER)


@pytest.mark.parametrize("name", ["fitnet", "at", "sp", "vid", "nst", "ft", "ab"])
def test_missing_hidden_states_is_explained(name):
    kwargs = {"main_stage": True} if name == "ab" else {}
    loss = build_loss(name, STUDENT, TEACHER, **kwargs)
    s, t = pair()
    bare = DistillationModelOutput(logits=s.logits, pooler_output=s.pooler_output)
    with pytest.raises(ValueError, match="output_hidden_states=True"):
        loss(bare, t)


def test_stage_loss_rejects_outputs_from_other_models():
    loss = build_loss("at", STUDENT, TEACHER)
    s, _ = pair()
    other = random_output(FeatureSpec(10, 64, TEACHER.hidden_shapes[:3]), B)
    with pytest.raises(ValueError, match="built for 3 stage pairs"):
        loss(s, other)


# ----------------------------------------------------------------------------- real zoo models


@pytest.fixture(scope="module")
def zoo_models():
    """resnet8 student; wrn_16_2 teacher (wider from stage 1 on); wrn_16_1 (same widths as resnet8) for FSP."""
    from icd_hf.models import create_model

    torch.manual_seed(0)
    models = {n: create_model(n, num_classes=10) for n in ("resnet8", "wrn_16_2", "wrn_16_1")}
    for name in ("wrn_16_2", "wrn_16_1"):
        models[name].eval().requires_grad_(False)
    return models


@pytest.mark.parametrize("name", ALL)
def test_real_zoo_pair_trains_the_student_and_not_the_teacher(name, zoo_models):
    student = zoo_models["resnet8"]
    teacher = zoo_models["wrn_16_1" if name == "fsp" else "wrn_16_2"]
    student.zero_grad(set_to_none=True)
    kwargs = {"main_stage": True} if name in {"ab", "fsp"} else {}
    # 16x16 inputs keep this fast; the specs are measured at that size too.
    loss = build_loss(name, probe_feature_spec(student, 16), probe_feature_spec(teacher, 16), **kwargs)
    x = torch.randn(4, 3, 16, 16)
    s_out = student(pixel_values=x, output_hidden_states=True)
    with torch.no_grad():
        t_out = teacher(pixel_values=x, output_hidden_states=True)
    total = loss_value(loss(s_out, t_out))
    if loss.init_epochs:
        total = total + loss.init_loss(s_out, t_out)
    assert torch.isfinite(total)
    total.backward()
    first_conv = next(p for p in student.parameters() if p.dim() == 4)
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
