"""The CPU-budget protocol: its configs, the fp16 teacher export, and the results table generated from kept runs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from icd_hf.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "recipes" / "configs"


@pytest.fixture(scope="module")
def cpu_budget():
    spec = importlib.util.spec_from_file_location("cpu_budget", ROOT / "benchmarks" / "cpu_budget.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["cpu_budget"] = module
    spec.loader.exec_module(module)
    return module


# DKD's authors' beta per pair (mdistiller's CIFAR-100 configs), as the issue lists them.
DKD_BETA = {
    "resnet56__resnet20": 2, "resnet110__resnet32": 2,
    "wrn_40_2__wrn_16_2": 6, "wrn_40_2__wrn_40_1": 6, "vgg13__vgg8": 6, "vgg13__mobilenetv2": 6,
    "resnet110__resnet20": 8, "resnet32x4__resnet8x4": 8, "resnet32x4__shufflenetv1": 8,
    "resnet32x4__shufflenetv2": 8, "resnet50__mobilenetv2": 8, "resnet50__vgg8": 8, "wrn_40_2__shufflenetv1": 8,
}


@pytest.mark.parametrize("pair", sorted(DKD_BETA))
def test_every_pair_config_carries_dkds_own_beta(pair):
    cfg = load_config(CONFIGS / "pairs" / f"{pair}.yaml", {"method": "dkd"})
    assert cfg.loss_overrides["dkd"]["beta"] == DKD_BETA[pair]


def test_protocol_changes_only_the_schedule():
    teacher = load_config(CONFIGS / "cpu_budget" / "teacher_resnet56.yaml")
    student = load_config(CONFIGS / "cpu_budget" / "resnet56__resnet20.yaml", {"method": "dkd"})
    assert (teacher.student, teacher.method, student.teacher, student.student) == (
        "resnet56", "vanilla", "resnet56", "resnet20")
    for cfg, epochs in ((teacher, 6), (student, 3)):
        t = cfg.training
        assert t["num_train_epochs"] == epochs and cfg.fast_path
        assert t["lr_milestones"] is None and t["lr_scheduler_type"] == "linear"
        # The paper's optimiser, batch and base learning rate are kept.
        assert (t["learning_rate"], t["per_device_train_batch_size"], t["weight_decay"]) == (0.05, 64, 5e-4)
    # Losses keep the paper's defaults; only DKD gets its pair's beta and a warm-up scaled to 3 of 240 epochs.
    assert student.loss_overrides == {"dkd": {"beta": 2, "warmup_epochs": 3 * 20 / 240}}


def _results(method: str, top1: float, seed: int = 0, teacher: str | None = "resnet56", epochs: int = 3) -> dict:
    return {
        "method": method,
        "teacher": {"name": teacher} if teacher else None,
        "student": {"name": "resnet20" if teacher else "resnet56"},
        "training": {"num_train_epochs": epochs},
        "config": {"training": {"seed": seed}},
        "metrics": {"top1": top1, "top5": top1 + 20, "best_top1": top1 + 0.5, "best_epoch": epochs},
        "wall_time_s": 1200.0, "device": "cpu", "git_commit": "abc1234", "command": f"distill --method {method}",
    }


def _kept(tmp_path: Path) -> Path:
    kept = tmp_path / "kept"
    kept.mkdir()
    runs = {
        "teacher_resnet56": _results("vanilla", 50.0, teacher=None, epochs=6),
        "resnet20_vanilla": _results("vanilla", 40.0),
        "resnet20_kd": _results("kd", 42.0),
        "resnet20_kd_seed1": _results("kd", 44.0, seed=1),
        "resnet20_icd_kd": _results("icd+kd", 43.0),
    }
    for name, results in runs.items():
        (kept / f"{name}.json").write_text(json.dumps(results))
    return kept


def test_bf16_check_rows(cpu_budget, tmp_path):
    kept = _kept(tmp_path)
    for precision, top1 in (("fp32", 30.0), ("bf16", 29.5)):
        (kept / f"bf16_check_{precision}.json").write_text(json.dumps(_results("vanilla", top1, teacher=None)))
    summary = cpu_budget.summarise(kept, _paper(tmp_path))
    assert {p: r["top1"] for p, r in summary["bf16_check"].items()} == {"fp32": 30.0, "bf16": 29.5}
    table = cpu_budget.markdown_table(summary)
    assert "| fp32 | 3 | 30.00 | 30.50 | 50.00 | 20 min |" in table
    assert "| bf16 | 3 | 29.50 | 30.00 | 49.50 | 20 min |" in table
    # bf16 runs are not students of the pair.
    assert [m["method"] for m in summary["students"]] == ["vanilla", "kd", "icd+kd"]


def _paper(tmp_path: Path) -> Path:
    paper = tmp_path / "paper"
    paper.mkdir()
    (paper / "table1_cifar100_same_architecture.csv").write_text(
        "teacher,resnet-56\nstudent,resnet-20\nteacher_acc,72.34\nstudent_vanilla_acc,69.06\nKD,70.66\n"
        "ICD+KD,71.81\n"
    )
    return paper


def test_summary_and_table_from_kept_runs(cpu_budget, tmp_path):
    summary = cpu_budget.summarise(_kept(tmp_path), _paper(tmp_path))
    assert summary["teacher"]["top1"] == 50.0 and summary["paper_240_epochs_teacher_top1"] == 72.34
    by_method = {m["method"]: m for m in summary["students"]}
    assert list(by_method) == ["vanilla", "kd", "icd+kd"]  # the protocol's order
    assert by_method["kd"]["top1_mean"] == 43.0
    assert by_method["kd"]["top1_std"] == pytest.approx(2 ** 0.5)  # sample std of 42 and 44
    assert by_method["vanilla"]["top1_std"] is None
    assert [m["paper_240_epochs_top1"] for m in summary["students"]] == [69.06, 70.66, 71.81]
    table = cpu_budget.markdown_table(summary)
    assert "| resnet56 (teacher) | vanilla | 6 | 50.00 | 50.50 | 70.00 | 20 min | 72.34 |" in table
    assert "| resnet20 | KD | 3 | 43.00 ± 1.41 (2 seeds) | 43.50 | 63.00 | 20 min | 70.66 |" in table
    assert "| resnet20 | ICD+KD | 3 | 43.00 | 43.50 | 63.00 | 20 min | 71.81 |" in table


def test_collect_fills_the_readme_and_check_catches_drift(cpu_budget, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{cpu_budget.BEGIN}\nold\n{cpu_budget.END}\n\nafter\n")
    summary_path = tmp_path / "summary.json"
    cpu_budget.collect(_kept(tmp_path), summary_path, readme, _paper(tmp_path))
    text = readme.read_text()
    assert "old" not in text and text.endswith("\n\nafter\n") and "| resnet20 | ICD+KD |" in text
    assert cpu_budget.readme_matches(summary_path, readme)
    readme.write_text(text.replace("43.00 ± 1.41", "45.00 ± 1.41"))
    assert not cpu_budget.readme_matches(summary_path, readme)
    with pytest.raises(ValueError, match="no <!-- cpu-budget-table:begin"):
        cpu_budget.replace_block("# no markers", "x")


def test_committed_readme_matches_committed_results(cpu_budget):
    if not cpu_budget.SUMMARY.is_file():
        pytest.skip("no CPU-budget run has finished yet (benchmarks/results/cifar100_cpu_budget.json)")
    assert cpu_budget.summary_matches_runs(), "run `python benchmarks/cpu_budget.py collect`"
    assert cpu_budget.readme_matches(), "run `python benchmarks/cpu_budget.py collect`"


def test_a_kept_run_added_without_collect_is_caught(cpu_budget, tmp_path):
    kept, summary_path = _kept(tmp_path), tmp_path / "summary.json"
    readme = tmp_path / "README.md"
    readme.write_text(f"{cpu_budget.BEGIN}\n{cpu_budget.END}\n")
    cpu_budget.collect(kept, summary_path, readme, _paper(tmp_path))
    assert cpu_budget.summary_matches_runs(kept, summary_path)
    (kept / "resnet20_dkd.json").write_text(json.dumps(_results("dkd", 41.0)))
    assert not cpu_budget.summary_matches_runs(kept, summary_path)


def test_export_teacher_writes_fp16_that_load_model_upcasts(cpu_budget, tmp_path):
    from safetensors.torch import load_file

    from icd_hf.experiment import run_experiment
    from icd_hf.models import load_model

    cfg = load_config(None, {
        "dataset": "digits", "student": "resnet8", "method": "vanilla", "output_dir": str(tmp_path / "run"),
        "max_train_samples": 32, "max_eval_samples": 16, "training.num_train_epochs": 1,
        "training.per_device_train_batch_size": 16, "training.eval_strategy": "no", "training.save_strategy": "no",
        "training.dataloader_num_workers": 0, "training.use_cpu": True, "training.disable_tqdm": True,
        "training.report_to": "none",
    })
    run_experiment(cfg)
    out = cpu_budget.export_teacher(tmp_path / "run", tmp_path / "teacher")
    stored = load_file(out / "model.safetensors")
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}
    assert (out / "README.md").is_file() and (out / "results.json").is_file()
    fp32 = load_model(tmp_path / "run" / "student", num_classes=10).eval()
    fp16 = load_model(out, num_classes=10).eval()
    assert next(fp16.parameters()).dtype == torch.float32
    # What a distillation run loads its teacher with (it failed with "Input type (FloatTensor) and weight type
    # (HalfTensor)" on the first batch when this kept the stored fp16).
    from icd_hf.models.auto_classifier import load_image_classifier

    as_teacher = load_image_classifier(out, num_labels=10, role="teacher")
    assert {p.dtype for p in as_teacher.parameters()} == {torch.float32}
    assert load_image_classifier(out, num_labels=10, role="teacher", dtype=torch.float16).dtype == torch.float16
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(fp16(pixel_values=x).logits, fp32(pixel_values=x).logits, atol=2e-2, rtol=2e-2)


TEACHER_DIR = ROOT / "benchmarks" / "teachers" / "resnet56-cpu-budget"


def test_published_teacher_loads_in_float32_with_its_record():
    from icd_hf.models import load_model
    from icd_hf.runs import RunResults

    if not (TEACHER_DIR / "model.safetensors").is_file():
        pytest.skip("the protocol's teacher has not been published yet")
    model = load_model(TEACHER_DIR, num_classes=100)
    assert next(model.parameters()).dtype == torch.float32
    assert model.config.num_labels == 100 and model.config.id2label[0] == "apple"
    record = RunResults.read(TEACHER_DIR / "results.json")
    assert record.student.name == "resnet56" and record.teacher is None
    assert record.training["num_train_epochs"] == 6


@pytest.mark.shared_data
def test_published_teacher_reaches_its_recorded_accuracy_on_real_cifar100():
    """The fp16 weights, upcast, classify the 10,000 test images as the trained fp32 model did (up to rounding)."""
    from test_data import _unpacked_shared_data
    from torch.utils.data import DataLoader

    from icd_hf.data import build_datasets, collate_batch
    from icd_hf.models import load_model
    from icd_hf.runs import RunResults

    if not (TEACHER_DIR / "model.safetensors").is_file():
        pytest.skip("the protocol's teacher has not been published yet")
    _, test_ds, _ = build_datasets("cifar100", data_dir=_unpacked_shared_data() / "cifar-100-python")
    model = load_model(TEACHER_DIR, num_classes=100).eval()
    correct = 0
    with torch.inference_mode():
        for batch in DataLoader(test_ds, batch_size=500, collate_fn=collate_batch):
            correct += (model(pixel_values=batch["pixel_values"]).logits.argmax(-1) == batch["labels"]).sum().item()
    recorded = RunResults.read(TEACHER_DIR / "results.json").metrics.top1
    assert 100 * correct / len(test_ds) == pytest.approx(recorded, abs=0.15)
