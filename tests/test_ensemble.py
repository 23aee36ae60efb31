"""Ensemble distillation: several teachers of different families, their losses by hand, records and configs."""

from __future__ import annotations

import json
import math

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from trainer_helpers import ClassBlobs, tiny_args

from icd_hf.config import ConfigError, load_config, parse_overrides
from icd_hf.distiller import Distiller, TeacherEnsemble
from icd_hf.losses import build_loss, probe_feature_spec
from icd_hf.losses.base import BatchContext
from icd_hf.losses.ensemble import EnsembleOutput, PerTeacherLoss, build_ensemble_loss, confidence_weights
from icd_hf.losses.icd import EnsembleIcdLoss, IcdLoss
from icd_hf.losses.kd import EnsembleKdLoss
from icd_hf.models import create_model
from icd_hf.trainer import DistillationTrainer

NUM_CLASSES = 4


def _teachers(seed: int = 0) -> list[torch.nn.Module]:
    """Two frozen teachers of different families (and feature widths: 64 vs 128)."""
    torch.manual_seed(seed)
    return [create_model("resnet8", num_classes=NUM_CLASSES).eval(),
            create_model("wrn_16_2", num_classes=NUM_CLASSES).eval()]


def _outputs(seed: int = 0):
    """A student's and both teachers' outputs on one batch, with their feature specs."""
    torch.manual_seed(seed + 1)
    student = create_model("resnet8", num_classes=NUM_CLASSES)
    teachers = _teachers(seed)
    x = torch.randn(6, 3, 32, 32)
    s_out = student(pixel_values=x, output_hidden_states=True)
    with torch.no_grad():
        t_outs = [t(pixel_values=x, output_hidden_states=True) for t in teachers]
    specs = [probe_feature_spec(m) for m in (student, *teachers)]
    return s_out, t_outs, specs[0], specs[1:]


def test_confidence_weights_follow_ca_mkd_by_hand():
    # Sample 0: teacher A is right and sure, B unsure; sample 1: the reverse.
    a = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    labels = torch.tensor([0, 1])
    weights = confidence_weights([a, b], labels)
    ce_a = [-math.log(math.exp(4) / (math.exp(4) + 2)), math.log(3)]
    ce_b = [math.log(3), -math.log(math.exp(5) / (math.exp(5) + 2))]
    for i in range(2):
        soft_a = math.exp(ce_a[i]) / (math.exp(ce_a[i]) + math.exp(ce_b[i]))
        assert weights[0, i].item() == pytest.approx(1 - soft_a, rel=1e-5)  # (1 - softmax) / (K - 1), K = 2
        assert weights[1, i].item() == pytest.approx(soft_a, rel=1e-5)
    assert weights[0, 0] > 0.5 > weights[0, 1]  # the teacher right on a sample weighs more there
    three = confidence_weights([a, b, a + b], labels)
    assert torch.allclose(three.sum(dim=0), torch.ones(2))
    out = EnsembleOutput([], [], "uniform")
    with pytest.raises(ValueError, match="at least 2"):
        confidence_weights([a], labels)
    with pytest.raises(ValueError, match="Unknown teacher weighting 'best'"):
        EnsembleOutput([], [], "best")
    assert len(out) == 0


def test_ensemble_icd_is_the_mean_of_single_teacher_icd_losses():
    s_out, t_outs, s_spec, t_specs = _outputs()
    assert (t_specs[0].pooled_dim, t_specs[1].pooled_dim) == (64, 128)
    loss = build_ensemble_loss("icd", s_spec, t_specs, ["resnet8", "wrn_16_2"], invariance_weight=0.7)
    assert isinstance(loss, EnsembleIcdLoss) and len(loss.embed_teachers) == 2
    with torch.no_grad():  # distinct temperatures, so a mix-up of teachers and parameters shows
        loss.logit_scale.copy_(torch.tensor([0.5, 1.5]))
        loss.logit_bias.copy_(torch.tensor([0.1, -0.2]))
    ensemble = EnsembleOutput(t_outs, ["resnet8", "wrn_16_2"])
    value = loss(s_out, ensemble, labels=torch.zeros(6, dtype=torch.long))
    singles = []
    for k, spec in enumerate(t_specs):
        single = IcdLoss(s_spec, spec, invariance_weight=0.7)
        single.embed_student.load_state_dict(loss.embed_student.state_dict())
        single.embed_teacher.load_state_dict(loss.embed_teachers[k].state_dict())
        with torch.no_grad():
            single.logit_scale.fill_(loss.logit_scale[k].item())
            single.logit_bias.fill_(loss.logit_bias[k].item())
        singles.append(single(s_out, t_outs[k]))
    expected = (singles[0]["loss"] + singles[1]["loss"]) / 2
    assert torch.allclose(value["loss"], expected, atol=1e-6)
    for k, name in enumerate(["resnet8", "wrn_16_2"]):
        assert torch.allclose(value[f"{name}/invariance"], singles[k]["invariance"], atol=1e-6)
        assert value[f"{name}/weight"].item() == pytest.approx(0.5)
    value["loss"].backward()
    grads = {n: p.grad for n, p in loss.named_parameters()}
    assert all(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n != "logit_bias"), grads.keys()
    assert (grads["logit_scale"] != 0).all()  # each teacher's temperature learns


