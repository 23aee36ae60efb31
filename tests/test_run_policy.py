"""The run's bookkeeping has one owner (``icd_hf.runs``): one declaration per training key, secrets masked on every
route to a file, and a record serialised from its own fields."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest

from icd_hf.cli_utils import run_from_argv
from icd_hf.hub import export_for_hub
from icd_hf.runs import (
    RESULTS_VERSION,
    KeyRole,
    ModelRecord,
    RunMetrics,
    RunResults,
    TeacherRecord,
    mask_command,
    mask_secrets,
    run_fingerprint,
    training_key_role,
)

TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"  # the shape of a real Hub token, made up


def test_every_training_key_has_one_role():
    assert training_key_role("learning_rate") is KeyRole.DEFINING
    assert training_key_role("save_steps") is KeyRole.BOOKKEEPING
    for key in ("hub_token", "push_to_hub_token", "token", "wandb_api_key"):
        assert training_key_role(key) is KeyRole.SECRET, key


def test_the_fingerprint_and_the_card_read_the_same_policy():
    from icd_hf.hub.card import _training_items

    training = {"learning_rate": 0.1, "save_steps": 10, "hub_token": TOKEN, "seed": 1}
    fingerprint = run_fingerprint(student="resnet8", teacher=None, teacher_checkpoint=None, method="vanilla",
                                  loss={}, data={}, training=training)
    in_fingerprint = {k.removeprefix("training.") for k in fingerprint if k.startswith("training.")}
    record = RunResults(method="vanilla", student=ModelRecord("resnet8"), metrics=RunMetrics(1.0), training=training)
    on_card = {k for k, _ in _training_items(record)}
    assert in_fingerprint == on_card == {"learning_rate", "seed"}


def test_mask_secrets_reaches_nested_values_and_token_shaped_strings():
    data = {"training": {"hub_token": TOKEN, "seed": 0, "empty_token": None},
            "notes": [f"pushed with {TOKEN}", {"wandb_api_key": "abc"}]}
    masked = mask_secrets(data)
    assert masked == {"training": {"hub_token": "<HUB_TOKEN>", "seed": 0, "empty_token": None},
                      "notes": ["pushed with <HF_TOKEN>", {"wandb_api_key": "<WANDB_API_KEY>"}]}
    assert TOKEN not in json.dumps(masked)


@pytest.mark.parametrize("command, expected", [
    (f"python recipes/distill.py --training.hub_token {TOKEN} --method kd",
     "python recipes/distill.py --training.hub_token '<HUB_TOKEN>' --method kd"),
    (f"icd-hf push runs/x --token={TOKEN}", "icd-hf push runs/x '--token=<TOKEN>'"),
    (f"python x.py --note {TOKEN}", "python x.py --note '<HF_TOKEN>'"),
    ("python recipes/distill.py --method 'icd+kd' --loss_overrides '{kd: {T: 4}}'",
     "python recipes/distill.py --method 'icd+kd' --loss_overrides '{kd: {T: 4}}'"),  # untouched, as typed
])
def test_mask_command(command, expected):
    assert mask_command(command) == expected


def _filled(tp: typing.Any, name: str) -> typing.Any:
    """A non-default JSON-able value of a field's type, so that a field that is not written is noticed."""
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return _filled(args[0], name)
    if tp is ModelRecord:
        return ModelRecord(name="resnet8", num_parameters=3)
    if tp is TeacherRecord:
        return TeacherRecord(name="wrn_16_2", num_parameters=5, path_or_hub_id="t", top1=9.5)
    if tp is RunMetrics:
        return RunMetrics(top1=1.5, top5=2.5, best_top1=3.5, best_epoch=4)
    if origin is list:
        return [_filled(args[0], name)]
    if origin is dict or tp is dict:
        return {f"{name}_key": 1}
    return {str: f"{name}-value", int: 7, float: 1.25}[tp]


def test_every_field_of_the_record_round_trips():
    """A new field is one line in RunResults: written, read back, nothing else to keep in step."""
    hints = typing.get_type_hints(RunResults)
    not_written = {"hub_url", "extra", "version", "source"}
    values = {f.name: _filled(hints[f.name], f.name) for f in dataclasses.fields(RunResults)
              if f.name not in not_written}
    record = RunResults(**values)
    data = record.to_dict()
    assert set(data) == set(values) | {"version"} and data["version"] == RESULTS_VERSION
    back = RunResults.from_dict(json.loads(json.dumps(data)))
    assert {k: getattr(back, k) for k in values} == values


def test_a_token_given_on_the_command_line_reaches_no_file(tmp_path, monkeypatch):
    """--training.hub_token (how Trainer users pass a token for --push_to_hub) is used, never written: not in
    results.json, the run record, the exported card or the exported results.json."""
    monkeypatch.chdir(tmp_path)
    argv = ["--dataset", "digits", "--method", "vanilla", "--student", "resnet8", "--max_train_samples", "32",
            "--max_eval_samples", "16", "--training.num_train_epochs", "1", "--training.per_device_train_batch_size",
            "16", "--training.eval_strategy", "no", "--training.save_strategy", "no", "--training.use_cpu", "true",
            "--training.dataloader_num_workers", "0", "--training.disable_tqdm", "true", "--training.report_to",
            "none", "--output_dir", str(tmp_path / "run"), "--training.hub_token", TOKEN]
    assert run_from_argv(argv, prog="distill.py") == 0
    record = json.loads((tmp_path / "run" / "results.json").read_text())
    assert record["training"]["hub_token"] == "<HUB_TOKEN>"
    assert "'<HUB_TOKEN>'" in record["command"]
    export_for_hub(tmp_path / "run", tmp_path / "export", measure_latency=False)
    leaks = [str(p.relative_to(tmp_path)) for p in Path(tmp_path).rglob("*") if p.is_file()
             and p.suffix in {".json", ".md", ".txt", ".yaml", ".py"} and TOKEN in p.read_text(errors="ignore")]
    assert leaks == []
    assert (tmp_path / "export" / "README.md").is_file() and (tmp_path / "export" / "results.json").is_file()


def test_an_old_record_that_holds_a_token_is_masked_when_read(tmp_path):
    """A results.json written before masking existed does not carry its token into a card or an export."""
    old = {"method": "vanilla", "student": {"name": "resnet8"}, "metrics": {"top1": 1.0},
           "training": {"hub_token": TOKEN}, "config": {"training": {"hub_token": TOKEN}},
           "command": f"distill.py --training.hub_token {TOKEN}"}
    (tmp_path / "results.json").write_text(json.dumps(old))
    assert TOKEN not in json.dumps(RunResults.read(tmp_path).to_dict())
