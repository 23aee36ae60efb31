"""Every zoo model and every loss's state computes today what it computed before the zoo template and the loss
metadata were introduced: state-dict keys and shapes, fixed-seed initialisation, outputs (logits, pooled vector,
every feature map before and after its activation), and checkpoints written by that code still load.

``tests/fixtures/zoo_reference.json`` was written by this file's
``__main__`` at the commit before the refactor (be69f64)::

    python tests/test_zoo_reference.py   # rewrites the fixtures from the code as it is now

so a test failure here means the architecture, its initialisation or its output contract changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch

from icd_hf.distiller import Distiller
from icd_hf.models import ResNetCifarConfig, ResNetCifarForImageClassification, create_model, list_models, load_model

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REFERENCE = FIXTURES / "zoo_reference.json"
# (model, input side): every zoo model at CIFAR size, VGG also at 64 px (its extra pooling branch), one timm model.
CASES = [(name, 32) for name in list_models()] + [("vgg8", 64), ("timm/resnet10t", 32)]
# Methods whose losses hold state (heads, regressors, memory banks), for the checkpoint key lists.
STATEFUL_METHODS = ("icd+kd", "crd", "fitnet", "ab", "ft", "vid", "cc", "at", "nst", "sp", "rkd", "pkt", "fsp", "dkd")


def _summary(tensor: torch.Tensor) -> dict[str, Any]:
    flat = tensor.detach().double().flatten()
    return {"shape": list(tensor.shape), "sum": flat.sum().item(), "abs_sum": flat.abs().sum().item(),
            "head": flat[:6].tolist()}


def _keys_digest(state: dict[str, torch.Tensor]) -> str:
    """Hash of the ordered ``key: shape`` lines of a state dict (the list itself would make the fixture large)."""
    lines = "\n".join(f"{k}: {list(v.shape)}" for k, v in state.items())
    return hashlib.sha256(lines.encode()).hexdigest()


def _keyed_weights(model: torch.nn.Module) -> None:
    """Fill every floating tensor of the state dict from a generator seeded by its key: the outputs then depend
    on the architecture alone, not on the order in which modules draw their initial values."""
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
            noise = torch.randn(tensor.shape, generator=gen, dtype=torch.float64)
            if key.endswith("running_var"):
                value = 1.0 + 0.1 * noise.abs()
            elif tensor.dim() <= 1:
                value = (1.0 if key.endswith("weight") else 0.0) + 0.1 * noise
            else:
                value = noise * math.sqrt(2.0 / (tensor[0].numel() or 1))
            tensor.copy_(value.to(tensor.dtype))


def model_reference(name: str, side: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    state = model.state_dict()
    record: dict[str, Any] = {
        "num_keys": len(state),
        "keys_sha256": _keys_digest(state),
        # Any change in the order modules draw their initial values changes these.
        "init_sum": sum(v.double().sum().item() for v in state.values() if v.is_floating_point()),
        "init_sq_sum": sum(v.double().pow(2).sum().item() for v in state.values() if v.is_floating_point()),
    }
    _keyed_weights(model)
    model.eval()
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(pixel_values=x, output_hidden_states=True)
    record["logits"] = _summary(out.logits)
    record["pooler_output"] = _summary(out.pooler_output)
    record["hidden_states"] = [_summary(h) for h in out.hidden_states]
    record["preact_hidden_states"] = [_summary(h) for h in out.preact_hidden_states]
    return record


def _tiny_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    student = ResNetCifarForImageClassification(ResNetCifarConfig(depth=8, num_filters=[4, 4, 8, 8], num_labels=5))
    teacher = ResNetCifarForImageClassification(ResNetCifarConfig(depth=14, num_filters=[4, 4, 8, 8], num_labels=5))
    return student, teacher


def _distiller(method: str) -> Distiller:
    student, teacher = _tiny_pair()
    overrides = {"crd": {"nce_k": 4, "feat_dim": 8}, "icd": {"feat_dim": 8}}
    torch.manual_seed(0)
    return Distiller(student, teacher, method, loss_overrides=overrides, num_data=8)


def distiller_reference() -> dict[str, list[list[Any]]]:
    return {method: [[k, list(v.shape)] for k, v in _distiller(method).distillation_state_dict().items()]
            for method in STATEFUL_METHODS}


def write_fixtures() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    reference = {"models": {f"{name}@{side}": model_reference(name, side) for name, side in CASES},
                 "distiller_keys": distiller_reference()}
    REFERENCE.write_text(json.dumps(reference, separators=(",", ":")) + "\n")


def write_checkpoint(directory: Path) -> None:
    """A Distiller checkpoint (student + ICD/CRD/FitNet state) and an exported student, without shipped code."""
    directory.mkdir(parents=True, exist_ok=True)
    distiller = _distiller("icd+kd+crd+fitnet")
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in distiller.distillation_state_dict().items()},
        str(directory / "distiller.safetensors"),
    )
    student, _ = _tiny_pair()
    student.save_pretrained(directory / "student")
    for code in (directory / "student").glob("*.py"):
        code.unlink()  # the model must load with today's code, not the copy save_pretrained shipped with it


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return json.loads(REFERENCE.read_text())


def _assert_summary(actual: dict[str, Any], expected: dict[str, Any], what: str) -> None:
    assert actual["shape"] == expected["shape"], what
    scale = max(1.0, abs(expected["abs_sum"]))
    assert actual["sum"] == pytest.approx(expected["sum"], rel=1e-4, abs=1e-5 * scale), what
    assert actual["abs_sum"] == pytest.approx(expected["abs_sum"], rel=1e-4), what
    assert actual["head"] == pytest.approx(expected["head"], rel=1e-4, abs=1e-5), what


@pytest.mark.parametrize("name,side", CASES, ids=[f"{n}@{s}" for n, s in CASES])
def test_zoo_model_matches_reference(name: str, side: int, reference: dict[str, Any]) -> None:
    expected = reference["models"][f"{name}@{side}"]
    actual = model_reference(name, side)
    assert (actual["num_keys"], actual["keys_sha256"]) == (expected["num_keys"], expected["keys_sha256"])
    assert actual["init_sum"] == pytest.approx(expected["init_sum"], rel=1e-6, abs=1e-6)
    assert actual["init_sq_sum"] == pytest.approx(expected["init_sq_sum"], rel=1e-6)
    for field in ("logits", "pooler_output"):
        _assert_summary(actual[field], expected[field], f"{name}: {field}")
    for field in ("hidden_states", "preact_hidden_states"):
        assert len(actual[field]) == len(expected[field]), f"{name}: number of {field}"
        for i, (a, e) in enumerate(zip(actual[field], expected[field])):
            _assert_summary(a, e, f"{name}: {field}[{i}]")


def test_every_zoo_model_has_a_reference(reference: dict[str, Any]) -> None:
    assert {f"{n}@32" for n in list_models()} <= set(reference["models"])


def test_loss_state_keys_match_reference(reference: dict[str, Any]) -> None:
    assert distiller_reference() == reference["distiller_keys"]


def test_checkpoint_round_trips(tmp_path: Path) -> None:
    """A checkpoint written as the pre-refactor code wrote it loads back; its keys are the recorded pre-refactor
    keys (``test_loss_state_keys_match_reference``), so no weights file needs to live in the repository."""
    CHECKPOINT_DIR = tmp_path
    write_checkpoint(CHECKPOINT_DIR)
    distiller = _distiller("icd+kd+crd+fitnet")
    state = safetensors.torch.load_file(str(CHECKPOINT_DIR / "distiller.safetensors"))
    result = distiller.load_state_dict(state, strict=False)
    assert not result.unexpected_keys
    assert all(k.startswith("teacher.") for k in result.missing_keys)
    assert torch.equal(distiller.losses["crd"].memory.memory_student, state["losses.crd.memory.memory_student"])
    student = load_model(CHECKPOINT_DIR / "student", num_classes=5)
    assert type(student) is ResNetCifarForImageClassification
    saved = safetensors.torch.load_file(str(CHECKPOINT_DIR / "student" / "model.safetensors"))
    assert all(torch.equal(student.state_dict()[k], v) for k, v in saved.items())


if __name__ == "__main__":
    write_fixtures()
    sys.exit(0)