def test_ensemble_kd_targets_the_mean_of_the_softened_probabilities():
    s_out, t_outs, s_spec, t_specs = _outputs()
    loss = build_ensemble_loss("kd", s_spec, t_specs, ["a", "b"], temperature=3.0)
    assert isinstance(loss, EnsembleKdLoss)
    value = loss(s_out, EnsembleOutput(t_outs, ["a", "b"]), labels=torch.zeros(6, dtype=torch.long))
    t = 3.0
    p = sum(F.softmax(o.logits / t, dim=1) for o in t_outs) / 2
    log_q = F.log_softmax(s_out.logits / t, dim=1)
    expected = t * t * (p * (p.log() - log_q)).sum(dim=1).mean()
    assert torch.allclose(value["loss"], expected, atol=1e-5)
    # Not the mean of the two single-teacher KD losses (Jensen): the ensemble target is one distribution.
    single = build_loss("kd", s_spec, t_specs[0], temperature=3.0)
    assert torch.allclose(value["a/kl"], single(s_out, t_outs[0]), atol=1e-6)
    assert value["loss"] <= (value["a/kl"] + value["b/kl"]) / 2 + 1e-6
    # Confidence weights mix per sample: all weight on one teacher makes that teacher's KD.
    labels = torch.zeros(6, dtype=torch.long)
    weighted = EnsembleOutput(t_outs, ["a", "b"], "confidence")
    weighted._cache["sample"] = torch.stack([torch.ones(6), torch.zeros(6)])
    assert torch.allclose(loss(s_out, weighted, labels=labels)["loss"], single(s_out, t_outs[0]), atol=1e-5)


@pytest.mark.parametrize("name", ["fitnet", "rkd", "crd"])
def test_other_losses_are_the_weighted_mean_of_one_instance_per_teacher(name):
    s_out, t_outs, s_spec, t_specs = _outputs()
    kwargs = {"num_data": 32, "nce_k": 8} if name == "crd" else {}
    loss = build_ensemble_loss(name, s_spec, t_specs, ["resnet8", "wrn_16_2"], **kwargs)
    assert isinstance(loss, PerTeacherLoss) and len(loss.members) == 2
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    index = torch.arange(6)
    ensemble = EnsembleOutput(t_outs, ["resnet8", "wrn_16_2"], "confidence")
    if name == "crd":  # CRD updates its memory banks in the forward: compare against copies taken before
        import copy

        members = [copy.deepcopy(m) for m in loss.members]
        torch.manual_seed(0)
    value = loss(s_out, ensemble, labels=labels, index=index)
    weights = ensemble.weights(labels)
    assert torch.allclose(weights.sum(), torch.tensor(1.0)) and not torch.allclose(weights, torch.full((2,), 0.5))
    if name == "crd":
        torch.manual_seed(0)
        singles = [m.compute(s_out, o, BatchContext(labels=labels, index=index))["loss"]
                   for m, o in zip(members, t_outs, strict=True)]
        # Each teacher has its own memory bank of the whole dataset.
        assert {k for k in loss.state_dict() if "memory_teacher" in k} == {
            "members.0.memory.memory_teacher", "members.1.memory.memory_teacher"}
    else:
        singles = [m(s_out, o) for m, o in zip(loss.members, t_outs, strict=True)]
        singles = [v["loss"] if isinstance(v, dict) else v for v in singles]
    expected = weights[0] * singles[0] + weights[1] * singles[1]
    assert torch.allclose(value["loss"], expected, atol=1e-5)
    assert value["resnet8/weight"] == pytest.approx(weights[0].item())


