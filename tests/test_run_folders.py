"""Run folders never mix: each run its own folder, a fingerprint in every checkpoint, resume refuses another run,
the time and best accuracy of a resumed run cover all of it, and the exported student is pipeline-ready."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from PIL import Image

from icd_hf.cli_utils import run_from_argv
from icd_hf.config import load_config
from icd_hf.experiment import prepare_experiment, run_experiment
from icd_hf.runs import (
    RUN_RECORD_NAME,
    RunMismatchError,
    default_output_dir,
    find_resumable_checkpoint,
    fingerprint_diff,
    method_dirname,
    read_run_record,
)
from icd_hf.sweep import run_sweep, sweep_root

ROOT = Path(__file__).resolve().parents[1]
PAIR = ROOT / "recipes" / "configs" / "pairs" / "wrn_40_2__wrn_16_2.yaml"
TEACHER = ROOT / "recipes" / "configs" / "teachers" / "wrn_40_2.yaml"
# 2 epochs of 4 steps on 64 digits, a checkpoint and an evaluation per epoch.
TINY = {
    "dataset": "digits",
    "student": "resnet8",
    "method": "vanilla",
    "max_train_samples": 64,
    "max_eval_samples": 32,
    "training.num_train_epochs": 2,
    "training.lr_milestones": [1],
    "training.per_device_train_batch_size": 16,
    "training.per_device_eval_batch_size": 32,
    "training.eval_strategy": "epoch",
    "training.save_strategy": "epoch",
    "training.save_total_limit": 3,
    "training.logging_steps": 2,
    "training.dataloader_num_workers": 0,
    "training.use_cpu": True,
    "training.disable_tqdm": True,
}


def _cfg(out: Path, **fields):
    return load_config(None, {**TINY, "output_dir": str(out), **fields})


def test_every_run_gets_its_own_folder_by_default():
    folders = {m: load_config(PAIR, {"method": m}).output_dir for m in ("icd+kd", "icd", "kd", "vanilla")}
    assert folders == {
        "icd+kd": "runs/wrn_40_2__wrn_16_2/icd_kd",
        "icd": "runs/wrn_40_2__wrn_16_2/icd",
        "kd": "runs/wrn_40_2__wrn_16_2/kd",
        "vanilla": "runs/wrn_40_2__wrn_16_2/vanilla",
    }
    assert load_config(PAIR, {"tag": "lr0.01"}).output_dir == "runs/wrn_40_2__wrn_16_2/icd_kd-lr0.01"
    # A teacher lands where the pair configs' teacher_checkpoint looks for it.
    teacher_dir = load_config(TEACHER).output_dir
    assert teacher_dir == "runs/teachers/wrn_40_2"
    assert load_config(PAIR).teacher_checkpoint == f"{teacher_dir}/student"
    assert load_config(PAIR, {"output_dir": "elsewhere"}).output_dir == "elsewhere"
    # One definition: the sweep puts each method where distill.py would.
    assert sweep_root(str(PAIR), {}) / method_dirname("crd+kd") == Path(load_config(PAIR, {"method": "crd+kd"})
                                                                        .output_dir)
    assert default_output_dir("timm/resnet18", "wrn_40_2", "kd") == "runs/wrn_40_2__timm-resnet18/kd"


def test_fingerprint_diff_treats_an_explicit_default_as_unset():
    old = {"method": "kd", "training.seed": 42}
    assert fingerprint_diff(old, {"method": "kd"}, defaults={"seed": 42}) == []
    assert fingerprint_diff(old, {"method": "icd"}, defaults={"seed": 42}) == [("method", "kd", "icd")]
    assert fingerprint_diff({}, {"training.seed": 1}, defaults={"seed": 42}) == [("training.seed", 42, 1)]


def test_a_different_run_in_the_folder_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    first = run_experiment(_cfg(out, **{"training.num_train_epochs": 1}))
    assert (out / "checkpoint-4").is_dir() and read_run_record(out / "checkpoint-4")["fingerprint"] == \
        first.fingerprint
    # What used to train 0 steps and relabel the old results (another method, lr, loss weights): refused before
    # any data or model is loaded, naming the fields that differ and the ways out.
    import icd_hf.data

    monkeypatch.setattr(icd_hf.data, "build_datasets", lambda *a, **k: pytest.fail("loaded data"))
    with pytest.raises(RunMismatchError) as err:
        prepare_experiment(_cfg(out, **{"training.num_train_epochs": 1, "training.learning_rate": 0.01}))
    message = str(err.value)
    assert "training.learning_rate: 0.05 there, 0.01 here" in message and "\n" not in message
    for choice in ("--output_dir", "--resume never", "--overwrite_output_dir"):
        assert choice in message
    argv = ["--dataset", "digits", "--student", "resnet8", "--method", "vanilla", "--output_dir", str(out),
            "--max_train_samples", "64", "--training.num_train_epochs", "1", "--training.seed", "7"]
    assert run_from_argv(argv, prog="distill.py") == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert err_lines[-1].startswith("distill.py: error: ") and "training.seed: 42 there, 7 here" in err_lines[-1]
    assert json.loads((out / "results.json").read_text())["fingerprint"] == first.fingerprint  # untouched


def test_legacy_results_without_fingerprint_are_still_protected(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"method": "icd+kd", "student": {"name": "resnet8"},
                                                  "teacher": {"name": "resnet8"}}))
    with pytest.raises(RunMismatchError, match="method: 'icd\\+kd' there, 'vanilla' here"):
        prepare_experiment(_cfg(out))


def test_resume_continues_the_clock_and_the_best_accuracy(tmp_path, caplog):
    out = tmp_path / "run"
    full = run_experiment(_cfg(out))
    assert find_resumable_checkpoint(out) == str(out / "checkpoint-8")
    # Pretend the run died after epoch 1, having spent 1000 s and reached its best accuracy then.
    for name in ("checkpoint-8", "results.json", "student"):
        path = out / name
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        else:
            path.unlink()
    ckpt = out / "checkpoint-4"
    record = read_run_record(ckpt)
    (ckpt / RUN_RECORD_NAME).write_text(json.dumps({**record, "elapsed_s": 1000.0}))
    state = json.loads((ckpt / "trainer_state.json").read_text())
    for entry in state["log_history"]:
        if "eval_top1" in entry:
            entry["eval_top1"] = 100.0
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    with caplog.at_level(logging.INFO, logger="icd_hf"):
        resumed = run_experiment(_cfg(out))
    assert f"Resuming from {ckpt} (step 4/8, epoch 1.00, 16.7 min of training so far)" in caplog.text
    assert resumed.resumed_from == str(ckpt)
    assert resumed.wall_time_s >= 1000.0 > full.wall_time_s
    assert (resumed.metrics.best_top1, resumed.metrics.best_epoch) == (100.0, 1)
    assert resumed.fingerprint == full.fingerprint


def test_resume_never_and_overwrite_output_dir(tmp_path):
    out = tmp_path / "run"
    run_experiment(_cfg(out, **{"training.num_train_epochs": 1}))
    (out / "checkpoint-4" / "marker").write_text("old run")
    other = {"training.num_train_epochs": 1, "training.learning_rate": 0.01}
    # --resume never: train from scratch here (the old checkpoint-4 is simply written over).
    fresh = run_experiment(_cfg(out, resume="never", **other))
    assert fresh.resumed_from is None and fresh.training["learning_rate"] == 0.01
    (out / "checkpoint-4" / "marker").write_text("old run")
    (out / "unrelated.txt").write_text("keep me")
    again = run_experiment(_cfg(out, overwrite_output_dir=True, **{"training.num_train_epochs": 1}))
    assert again.resumed_from is None and not (out / "checkpoint-4" / "marker").exists()
    assert (out / "unrelated.txt").read_text() == "keep me"  # only what a run writes is deleted


def test_sweep_reuses_only_the_same_run(tmp_path):
    overrides = {**TINY, "output_dir": str(tmp_path / "pair"), "training.num_train_epochs": 1,
                 "training.save_strategy": "no"}
    run_sweep(None, ["vanilla"], overrides)
    stamp = (tmp_path / "pair" / "vanilla" / "results.json").stat().st_mtime_ns
    run_sweep(None, ["vanilla"], overrides)  # the same run: reused, not re-trained
    assert (tmp_path / "pair" / "vanilla" / "results.json").stat().st_mtime_ns == stamp
    with pytest.raises(RunMismatchError, match="training.learning_rate"):
        run_sweep(None, ["vanilla"], {**overrides, "training.learning_rate": 0.2})


def test_student_folder_is_pipeline_ready(tmp_path):
    from transformers import pipeline

    run_experiment(_cfg(tmp_path / "run", **{"training.num_train_epochs": 1, "training.save_strategy": "no"}))
    student = tmp_path / "run" / "student"
    assert (student / "preprocessor_config.json").is_file()
    classifier = pipeline("image-classification", model=str(student), device="cpu")
    predictions = classifier(Image.new("RGB", (8, 8), (255, 255, 255)), top_k=3)
    assert len(predictions) == 3 and {p["label"] for p in predictions} <= {str(d) for d in range(10)}


def test_the_recorded_commit_is_the_one_the_process_started_with(monkeypatch):
    import re
    import subprocess

    from icd_hf.runs import git_commit

    first = git_commit()
    assert re.fullmatch(r"[0-9a-f]{7,}(\+dirty)?|unknown", first)
    # A checkout that moves on during a long run does not change what the run records.
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("read the checkout again"))
    assert git_commit() == first
