"""Shared helpers for the loss tests: random model outputs, gradient-flow checks, autocast runs.

Typical use::

    s_spec, t_spec = STUDENT_SPEC, TEACHER_SPEC
    student, teacher = random_pair(s_spec, t_spec, batch_size=8)
    loss = build_loss("fitnet", s_spec, t_spec)
    grads = check_gradient_flow(loss, student, teacher, student_fields=["hidden_states.2"])
    fp32, low = run_fp32_and_autocast(loss, student, teacher)

Every tensor of a generated output is its own leaf with ``requires_grad`` (teacher ones included), so a test
can see exactly which fields received gradients: a loss must never send gradients into teacher features
(the Distiller runs the teacher under ``no_grad``, but a loss has to be correct on its own too).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from icd_hf.losses import DistillationLoss, FeatureSpec
from icd_hf.models.modeling_outputs import DistillationModelOutput

# A student narrower than the teacher everywhere, with matching spatial sizes at the last two stages and a
# mismatch at the stem, the way CIFAR pairs (resnet8x4 / resnet32x4, wrn_16_2 / wrn_40_2) look.
STUDENT_SPEC = FeatureSpec(num_classes=10, pooled_dim=16, hidden_shapes=((4, 16, 16), (8, 16, 16), (16, 8, 8)))
TEACHER_SPEC = FeatureSpec(num_classes=10, pooled_dim=32, hidden_shapes=((8, 16, 16), (16, 16, 16), (32, 8, 8)))


def make_spec(
    num_classes: int = 10,
    pooled_dim: int = 16,
    hidden_shapes: Sequence[tuple[int, int, int]] = ((4, 16, 16), (8, 16, 16), (16, 8, 8)),
) -> FeatureSpec:
    """A ``FeatureSpec`` with small defaults."""
    return FeatureSpec(
        num_classes=num_classes, pooled_dim=pooled_dim, hidden_shapes=tuple(tuple(s) for s in hidden_shapes)
    )


def _leaf(x: torch.Tensor, requires_grad: bool) -> torch.Tensor:
    return x.detach().clone().requires_grad_(requires_grad)


def random_output(
    spec: FeatureSpec,
    batch_size: int = 8,
    *,
    seed: int = 0,
    requires_grad: bool = True,
    dtype: torch.dtype = torch.float32,
) -> DistillationModelOutput:
    """A ``DistillationModelOutput`` shaped like ``spec`` with every field filled (hidden states included).

    ``hidden_states`` are ``relu(preact_hidden_states)`` in value, but every tensor is a separate leaf.
    """
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(batch_size, spec.num_classes, generator=g)
    pooled = torch.relu(torch.randn(batch_size, spec.pooled_dim, generator=g)) + 0.1
    preacts = [torch.randn(batch_size, *shape, generator=g) for shape in spec.hidden_shapes]
    return DistillationModelOutput(
        logits=_leaf(logits.to(dtype), requires_grad),
        pooler_output=_leaf(pooled.to(dtype), requires_grad),
        hidden_states=tuple(_leaf(torch.relu(p).to(dtype), requires_grad) for p in preacts),
        preact_hidden_states=tuple(_leaf(p.to(dtype), requires_grad) for p in preacts),
    )


def random_pair(
    student_spec: FeatureSpec = STUDENT_SPEC,
    teacher_spec: FeatureSpec = TEACHER_SPEC,
    batch_size: int = 8,
    *,
    seed: int = 0,
) -> tuple[DistillationModelOutput, DistillationModelOutput]:
    """Independent random student and teacher outputs (both with ``requires_grad`` leaves)."""
    return (
        random_output(student_spec, batch_size, seed=seed),
        random_output(teacher_spec, batch_size, seed=seed + 1_000),
    )


def random_labels(num_classes: int, batch_size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, num_classes, (batch_size,), generator=torch.Generator().manual_seed(seed))


def output_tensors(output: DistillationModelOutput) -> dict[str, torch.Tensor]:
    """Every tensor of an output by a flat name: ``logits``, ``pooler_output``, ``hidden_states.1``..."""
    named: dict[str, torch.Tensor] = {}
    for field in ("logits", "pooler_output"):
        value = getattr(output, field)
        if value is not None:
            named[field] = value
    for field in ("hidden_states", "preact_hidden_states"):
        for i, value in enumerate(getattr(output, field) or ()):
            named[f"{field}.{i}"] = value
    return named


def loss_value(result: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
    """The scalar loss of a ``DistillationLoss.forward`` result (tensor or dict with ``"loss"``)."""
    value = result["loss"] if isinstance(result, dict) else result
    assert value.dim() == 0, f"a loss must be a scalar, got shape {tuple(value.shape)}"
    return value


def _clear_grads(tensors: Iterable[torch.Tensor]) -> None:
    for t in tensors:
        t.grad = None


def check_gradient_flow(
    loss: DistillationLoss,
    student: DistillationModelOutput,
    teacher: DistillationModelOutput,
    *,
    student_fields: Sequence[str] = ("pooler_output",),
    zero_grad_params: Sequence[str] = (),
    **forward_kwargs: Any,
) -> dict[str, dict[str, torch.Tensor]]:
    """Backward through ``loss`` and assert where gradients go.

    Asserts: the loss is a finite scalar; every field in ``student_fields`` gets a finite, non-zero
    gradient; no teacher tensor gets any gradient; every trainable parameter of ``loss`` gets a finite
    gradient, non-zero except for the names in ``zero_grad_params`` (parameters a term is invariant to).
    Returns ``{"student": {field: grad}, "params": {name: grad}}``.
    """
    s_named, t_named = output_tensors(student), output_tensors(teacher)
    params = {n: p for n, p in loss.named_parameters() if p.requires_grad}
    _clear_grads([*s_named.values(), *t_named.values(), *params.values()])
    value = loss_value(loss(student, teacher, **forward_kwargs))
    assert torch.isfinite(value), f"{loss.name}: non-finite loss {value}"
    value.backward()
    for name, t in t_named.items():
        assert t.grad is None or not t.grad.any(), f"{loss.name}: gradient reached teacher.{name}"
    for field in student_fields:
        grad = s_named[field].grad
        assert grad is not None and grad.abs().sum() > 0, f"{loss.name}: no gradient reached student.{field}"
        assert torch.isfinite(grad).all(), f"{loss.name}: non-finite gradient in student.{field}"
    for name, p in params.items():
        assert p.grad is not None, f"{loss.name}: parameter {name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{loss.name}: non-finite gradient in {name}"
        if name not in zero_grad_params:
            assert p.grad.abs().sum() > 0, f"{loss.name}: zero gradient for parameter {name}"
    return {
        "student": {f: s_named[f].grad.detach().clone() for f in student_fields},
        "params": {n: p.grad.detach().clone() for n, p in params.items()},
    }


def cast_output(output: DistillationModelOutput, dtype: torch.dtype) -> DistillationModelOutput:
    """A copy of ``output`` with its floating tensors cast to ``dtype`` (what a model returns under autocast)."""

    def cast(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else _leaf(t.to(dtype), t.requires_grad)

    return DistillationModelOutput(
        logits=cast(output.logits),
        pooler_output=cast(output.pooler_output),
        hidden_states=None if output.hidden_states is None else tuple(cast(h) for h in output.hidden_states),
        preact_hidden_states=None
        if output.preact_hidden_states is None
        else tuple(cast(h) for h in output.preact_hidden_states),
    )


def run_fp32_and_autocast(
    loss: DistillationLoss,
    student: DistillationModelOutput,
    teacher: DistillationModelOutput,
    *,
    dtype: torch.dtype = torch.bfloat16,
    seed: int = 0,
    **forward_kwargs: Any,
) -> tuple[float, float]:
    """The loss value in float32 and under ``torch.autocast("cpu", dtype)`` with ``dtype`` model outputs.

    Each run uses its own deep copy of ``loss`` (stateful losses such as CRD update a memory) and the same
    RNG seed (losses that sample negatives draw the same ones). Asserts the autocast value is finite and
    that its backward gives finite student gradients; returns both values for the caller to compare.
    """
    torch.manual_seed(seed)
    fp32 = loss_value(copy.deepcopy(loss)(student, teacher, **forward_kwargs)).item()
    low_student, low_teacher = cast_output(student, dtype), cast_output(teacher, dtype)
    torch.manual_seed(seed)
    with torch.autocast("cpu", dtype=dtype):
        value = loss_value(copy.deepcopy(loss)(low_student, low_teacher, **forward_kwargs))
    assert torch.isfinite(value), f"{loss.name}: non-finite loss under autocast({dtype})"
    value.backward()
    for name, t in output_tensors(low_student).items():
        if t.grad is not None:
            assert torch.isfinite(t.grad.float()).all(), f"{loss.name}: non-finite gradient in student.{name}"
    return fp32, value.item()


def assert_close(actual: float, expected: float, rel: float = 1e-5, abs_: float = 1e-6) -> None:
    """``math.isclose`` with a readable failure message."""
    assert math.isclose(actual, expected, rel_tol=rel, abs_tol=abs_), f"{actual} != {expected} (rel {rel})"


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