def test_every_registered_loss_builds_against_an_ensemble():
    from icd_hf.losses import list_losses

    _, _, s_spec, t_specs = _outputs()
    for name in list_losses():
        kwargs = {"num_data": 16, "nce_k": 4} if name == "crd" else {}
        if name == "fsp":  # FSP needs equal channels, and the wrn_16_2 teacher is twice as wide as the student
            with pytest.raises(ValueError, match="FSP against teacher 'b' of the ensemble: FSP compares"):
                build_ensemble_loss(name, s_spec, t_specs, ["a", "b"])
            continue
        loss = build_ensemble_loss(name, s_spec, t_specs, ["a", "b"], **kwargs)
        assert loss.name == name
    with pytest.raises(TypeError, match="unknown hyper-parameters"):
        build_ensemble_loss("icd", s_spec, t_specs, ["a", "b"], temprature=2)
    with pytest.raises(ValueError, match="at least 2 teachers"):
        build_ensemble_loss("kd", s_spec, t_specs[:1], ["a"])


def test_distiller_with_two_teachers_trains_only_the_student_and_heads():
    torch.manual_seed(0)
    student = create_model("resnet8", num_classes=NUM_CLASSES)
    distiller = Distiller(student, _teachers(), "icd+kd")
    assert isinstance(distiller.teacher, TeacherEnsemble) and distiller.teacher.names == ["resnet8", "wrn_16_2"]
    distiller.train()
    assert not any(m.training for m in distiller.teacher.members)
    data = ClassBlobs(n=8, num_classes=NUM_CLASSES)
    out = distiller(torch.stack([data[i]["pixel_values"] for i in range(8)]), labels=data.labels[:8])
    out.loss.backward()
    assert all(p.grad is None for p in distiller.teacher.parameters())
    assert all(p.grad is not None for p in distiller.student.parameters())
    assert {"icd/resnet8/weight", "icd/wrn_16_2/contrastive", "kd/wrn_16_2/weight"} <= set(out.terms)
    state = distiller.distillation_state_dict()
    assert not any(k.startswith("teacher.") for k in state)
    assert "losses.icd.embed_teachers.1.linear.weight" in state
    with pytest.raises(ValueError, match="at least 2 teachers"):
        TeacherEnsemble(_teachers()[:1])
    with pytest.raises(ValueError, match="predicts 10 classes"):
        Distiller(create_model("resnet8", num_classes=NUM_CLASSES),
                  [_teachers()[0], create_model("resnet8", num_classes=10)], "kd")


def test_fast_path_compiles_each_teacher_of_an_ensemble():
    from icd_hf.fast import is_compiled, prepare_for_speed

    torch.manual_seed(0)
    distiller = Distiller(create_model("resnet8", num_classes=NUM_CLASSES), _teachers(), "kd")
    prepare_for_speed(distiller, channels_last=False, compile=True, compile_backend="eager")
    assert is_compiled(distiller.student) and all(is_compiled(m) for m in distiller.teacher.members)
    assert not is_compiled(distiller.teacher) and not is_compiled(distiller.losses)
    x = torch.randn(4, 3, 32, 32)
    assert torch.isfinite(distiller(x, labels=torch.arange(4)).loss)


