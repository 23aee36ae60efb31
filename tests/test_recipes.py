"""Configs and the recipe command lines: every shipped config parses and builds; bad input fails clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from icd_hf.cli_utils import run_from_argv
from icd_hf.config import ConfigError, load_config, parse_overrides, resolved_training
from icd_hf.experiment import find_resumable_checkpoint, run_experiment
from icd_hf.losses.presets import resolve_method
from icd_hf.models import create_model, is_model
from icd_hf.runs import RESULTS_VERSION
from icd_hf.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "recipes" / "configs").rglob("*.yaml"))
TINY = {
    "dataset": "digits",
    "max_train_samples": 64,
    "max_eval_samples": 32,
    "training.num_train_epochs": 1,
    "training.per_device_train_batch_size": 16,
    "training.per_device_eval_batch_size": 32,
    "training.eval_strategy": "no",
    "training.save_strategy": "no",
    "training.logging_steps": 1,
    "training.dataloader_num_workers": 0,
    "training.use_cpu": True,
    "training.disable_tqdm": True,
}


def test_all_configs_are_shipped():
    names = {p.relative_to(ROOT / "recipes" / "configs").as_posix() for p in CONFIGS}
    assert len([n for n in names if n.startswith("pairs/")]) == 13  # tables 1 and 2 of the paper
    assert len([n for n in names if n.startswith("teachers/")]) == 6
    assert {"cifar100.yaml", "quickstart.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_parses_and_its_models_build(path):
    text = path.read_text()
    cfg = load_config(path, {"teacher_checkpoint": "unused"} if "teacher_checkpoint" not in text and "teachers:" not in
                      text else {})
    resolve_method(cfg.method, cfg.loss_overrides)
    for name in filter(None, [cfg.student, cfg.teacher, *(s.name for s in cfg.teacher_sources())]):
        assert is_model(name), name
    if "pairs/" in path.as_posix():
        training = resolved_training(cfg)
        assert training["num_train_epochs"] == 240
        assert training["lr_milestones"] == [150, 180, 210]
        assert training["weight_decay"] == 5e-4 and training["per_device_train_batch_size"] == 64
        expected_lr = 0.01 if cfg.student in {"mobilenetv2", "shufflenetv1", "shufflenetv2"} else 0.05
        assert training["learning_rate"] == expected_lr
        # The architectures build and agree on the label space.
        student, teacher = create_model(cfg.student, num_classes=100), create_model(cfg.teacher, num_classes=100)
        x = torch.zeros(1, 3, 32, 32)
        assert student.eval()(pixel_values=x).logits.shape == teacher.eval()(pixel_values=x).logits.shape


def test_the_cifar_schedule_has_one_copy():
    """The paper's schedule is read from its YAML file; the CIFAR recipe config inherits it without repeating it."""
    import yaml

    from icd_hf.config import PAPER_SCHEDULE_FILE, PAPER_TRAINING

    assert PAPER_TRAINING == yaml.safe_load(PAPER_SCHEDULE_FILE.read_text())["training"]
    assert PAPER_TRAINING["num_train_epochs"] == 240 and PAPER_TRAINING["lr_milestones"] == [150, 180, 210]
    recipe = yaml.safe_load((ROOT / "recipes" / "configs" / "cifar100.yaml").read_text())["training"]
    assert not set(recipe) & set(PAPER_TRAINING)
    cfg = load_config(ROOT / "recipes" / "configs" / "cifar100.yaml",
                      {"training.learning_rate": 0.2, "method": "vanilla"})
    assert resolved_training(cfg) == {**PAPER_TRAINING, "learning_rate": 0.2, "dataloader_num_workers": 4, "seed": 0}


def test_overrides_are_typed_and_take_dotted_paths():
    got = parse_overrides(["--method", "crd+kd", "--training.lr_milestones=[1, 2]", "--fast_path", "--image_size",
                           "64"])
    assert got == {"method": "crd+kd", "training.lr_milestones": [1.0, 2.0], "fast_path": True, "image_size": 64}
    with pytest.raises(ConfigError, match="Unknown config field 'x'"):
        parse_overrides(["--x", "0.5"])
    cfg = load_config(CONFIGS[0].parent / "pairs" / "wrn_40_2__wrn_16_2.yaml", {"training.learning_rate": 0.2})
    assert resolved_training(cfg)["learning_rate"] == 0.2 and resolved_training(cfg)["num_train_epochs"] == 240


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"studnet": "x"}, "did you mean 'student'"),
        ({"training.learnin_rate": 1}, "did you mean learning_rate"),
        ({"method": "icd"}, "needs a trained teacher"),
        ({"push_to_hub": True}, "hub_model_id"),
    ],
)
def test_config_errors_name_the_problem_and_the_fix(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, {"method": "vanilla", **overrides})


