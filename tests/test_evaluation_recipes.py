"""The evaluation recipes end to end on small local data: linear probe, logit correlation, results table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import torch
from PIL import Image

from icd_hf.evaluation import find_paper_table

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _recipe(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _offline_one_thread(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a shared CPU: extra threads only contend
    yield
    torch.set_num_threads(threads)


def _png_ok(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100


def test_linear_probe_recipe_on_digits_reuses_cache(tmp_path: Path) -> None:
    probe = _recipe("linear_probe")
    argv = ["--model", "resnet8", "--dataset", "digits", "--max_train_samples", "200", "--max_eval_samples", "100",
            "--epochs", "5", "--batch_size", "100", "--cache_dir", str(tmp_path / "cache"), "--no_progress",
            "--output", str(tmp_path / "probe.json")]
    first = probe.main(argv)
    written = json.loads((tmp_path / "probe.json").read_text())
    assert written["top1"] == first["top1"] and 0.0 <= written["top1"] <= 100.0
    assert written["dataset"]["name"] == "digits" and written["dataset"]["num_classes"] == 10
    assert written["dataset"]["num_train"] == 200 and written["dataset"]["num_eval"] == 100
    assert written["probe"]["feature_dim"] == 64  # resnet8's pooled width
    cached = sorted((tmp_path / "cache").glob("*.safetensors"))
    assert len(cached) == 2  # train and test features
    # Same seed -> same random network -> same fingerprint: the features are read back, the probe repeats exactly.
    mtimes = [p.stat().st_mtime_ns for p in cached]
    second = probe.main(argv)
    assert second["top1"] == first["top1"]
    assert sorted((tmp_path / "cache").glob("*.safetensors")) == cached
    assert [p.stat().st_mtime_ns for p in cached] == mtimes


def test_linear_probe_recipe_source_normalization_needs_a_record(tmp_path: Path) -> None:
    probe = _recipe("linear_probe")
    with pytest.raises(SystemExit, match="normalization target"):
        probe.main(["--model", "resnet8", "--dataset", "digits", "--normalization", "source",
                    "--output", str(tmp_path / "x.json")])


def test_correlation_recipe_with_run_dirs(tmp_path: Path) -> None:
    from icd_hf.models import create_model

    torch.manual_seed(0)
    teacher = create_model("resnet8", num_classes=10)
    teacher.save_pretrained(tmp_path / "teacher")
    student = create_model("resnet8", num_classes=10)
    run_dir = tmp_path / "run_kd"
    student.save_pretrained(run_dir / "student")  # a run directory: student/ + results.json
    (run_dir / "results.json").write_text(json.dumps({"method": "kd", "student": {"name": "resnet8"}}))
    out = tmp_path / "corr"
    correlation = _recipe("correlation")
    summary = correlation.main([
        "--teacher", str(tmp_path / "teacher"), "--students", str(run_dir), str(tmp_path / "teacher"),
        "--labels", "KD", "self", "--dataset", "digits", "--max_eval_samples", "64", "--batch_size", "32",
        "--cache_dir", "", "--no_progress", "--out", str(out),
    ])
    data = json.loads((out / "correlation.json").read_text())
    assert data["dataset"]["num_samples"] == 64 and data["dataset"]["num_classes"] == 10
    assert data["students"]["self"]["mean_abs_diff"] == 0.0  # the teacher against itself
    assert data["students"]["KD"]["mean_abs_diff"] > 0.0
    assert data["students"]["self"]["top1"] == data["teacher"]["top1"]
    assert summary["students"]["KD"]["mean_abs_diff"] == data["students"]["KD"]["mean_abs_diff"]
    for name in ("correlation_KD.png", "correlation_self.png", "correlation_all.png"):
        _png_ok(out / name)
    from safetensors.torch import load_file

    matrices = load_file(out / "correlation_matrices.safetensors")
    assert matrices["teacher_corr"].shape == (10, 10)
    assert float(matrices["diff/KD"].abs().mean()) == pytest.approx(data["students"]["KD"]["mean_abs_diff"])


def test_correlation_recipe_label_count_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        _recipe("correlation").parse_args(["--teacher", "a", "--students", "b", "c", "--labels", "X", "--out", "o"])


def _write_run(root: Path, name: str, method: str, teacher: str | None, student: str, top1: float) -> None:
    run = root / name
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({
        "method": method,
        "teacher": None if teacher is None else {"name": teacher, "top1": None, "num_parameters": 1},
        "student": {"name": student, "num_parameters": 1},
        "dataset": {"name": "cifar100", "num_classes": 100},
        "metrics": {"top1": top1, "top5": 95.0, "best_top1": top1, "best_epoch": 240},
    }))


def test_results_table_recipe(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _write_run(runs, "t", "vanilla", None, "wrn_40_2", 75.5)
    _write_run(runs, "v", "vanilla", None, "wrn_16_2", 73.0)
    _write_run(runs, "kd", "kd", "wrn_40_2", "wrn_16_2", 74.8)
    _write_run(runs, "icd", "icd+kd", "wrn_40_2", "wrn_16_2", 75.9)
    has_paper = find_paper_table("table1") is not None
    out = tmp_path / "out" / "table.md"
    data = _recipe("results_table").main([str(runs), "--paper-table", "table1", "--out", str(out)])
    text = out.read_text()
    # (75.9 - 74.8) / (74.8 - 73.0) = 1.1 / 1.8
    assert data["ours"]["avg_relative_improvement"]["ICD+KD"] == pytest.approx(1.1 / 1.8)
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["ours"]["methods"] == {"KD": [74.8], "ICD+KD": [75.9]}
    _png_ok(out.with_suffix(".png"))
    if has_paper:
        assert "| ICD+KD | 75.90 ↑ | 76.06 ↑ |" in text
        assert "## Published: paper table1" in text
        assert saved["paper"]["avg_relative_improvement"]["ICD+KD"] == pytest.approx(
            sum((i - k) / (k - v) for i, k, v in zip(
                [76.06, 74.76, 71.81, 71.57, 73.62, 74.99, 73.83],
                [74.92, 73.54, 70.66, 70.67, 73.08, 73.33, 72.98],
                [73.26, 71.98, 69.06, 69.06, 71.14, 72.50, 70.36],
            )) / 7
        )
    else:
        assert "not found" in text and "| ICD+KD | 75.90 ↑ |" in text


def test_results_table_recipe_without_paper_dir(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _write_run(runs, "kd", "kd", "wrn_40_2", "wrn_16_2", 74.8)
    out = tmp_path / "t.md"
    data = _recipe("results_table").main([str(runs), "--paper-table", "table1", "--paper-dir", str(tmp_path / "no"),
                                          "--out", str(out), "--plot", "none"])
    assert data["paper"] is None and "not found" in out.read_text()
    assert not out.with_suffix(".png").exists()
    with pytest.raises(SystemExit, match="Nothing to tabulate"):
        _recipe("results_table").main(["--out", str(out)])
