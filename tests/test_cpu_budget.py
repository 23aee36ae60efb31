"""The CPU-budget protocol: its configs and its published fp16 teachers (its table: tests/test_reports.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from icd_hf.config import load_config, resolved_training

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "recipes" / "configs"


@pytest.fixture(scope="module")
def teachers():
    spec = importlib.util.spec_from_file_location("bench_teachers", ROOT / "benchmarks" / "teachers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_teachers"] = module
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
        t = resolved_training(cfg)
        assert t["num_train_epochs"] == epochs and cfg.fast_path
        assert t["lr_milestones"] is None and t["lr_scheduler_type"] == "linear"
        # The paper's optimiser, batch and base learning rate are kept.
        assert (t["learning_rate"], t["per_device_train_batch_size"], t["weight_decay"]) == (0.05, 64, 5e-4)
    # Losses keep the paper's defaults; only DKD gets its pair's beta and a warm-up scaled to 3 of 240 epochs.
    assert student.loss_overrides == {"dkd": {"beta": 2, "warmup_epochs": 3 * 20 / 240}}


def test_export_teacher_writes_fp16_that_load_model_upcasts(teachers, tmp_path):
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
    out = teachers.export_teacher(tmp_path / "run", tmp_path / "teacher")
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
    # An export of a student distilled from it times both on the CPU (it failed on the fp16 teacher: "expected scalar
    # type Float but found Half", and the card had no latency).
    from icd_hf.hub.export import measure_latency_report

    report = measure_latency_report(tmp_path / "run" / "student", out, image_size=8, runs=2)
    assert report.teacher_ms is not None and report.teacher_ms > 0 and report.device.startswith("cpu (")


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
