"""``results.json`` is one versioned record (``icd_hf.runs.RunResults``): files from before the version still load,
the JSON keeps its keys and order, and every reader (cards, tables, export, the CPU-budget protocol) goes through it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from icd_hf.runs import (
    RESULTS_NAME,
    RESULTS_VERSION,
    RunResults,
    RunResultsError,
    find_run_results,
    resolve_model_dir,
)

ROOT = Path(__file__).resolve().parents[1]
# What experiment.py wrote before the record was versioned: these keys, in this order, and no "version".
LEGACY = {
    "method": "icd+kd",
    "teacher": {"name": "wrn_16_2", "num_parameters": 703284, "path_or_hub_id": "runs/t/student", "top1": 98.6},
    "student": {"name": "resnet8", "num_parameters": 78042},
    "dataset": {"name": "digits", "num_classes": 10, "mean": [0.3, 0.3, 0.3], "std": [0.3, 0.3, 0.3],
                "image_size": 32, "native_image_size": 32},
    "loss": {"ce_weight": 1.0, "terms": [{"name": "icd", "weight": 1.0, "kwargs": {}},
                                         {"name": "kd", "weight": 1.0, "kwargs": {}}]},
    "training": {"num_train_epochs": 3, "seed": 0},
    "metrics": {"top1": 97.98, "top5": 100.0, "best_top1": 98.3, "best_epoch": 2},
    "baselines": {"vanilla_top1": 95.29, "kd_top1": None},
    "config": {"image_size": None, "training": {"seed": 0}},
    "command": "quickstart.py",
    "git_commit": "abc1234",
    "wall_time_s": 61.2,
    "resumed_from": None,
    "device": "cpu",
    "fingerprint": {"student": "resnet8", "method": "icd+kd"},
}


def test_a_legacy_file_loads_and_round_trips_with_the_same_keys(tmp_path):
    (tmp_path / RESULTS_NAME).write_text(json.dumps(LEGACY))
    record = RunResults.read(tmp_path)
    assert record.version == 0 and record.source == str(tmp_path / RESULTS_NAME)
    assert (record.method, record.student.name, record.teacher.name, record.teacher.top1) == (
        "icd+kd", "resnet8", "wrn_16_2", 98.6)
    assert (record.metrics.top1, record.metrics.best_epoch) == (97.98, 2)
    assert record.term_names == ["icd", "kd"] and record.image_size == 32
    written = json.loads(record.write(tmp_path / "out").read_text())
    assert list(written) == [*LEGACY, "version"] and written["version"] == RESULTS_VERSION
    assert {k: v for k, v in written.items() if k != "version"} == LEGACY
    assert RunResults.read(tmp_path / "out").version == RESULTS_VERSION


def test_a_teacher_run_has_no_teacher_record():
    record = RunResults.from_dict({**LEGACY, "method": "vanilla", "teacher": None})
    assert record.teacher is None and record.to_dict()["teacher"] is None


def test_unknown_keys_survive_and_newer_versions_are_refused():
    record = RunResults.from_dict({**LEGACY, "note": "kept by hand"})
    assert record.extra == {"note": "kept by hand"} and record.to_dict()["note"] == "kept by hand"
    with pytest.raises(RunResultsError, match="version 99 .* upgrade icd-hf"):
        RunResults.from_dict({**LEGACY, "version": 99})


def test_missing_fields_are_one_error_both_key_and_value_error(tmp_path):
    for broken, field in (({k: v for k, v in LEGACY.items() if k != "method"}, "method"),
                          ({**LEGACY, "metrics": {"top5": 1.0}}, "metrics.top1"),
                          ({**LEGACY, "student": {}}, "student.name")):
        with pytest.raises(RunResultsError, match=f"`{field}`") as err:
            RunResults.from_dict(broken)
        assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
        assert str(err.value).startswith("results.json has no")  # no KeyError quotes around the message
    (tmp_path / RESULTS_NAME).write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a results.json"):
        RunResults.read(tmp_path)
    with pytest.raises(FileNotFoundError, match="No results.json"):
        RunResults.read(tmp_path / "nowhere")


def test_image_size_falls_back_from_the_override_to_the_data():
    def size(config, dataset):
        return RunResults.from_dict({**LEGACY, "config": config, "dataset": dataset}).image_size

    assert size({"image_size": 64}, {"image_size": 32}) == 64
    assert size({"image_size": None}, {"image_size": None, "native_image_size": 96}) == 96
    assert size({}, {}) is None


def test_export_record_and_run_folder_helpers(tmp_path):
    record = RunResults.from_dict(LEGACY).with_export({"hub_model_id": "org/name"})
    run = tmp_path / "run"
    (run / "student").mkdir(parents=True)
    (run / "student" / "config.json").write_text("{}")
    record.write(run)
    assert json.loads((run / RESULTS_NAME).read_text())["hub_export"] == {"hub_model_id": "org/name"}
    assert RunResults.read(run).hub_export == {"hub_model_id": "org/name"}
    assert "hub_export" not in record.with_export(None).to_dict()
    assert resolve_model_dir(run) == str(run / "student")
    assert find_run_results(run / "student").metrics == record.metrics  # the student/ folder finds its run
    assert find_run_results(tmp_path) is None


@pytest.mark.parametrize("path", sorted((ROOT / "model_cards" / "examples").glob("*/results.json")),
                         ids=lambda p: p.parent.name)
def test_committed_results_files_load(path):
    record = RunResults.read(path)
    assert record.metrics.top1 == json.loads(path.read_text())["metrics"]["top1"]
    assert asdict(record.metrics) == json.loads(path.read_text())["metrics"]
