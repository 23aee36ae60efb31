"""Config values are converted by their declared types before anything loads; --help lists every field; the
command lines print one clean error line, from one process, and leave the root logger alone."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from icd_hf.cli import main as icd_hf_main
from icd_hf.cli_utils import run_from_argv
from icd_hf.config import ConfigError, ExperimentConfig, load_config, parse_overrides, training_fields
from icd_hf.runs import available_cpus, effective_num_workers

ROOT = Path(__file__).resolve().parents[1]
PAIR = ROOT / "recipes" / "configs" / "pairs" / "wrn_40_2__wrn_16_2.yaml"


def test_numbers_become_numbers_wherever_they_come_from(tmp_path):
    # YAML 1.1 reads 5e-4 (no dot) as a string; the command line gives strings: both are floats here.
    config = tmp_path / "c.yaml"
    config.write_text("_base_: %s\nmethod: vanilla\ntraining:\n  weight_decay: 5e-4\n  save_strategy: no\n"
                      % (ROOT / "recipes" / "configs" / "cifar100.yaml"))
    cfg = load_config(config, parse_overrides(["--training.learning_rate", "1e-3", "--max_train_samples", "512"]))
    assert cfg.training["learning_rate"] == 1e-3 and isinstance(cfg.training["learning_rate"], float)
    assert cfg.training["weight_decay"] == 5e-4 and isinstance(cfg.training["weight_decay"], float)
    assert cfg.training["save_strategy"] == "no"  # YAML's unquoted `no` is false: the choice "no" was meant
    assert cfg.max_train_samples == 512
    got = parse_overrides(["--training.lr_milestones", "150", "180", "--train_augment", "false", "--image_size",
                           "null", "--loss_overrides", "{icd: {invariance_weight: 0.3}}", "--training.report_to",
                           "none", "--training.seed=3"])
    assert got == {"training.lr_milestones": [150.0, 180.0], "train_augment": False, "image_size": None,
                   "loss_overrides": {"icd": {"invariance_weight": 0.3}}, "training.report_to": "none",
                   "training.seed": 3}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--max_train_samples", "abc"], "--max_train_samples takes int or null, got 'abc'"),
        (["--method"], "--method needs a value (str)"),
        (["--training.per_device_train_batch_size", "0"], "training.per_device_train_batch_size must be at least 1"),
        (["--training.learning_rate", "fast"], "--training.learning_rate takes float, got 'fast'"),
        (["--training.eval_strategy", "sometimes"], "--training.eval_strategy takes {no,steps,epoch}, got 'some"),
        (["--student", "resnet8", "wrn_16_2"], "--student takes one value (str) but got 2"),
        (["--fast_path", "maybe"], "--fast_path takes bool, got 'maybe'"),
        (["--max_eval_samples", "0"], "max_eval_samples must be at least 1"),
    ],
)
def test_bad_values_are_one_line_before_anything_loads(argv, message, capsys, monkeypatch):
    import icd_hf.data
    import icd_hf.experiment

    monkeypatch.setattr(icd_hf.data, "build_datasets", lambda *a, **k: pytest.fail("loaded data"))
    monkeypatch.setattr(icd_hf.experiment, "prepare_experiment", lambda *a, **k: pytest.fail("prepared"), raising=True)
    code = run_from_argv(["--dataset", "digits", "--method", "vanilla", *argv], prog="distill.py")
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines() == [f"distill.py: error: {err.split('error: ', 1)[1].strip()}"]
    assert message in err and "Traceback" not in err


def test_help_lists_every_field_with_type_default_and_help(capsys):
    for argv in (["--help"], ["--config", str(PAIR), "--help"], ["--method", "kd", "-h"]):
        assert run_from_argv(argv, prog="distill.py") == 0
        out = capsys.readouterr().out
        for f in dataclasses.fields(ExperimentConfig):
            if f.name != "training":
                assert f"--{f.name}" in out, f.name
        for name in training_fields():
            if name != "output_dir":
                assert f"--training.{name}" in out, name
    flat = " ".join(out.split())
    assert "The initial learning rate for the optimizer. [float; default: 0.05]" in flat  # the recipe's default
    assert "--max_train_samples INT Keep only the first N training images (smoke runs). [int or null; default: " \
           "null]" in flat
    assert icd_hf_main(["distill", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: icd-hf distill") and "--training.learning_rate FLOAT" in out
    assert icd_hf_main(["sweep", "-h"]) == 0 and "--methods STR" in capsys.readouterr().out


def test_help_with_a_config_shows_its_values(capsys):
    assert run_from_argv(["--config", str(PAIR), "--help"], prog="distill.py") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "experiment fields (defaults from" in out
    assert "[str or null; default: runs/teachers/wrn_40_2/student]" in out
    assert "[list[float] or null; default: [150, 180, 210]]" in out


def test_dataloader_workers_never_exceed_the_machine():
    assert effective_num_workers(10_000) == available_cpus() <= (os.cpu_count() or 1)
    assert effective_num_workers(0) == 0


def test_only_the_main_process_reports(capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert run_from_argv(["--max_train_samples", "abc"], prog="distill.py") == 2
    assert capsys.readouterr().err == ""  # rank 0 prints the one line, not every rank

    class _Trainer:
        def __init__(self, main: bool) -> None:
            self.main = main

        def is_world_process_zero(self) -> bool:
            return self.main

    import icd_hf.experiment
    from icd_hf.runs import ModelRecord, RunMetrics, RunResults

    monkeypatch.delenv("RANK")
    for main, printed in ((False, False), (True, True)):
        fake = type("E", (), {"trainer": _Trainer(main)})()
        monkeypatch.setattr(icd_hf.experiment, "prepare_experiment", lambda cfg, fake=fake: fake)
        monkeypatch.setattr(icd_hf.experiment, "execute_experiment",
                            lambda exp, command=None: RunResults(method="vanilla", student=ModelRecord("resnet8"),
                                                                           metrics=RunMetrics(1.0)))
        assert run_from_argv(["--method", "vanilla", "--dataset", "digits"], prog="distill.py") == 0
        out = capsys.readouterr().out
        assert ('"top1": 1.0' in out) is printed


def test_command_lines_leave_the_root_logger_alone(capsys, monkeypatch):
    root_handlers = list(logging.getLogger().handlers)
    run_from_argv(["--max_train_samples", "abc"], prog="distill.py")
    icd_hf_main(["export", "/nonexistent/run", "--out", "/nonexistent/out"])
    capsys.readouterr()
    assert logging.getLogger().handlers == root_handlers
    assert any(getattr(h, "_icd_hf", False) for h in logging.getLogger("icd_hf").handlers)


@pytest.mark.parametrize(
    "args, launched, message",
    [
        # Validated before anything is launched.
        (["--max_train_samples", "abc"], False, "error: --max_train_samples takes int or null, got 'abc'."),
        # Fails inside the launched run: printed again after accelerate's traceback.
        (["--method", "vanilla", "--dataset", "cifar100", "--data_dir", "/nonexistent/c"], True,
         "error: Data directory '/nonexistent/c' does not exist"),
    ],
)
def test_the_error_line_is_last_under_icd_hf_launch(args, launched, message, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "icd_hf.cli", "launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "distill", "--student", "resnet8", *args],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert lines[-1].startswith("icd-hf distill: error: " if launched else "icd-hf launch distill: error: ")
    assert message in lines[-1]
    assert ("Traceback" in proc.stderr) is launched  # accelerate's report, then our line


def test_icd_hf_launch_exits_with_the_recipes_own_code(tmp_path, monkeypatch, capsys):
    """accelerate's launcher turns every failure into exit 1; `icd-hf launch` passes on the recipe's own code (2 bad
    input, 130 Ctrl-C, 1 a failed run), which the launched recipe leaves next to its error line."""
    import icd_hf.cli as cli
    from icd_hf.cli_utils import ERROR_FILE_ENV

    error_file = tmp_path / "error.txt"
    monkeypatch.setenv(ERROR_FILE_ENV, str(error_file))
    monkeypatch.setitem(cli._RECIPES, "distill", (cli._RECIPES["distill"][0], lambda argv: (
        error_file.write_text("icd-hf distill: interrupted: Ctrl-C\n"), 130)[1]))
    assert cli.main(["distill", "--method", "vanilla"]) == 130  # the launched side: its code is left behind
    assert (tmp_path / "error.txt.code").read_text() == "130"

    def fake_run(command, env):  # what accelerate does with a recipe that exits 130
        with open(env[ERROR_FILE_ENV], "w") as f:
            f.write("icd-hf distill: interrupted: Ctrl-C\n")
        with open(env[ERROR_FILE_ENV] + ".code", "w") as f:
            f.write("130")
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr("icd_hf.cli_utils.validate_recipe_argv", lambda *a, **k: None)
    monkeypatch.setattr(subprocess, "run", fake_run)
    assert cli._launch(["--cpu", "distill", "--method", "vanilla"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "icd-hf distill: interrupted: Ctrl-C"


def test_config_error_is_a_value_error():
    with pytest.raises(ConfigError):
        load_config(None, {"training": {"per_device_train_batch_size": "many"}})
    assert json.dumps(load_config(PAIR).training)  # typed values stay JSON-serialisable for results.json
