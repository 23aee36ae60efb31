"""DistillationTrainer end to end on CPU: every loss trains, checkpoints resume exactly, the teacher is frozen."""

from __future__ import annotations

import copy
import math

import pytest
import safetensors.torch
import torch
from trainer_helpers import ClassBlobs, fast_path_trainer, tiny_args, tiny_pair
from transformers import AutoModelForImageClassification

from icd_hf.distiller import Distiller
from icd_hf.losses import list_losses
from icd_hf.metrics import accuracy_metrics
from icd_hf.trainer import DistillationTrainer

METHOD_KWARGS = {"crd": {"nce_k": 32}}  # num_data comes from the training set


def _method_overrides(method: str) -> dict:
    return {name: kw for name, kw in METHOD_KWARGS.items() if name in method.split("+")}


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("method", [*list_losses(), "vanilla", "kd", "icd+kd", "crd+kd"])
def test_every_method_trains_through_the_trainer(method, tmp_path):
    student, teacher = tiny_pair()
    teacher_before = _snapshot(teacher)
    trainer = DistillationTrainer(
        model=student,
        teacher=teacher,
        method=method,
        loss_overrides=_method_overrides(method),
        args=tiny_args(tmp_path, init_epochs=1, init_max_steps=2),
        train_dataset=ClassBlobs(),
    )
    losses_before = _snapshot(trainer.distiller.losses)
    student_before = _snapshot(student)
    result = trainer.train()
    assert math.isfinite(result.training_loss)
    # Teacher: never updated, not even its BN running statistics.
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k
    if trainer.distiller.teacher is not None:
        assert not trainer.distiller.teacher.training
    # Student and the losses' own parameters were optimised.
    assert any(not torch.equal(v, student_before[k]) for k, v in student.state_dict().items())
    for name, loss in trainer.distiller.losses.items():
        for pname, p in loss.named_parameters():
            # ICD's logit bias shifts every logit equally, and softmax ignores that: it gets no gradient.
            if p.requires_grad and (name, pname) != ("icd", "logit_bias"):
                assert not torch.equal(p.detach(), losses_before[f"{name}.{pname}"]), f"{name}.{pname} did not train"
    # Each term is logged on its own.
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert "loss_ce" in logged
    for name in trainer.distiller.losses:
        assert f"loss_{name}" in logged