def _cli(args, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "distill.py"), "--dataset", "digits", "--output_dir",
         str(tmp_path / "run"), *args],
        capture_output=True, text=True, env=env, timeout=300,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--student", "resnet9", "--method", "vanilla"], "Unknown student 'resnet9' (did you mean resnet8"),
        (["--method", "icdd", "--teacher_checkpoint", "x"], "Unknown distillation method component 'icdd'"),
        (["--method", "icd", "--teacher_checkpoint", "/nonexistent/t"], "Train the teacher first"),
        (["--method", "vanilla", "--dataset", "cifar100", "--data_dir", "/nonexistent/c"], "/nonexistent/c"),
        (["--method", "vanilla", "--push_to_hub", "--hub_model_id", "no spaces allowed"], "hub"),
        # An org/name that is no folder here is tried on the Hub; the error says both were tried.
        (["--method", "icd", "--teacher_checkpoint", "someorg/wrn40"],
         "Could not load the teacher 'someorg/wrn40': it is not a local folder, and loading it from the Hugging Face"),
    ],
)
def test_cli_rejects_bad_input_before_training(args, message, tmp_path):
    proc = _cli(args, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "results.json").exists()


def _tiny_cfg(tmp_path, **fields):
    return load_config(None, {**TINY, "output_dir": str(tmp_path), **fields})


def test_teacher_then_student_end_to_end_and_mismatch_errors(tmp_path):
    teacher = run_experiment(_tiny_cfg(tmp_path / "teacher", student="resnet8", method="vanilla"))
    assert teacher.teacher is None and 0 <= teacher.metrics.top1 <= 100
    ckpt = str(tmp_path / "teacher" / "student")
    distilled = run_experiment(
        _tiny_cfg(tmp_path / "icd", student="resnet8", teacher="resnet8", teacher_checkpoint=ckpt, method="icd+kd")
    )
    saved = json.loads((tmp_path / "icd" / "results.json").read_text())
    assert saved["metrics"] == asdict(distilled.metrics) and saved["version"] == RESULTS_VERSION
    assert saved["teacher"]["top1"] == teacher.metrics.top1
    assert [t["name"] for t in saved["loss"]["terms"]] == ["icd", "kd"]
    assert (tmp_path / "icd" / "student" / "model.safetensors").is_file()
    # A sweep over methods for the pair, collected into one table; finished methods are not re-run.
    overrides = {**TINY, "output_dir": str(tmp_path / "sweep"), "student": "resnet8", "teacher": "resnet8",
                 "teacher_checkpoint": ckpt}
    table = run_sweep(None, ["vanilla", "kd", "crd+kd"], overrides)
    assert set(table["results"]) == {"vanilla", "kd", "crd+kd"}
    markdown = (tmp_path / "sweep" / "sweep.md").read_text()
    assert "| crd+kd |" in markdown and json.loads((tmp_path / "sweep" / "sweep.json").read_text()) == table
    stamp = (tmp_path / "sweep" / "kd" / "results.json").stat().st_mtime_ns
    run_sweep(None, ["kd"], overrides)
    assert (tmp_path / "sweep" / "kd" / "results.json").stat().st_mtime_ns == stamp
    # The checkpoint holds a resnet8, not what the config claims.
    with pytest.raises(ValueError, match="holds a 'resnet8' but the config says teacher: wrn_16_2"):
        run_experiment(_tiny_cfg(tmp_path / "x", student="resnet8", teacher="wrn_16_2", teacher_checkpoint=ckpt,
                                 method="kd"))
    # A teacher trained on 10 classes cannot teach a 100-class... here: digits has 10, so ask for another set.
    from icd_hf.models import load_model

    with pytest.raises(ValueError, match="10-class head but num_classes=100"):
        load_model(ckpt, num_classes=100)


def test_resume_skips_an_interrupted_save(tmp_path):
    for step, complete in [(2, True), (4, True), (6, False)]:
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"x")
        if complete:
            (d / "trainer_state.json").write_text("{}")
    # checkpoint-6 lacks trainer_state.json: a save that a crash cut short.
    assert find_resumable_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert find_resumable_checkpoint(tmp_path / "missing") is None


def test_help_exits_cleanly(capsys):
    assert run_from_argv(["--help"], prog="distill.py") == 0


def test_icd_hf_console_commands(capsys):
    from icd_hf.cli import main

    assert main(["distill", "--method", "icd"]) == 2
    assert "needs a trained teacher" in capsys.readouterr().err
    assert main(["sweep", "--methods", "kd,nope", "--teacher_checkpoint", "x"]) == 2
    assert "Unknown distillation method component 'nope'" in capsys.readouterr().err


def test_fast_path_recipe_runs_end_to_end(tmp_path):
    results = run_experiment(_tiny_cfg(tmp_path, student="resnet8", method="vanilla", fast_path=True))
    assert results.config["fast_path"] is True
    assert 0.0 <= results.metrics.top1 <= 100.0
    assert (tmp_path / "student" / "model.safetensors").is_file()