def _train(output_dir, max_steps: int, save_steps: int | None = None, resume: str | None = None):
    torch.manual_seed(0)
    student = create_model("resnet8", num_classes=NUM_CLASSES)
    args = tiny_args(output_dir, max_steps=max_steps, save_strategy="steps" if save_steps else "no",
                     save_steps=save_steps or 500)
    trainer = DistillationTrainer(
        model=student, teacher=TeacherEnsemble(_teachers(), weighting="confidence"), method="icd+kd", args=args,
        train_dataset=ClassBlobs(n=64, num_classes=NUM_CLASSES),
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_ensemble_checkpoint_round_trips_and_resume_matches_the_uninterrupted_run(tmp_path):
    full = _train(tmp_path / "full", max_steps=4)
    _train(tmp_path / "cut", max_steps=4, save_steps=2)
    ckpt = tmp_path / "cut" / "checkpoint-2"
    saved = safetensors.torch.load_file(str(ckpt / "model.safetensors"))
    assert not any(k.startswith("teacher.") for k in saved), "checkpoints must not carry the frozen teachers"
    assert {"losses.icd.embed_teachers.0.linear.weight", "losses.icd.logit_scale"} <= set(saved)
    resumed = _train(tmp_path / "cut", max_steps=4, resume=str(ckpt))
    expected, got = full.distiller.distillation_state_dict(), resumed.distiller.distillation_state_dict()
    assert expected.keys() == got.keys()
    for k in expected:
        assert torch.equal(expected[k], got[k]), f"{k} differs after resuming"


# ------------------------------------------------------------------------------------------------ configs

def test_teacher_twice_on_the_command_line_is_an_ensemble(tmp_path):
    assert parse_overrides(["--teacher", "a/run", "--teacher", "resnet56=b/run", "--teacher", "c"]) == {
        "teachers": ["a/run", "resnet56=b/run", "c"]}
    assert parse_overrides(["--teacher", "a/run"]) == {"teacher": "a/run"}
    cfg = load_config(None, {"student": "resnet8", "teachers": [str(tmp_path / "x"), "wrn_16_2=runs/y/student"]})
    assert cfg.teacher_label == "x+wrn_16_2" and cfg.output_dir.endswith("x+wrn_16_2__resnet8/icd_kd")
    assert [s.name for s in cfg.teacher_sources()] == [None, "wrn_16_2"]
    # The command line's ensemble replaces a config file's single teacher.
    config = tmp_path / "pair.yaml"
    config.write_text("student: resnet8\nteacher: resnet56\nteacher_checkpoint: runs/r56/student\n")
    cfg = load_config(config, parse_overrides(["--teacher", "a", "--teacher", "b"]))
    assert (cfg.teacher, cfg.teacher_checkpoint, cfg.teachers) == (None, None, ["a", "b"])
    one = load_config(None, {"student": "resnet8", "teachers": ["resnet8=runs/t/student"]})
    assert (one.teacher, one.teacher_checkpoint, one.teachers) == ("resnet8", "runs/t/student", [])


def test_config_offers_exactly_the_weightings_the_losses_know():
    import typing

    from icd_hf.config import experiment_hints
    from icd_hf.losses.ensemble import TEACHER_WEIGHTINGS

    assert typing.get_args(experiment_hints()["teacher_weighting"]) == TEACHER_WEIGHTINGS


@pytest.mark.parametrize("fields, message", [
    ({"teachers": ["a", "b"], "teacher_checkpoint": "c"}, "either teacher/teacher_checkpoint"),
    ({"teachers": ["a", "a"]}, "more than once"),
    ({"teachers": ["=a", "b"]}, "NAME=CHECKPOINT"),
    ({"teachers": ["a", "b"], "teacher_weighting": "best"}, "teacher_weighting takes {uniform,confidence}"),
])
def test_bad_ensembles_fail_before_anything_loads(fields, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, {"student": "resnet8", **fields})


def test_ensemble_run_records_every_teacher_and_its_card_lists_them(tmp_path):
    from test_recipes import TINY

    from icd_hf.experiment import run_experiment
    from icd_hf.hub import render_model_card
    from icd_hf.runs import RunResults

    for arch in ("resnet8", "wrn_16_2"):
        run_experiment(load_config(None, {**TINY, "output_dir": str(tmp_path / arch), "student": arch,
                                          "method": "vanilla"}))
    cfg = load_config(None, {**TINY, "student": "resnet8", "method": "icd+kd", "output_dir": str(tmp_path / "ens"),
                             "teachers": [str(tmp_path / "resnet8"), f"wrn_16_2={tmp_path / 'wrn_16_2'}"]})
    record = run_experiment(cfg)
    data = json.loads((tmp_path / "ens" / "results.json").read_text())
    teachers = {t["name"]: t for t in data["teachers"]}
    assert list(teachers) == ["resnet8", "wrn_16_2"]
    for arch in teachers:
        own = json.loads((tmp_path / arch / "results.json").read_text())
        assert teachers[arch]["top1"] == own["metrics"]["top1"]
        assert teachers[arch]["num_parameters"] == own["student"]["num_parameters"]
    assert data["teacher"]["name"] == "resnet8+wrn_16_2"
    assert data["fingerprint"]["teacher_weighting"] == "uniform" and len(data["fingerprint"]["teacher_weights"]) == 2
    assert RunResults.read(tmp_path / "ens").teachers == record.teachers
    # Teachers on the Hub become the card's base_model; a local path names nothing for a reader.
    from dataclasses import replace

    from icd_hf.hub import build_card_data

    on_hub = replace(record, teachers=[replace(record.teachers[0], path_or_hub_id="org/teacher-a"),
                                       record.teachers[1]])
    assert build_card_data(on_hub).base_model == ["org/teacher-a"]
    assert build_card_data(record).base_model is None
    card = str(render_model_card(record))
    assert "distilled from an ensemble of 2\nteachers (resnet8, wrn_16_2;" in card
    for t in record.teachers:
        assert f"| {t.name} (teacher) | {t.top1:.2f} |" in card
        assert f"  - {t.name}: top-1 {t.top1:.2f}," in card


# ------------------------------------------------------------------------------------------------ the CPU demonstration

def test_ensemble_demonstration_configs():
    from pathlib import Path

    configs = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "cpu_budget"
    alone = [load_config(configs / f"{t}__resnet20.yaml") for t in ("resnet56", "wrn_16_2")]
    both = load_config(configs / "ensemble__resnet20.yaml")
    assert [c.teacher for c in alone] == ["resnet56", "wrn_16_2"] and both.teacher_label == "resnet56+wrn_16_2"
    assert [s.checkpoint for s in both.teacher_sources()] == [c.teacher_checkpoint for c in alone]
    # Everything but the teachers is the protocol's: same method, schedule and student.
    for cfg in alone:
        assert (cfg.method, cfg.student, cfg.training) == (both.method, both.student, both.training)
    teacher = load_config(configs / "teacher_wrn_16_2.yaml")
    assert teacher.training == load_config(configs / "teacher_resnet56.yaml").training


@pytest.mark.parametrize("method", ["ft", "ab+kd"])
def test_initialisation_stages_train_every_teachers_modules(method, tmp_path):
    torch.manual_seed(0)
    student = create_model("resnet8", num_classes=NUM_CLASSES)
    trainer = DistillationTrainer(
        model=student, teacher=_teachers(), method=method, args=tiny_args(tmp_path, init_epochs=1, init_max_steps=2),
        train_dataset=ClassBlobs(n=32, num_classes=NUM_CLASSES),
    )
    name = method.split("+")[0]
    loss = trainer.distiller.losses[name]
    assert isinstance(loss, PerTeacherLoss) and loss.init_epochs > 0
    before = {k: v.clone() for k, v in loss.state_dict().items() if v.is_floating_point()}
    trainer.train()
    changed = {k.split(".")[1] for k, v in loss.state_dict().items() if k in before and not torch.equal(v, before[k])}
    # Each teacher's own modules train (AB needs no connector where the teacher's channels equal the student's).
    expected = {str(i) for i, member in enumerate(loss.members) if any(True for _ in member.parameters())}
    assert changed == expected and "1" in expected
    assert trainer.state.global_step == 3


@pytest.fixture(scope="module")
def bench_teachers():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "teachers.py"
    spec = importlib.util.spec_from_file_location("bench_teachers", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_teachers"] = module
    spec.loader.exec_module(module)
    return module


def test_published_teachers_load_in_float32_and_their_measured_accuracy_matches_their_runs(bench_teachers):
    from icd_hf.metrics import count_parameters
    from icd_hf.models.auto_classifier import load_image_classifier
    from icd_hf.runs import RunResults

    if not bench_teachers.TEACHERS_EVAL.is_file():
        pytest.skip("the ensemble demonstration has not evaluated its teachers yet")
    evaluated = json.loads(bench_teachers.TEACHERS_EVAL.read_text())
    for name, folder in bench_teachers.TEACHERS.items():
        model = load_image_classifier(folder, num_labels=100, role="teacher")
        assert {p.dtype for p in model.parameters()} == {torch.float32}
        record = RunResults.read(folder / "results.json")
        assert (record.student.name, record.training["num_train_epochs"]) == (name, 6)
        # The fp16 weights (benchmarks/teachers.py evaluate) classify as the trained fp32 model did, up to rounding.
        assert evaluated["top1"][name] == pytest.approx(record.metrics.top1, abs=0.15)
        assert evaluated["num_parameters"][name] == count_parameters(model)


def test_ensemble_forms_take_the_same_hyper_parameters_and_defaults_as_their_losses():
    import inspect

    from icd_hf.losses import get_loss_class, hyperparameters, list_losses

    forms = {name: get_loss_class(name).ensemble_loss for name in list_losses() if get_loss_class(name).ensemble_loss}
    assert set(forms) == {"icd", "kd"}
    for name, form in forms.items():
        params = inspect.signature(form.__init__).parameters
        own = {k: p.default for k, p in params.items() if k not in ("self", "student_spec", "teacher_specs",
                                                                      "teacher_names")}
        assert own == hyperparameters(get_loss_class(name)), name