def test_icd_temperature_and_bias_get_no_weight_decay(tmp_path):
    student, teacher = tiny_pair()
    trainer = DistillationTrainer(
        model=student, teacher=teacher, method="icd", args=tiny_args(tmp_path), train_dataset=ClassBlobs()
    )
    trainer.create_optimizer()
    no_decay = {id(p) for g in trainer.optimizer.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    named = dict(trainer.distiller.named_parameters())
    nwd = trainer.distiller.no_weight_decay()
    assert nwd, "ICD must declare its temperature/bias"
    for name in nwd:
        assert id(named[name]) in no_decay
    # The heads and every student weight (BN included, as in the CIFAR recipes) are decayed.
    decayed = {id(p) for g in trainer.optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert all(id(p) in decayed for p in student.parameters())
    assert all(id(p) not in decayed and id(p) not in no_decay for p in teacher.parameters())


def test_step_schedule_follows_milestones(tmp_path):
    student, teacher = tiny_pair()
    # 64 samples / batch 16 = 4 steps per epoch; milestones at epochs 1 and 2 -> steps 4 and 8.
    args = tiny_args(tmp_path, max_steps=-1, num_train_epochs=3, lr_milestones=[1, 2], learning_rate=0.1)
    trainer = DistillationTrainer(model=student, teacher=teacher, method="kd", args=args, train_dataset=ClassBlobs())
    trainer.create_optimizer_and_scheduler(num_training_steps=12)
    lrs = []
    for _ in range(12):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    assert lrs[:4] == [pytest.approx(0.1)] * 4
    assert lrs[4:8] == [pytest.approx(0.01)] * 4
    assert lrs[8:] == [pytest.approx(0.001)] * 4


def _train_for(tmp_path, method, max_steps, save_steps=None, resume=None):
    student, teacher = tiny_pair()
    args = tiny_args(
        tmp_path,
        max_steps=max_steps,
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
    )
    trainer = DistillationTrainer(
        model=student,
        teacher=teacher,
        method=method,
        loss_overrides=_method_overrides(method),
        args=args,
        train_dataset=ClassBlobs(),
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


@pytest.mark.parametrize("method", ["icd+kd", "crd+kd"])
def test_resume_reproduces_the_uninterrupted_run(method, tmp_path):
    full = _train_for(tmp_path / "full", method, max_steps=6)
    _train_for(tmp_path / "cut", method, max_steps=6, save_steps=3)
    # Pretend the run died after step 3: resume a fresh trainer from that checkpoint.
    ckpt = tmp_path / "cut" / "checkpoint-3"
    saved = safetensors.torch.load_file(str(ckpt / "model.safetensors"))
    assert not any(k.startswith("teacher.") for k in saved), "checkpoints must not carry the frozen teacher"
    loss_keys = [k for k in saved if k.startswith("losses.")]
    assert loss_keys, "checkpoints must carry the loss modules"
    if method.startswith("crd"):
        assert any("memory" in k for k in loss_keys), "CRD's memory bank must be checkpointed"
    resumed = _train_for(tmp_path / "cut", method, max_steps=6, resume=str(ckpt))
    expected = full.distiller.distillation_state_dict()
    got = resumed.distiller.distillation_state_dict()
    assert expected.keys() == got.keys()
    for k in expected:
        assert torch.equal(expected[k], got[k]), k


def test_save_model_exports_only_the_student(tmp_path):
    student, teacher = tiny_pair()
    trainer = DistillationTrainer(
        model=student, teacher=teacher, method="icd+kd", args=tiny_args(tmp_path), train_dataset=ClassBlobs()
    )
    trainer.train()
    trainer.save_model(str(tmp_path / "export"))
    reloaded = AutoModelForImageClassification.from_pretrained(str(tmp_path / "export"))
    x = torch.randn(2, 3, 32, 32)
    student.eval()
    assert torch.equal(reloaded(pixel_values=x).logits, student(pixel_values=x).logits)
    saved = safetensors.torch.load_file(str(tmp_path / "export" / "model.safetensors"))
    assert not any(k.startswith(("teacher", "losses")) for k in saved)


def test_evaluation_reports_top1_top5_and_skips_the_teacher(tmp_path):
    student, teacher = tiny_pair(num_classes=8)

    def boom(*args, **kwargs):
        raise AssertionError("the teacher must not run during evaluation")

    trainer = DistillationTrainer(
        model=student, teacher=teacher, method="kd", args=tiny_args(tmp_path), eval_dataset=ClassBlobs(num_classes=8)
    )
    teacher.forward = boom
    metrics = trainer.evaluate()
    assert 0.0 <= metrics["eval_top1"] <= metrics["eval_top5"] <= 100.0
    assert math.isfinite(metrics["eval_loss"])


def test_accuracy_metrics_by_hand():
    from transformers import EvalPrediction

    preds = torch.tensor([[0, 1, 2, 3, 4], [5, 0, 1, 2, 3], [9, 8, 7, 6, 5], [1, 0, 2, 3, 4]])
    labels = torch.tensor([0, 0, 0, 0])
    m = accuracy_metrics(EvalPrediction(predictions=preds.numpy(), label_ids=labels.numpy()))
    assert m["top1"] == pytest.approx(25.0)  # only the first row ranks class 0 first
    assert m["top5"] == pytest.approx(75.0)  # the third row never lists class 0


def test_teacher_is_required_and_must_match_classes():
    student, _ = tiny_pair(num_classes=4)
    with pytest.raises(ValueError, match="needs a teacher|none was given"):
        Distiller(student, None, "icd+kd")
    _, teacher10 = tiny_pair(num_classes=10)
    with pytest.raises(ValueError, match="classes"):
        Distiller(student, teacher10, "kd")


def test_teacher_stays_in_eval_mode_when_training():
    student, teacher = tiny_pair()
    distiller = Distiller(student, copy.deepcopy(teacher), "kd")
    distiller.train()
    assert distiller.student.training and not distiller.teacher.training
    assert all(not p.requires_grad for p in distiller.teacher.parameters())


def test_recipe_defaults_do_not_clip_gradients(tmp_path):
    # RepDistiller's CIFAR recipe never clips; TrainingArguments would clip at 1.0 by default.
    assert tiny_args(tmp_path).max_grad_norm == 0.0


@pytest.mark.parametrize("method", ["icd+kd", "crd+kd", "fitnet", "vid"])
def test_fast_path_distiller_gives_the_plain_loss_and_gradients(method, tmp_path):
    student, teacher = tiny_pair()
    plain = Distiller(copy.deepcopy(student), copy.deepcopy(teacher), method, num_data=64)
    fast = copy.deepcopy(plain)
    fast.teacher_inference_mode = True  # what enable_fast_path switches on
    batch = next(iter(torch.utils.data.DataLoader(ClassBlobs(), batch_size=16)))
    outs = []
    for distiller in (plain, fast):
        torch.manual_seed(0)  # CRD samples its negatives
        distiller.train()
        out = distiller(**batch)
        out.loss.backward()
        outs.append((out.loss.detach(), [p.grad.clone() for p in distiller.parameters() if p.grad is not None]))
    assert torch.equal(outs[0][0], outs[1][0])
    assert len(outs[0][1]) == len(outs[1][1]) > 0
    assert all(torch.equal(a, b) for a, b in zip(outs[0][1], outs[1][1]))


def test_fast_path_trainer_trains_from_the_device_loader(tmp_path):
    from icd_hf.fast import DeviceDataLoader

    trainer, student = fast_path_trainer(tmp_path)
    loader = trainer.get_train_dataloader()
    assert isinstance(loader, DeviceDataLoader) and len(loader) == 4
    before = _snapshot(student)
    assert math.isfinite(trainer.train().training_loss)
    assert trainer.state.global_step == 3
    assert any(not torch.equal(v, before[k]) for k, v in student.state_dict().items())
