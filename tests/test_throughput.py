"""benchmarks/throughput.py end to end in a tiny CPU setting, and its reference loop's maths."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def throughput():
    return _load("throughput")


def test_ratios_and_table_from_hand_values(throughput):
    m = throughput.Measurement
    results = [
        m("kd", "c", 100.0, 160.0, 3, 16, 240 * 50_000 / 100.0 / 3600),
        m("kd", "a", 250.0, 64.0, 3, 16, 240 * 50_000 / 250.0 / 3600),
        m("kd", "b", 50.0, 320.0, 3, 16, 240 * 50_000 / 50.0 / 3600),
    ]
    assert throughput.ratios(results) == {"kd": {"a/c": 2.5, "b/c": 0.5}}
    table = throughput.markdown_table(results)
    assert "| kd | (a) icd-hf fast path (DistillationTrainer, fast_path) | 250 | 64.0 | 2.50 | 13.3 h |" in table
    assert "| kd | (c) reference loop (RepDistiller-style) | 100 | 160.0 | 1.00 | 33.3 h |" in table


def test_time_steps_excludes_warmup_and_checks_length(throughput, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(throughput.time, "perf_counter", lambda: clock[0])

    def steps():
        for i in range(10):
            clock[0] += 100.0 if i < 2 else 1.0  # slow warm-up steps must not be counted
            yield

    assert throughput.time_steps(steps(), warmup=2, measured=3, device=torch.device("cpu")) == 3.0
    clock[0] = 0.0
    assert throughput.time_steps(steps(), warmup=0, measured=4, device=torch.device("cpu")) == 202.0
    with pytest.raises(RuntimeError, match="stopped after 10 of 12 steps"):
        throughput.time_steps(iter([None] * 10), warmup=2, measured=10, device=torch.device("cpu"))


def test_unknown_path_is_a_clear_error(throughput):
    with pytest.raises(SystemExit):
        throughput.parse_args(["--paths", "a,z"])


def test_reference_loop_computes_the_distiller_loss():
    """Path (c) uses the same loss modules and weights as icd-hf: its first loss equals Distiller's."""
    _load("throughput")
    reference = sys.modules["reference_loop"]
    from icd_hf.distiller import Distiller
    from icd_hf.models import create_model

    torch.manual_seed(0)
    student, teacher = create_model("resnet8", num_classes=5), create_model("resnet8", num_classes=5)
    distiller = Distiller(student, teacher, "icd+kd")
    x, y, idx = torch.randn(6, 3, 32, 32), torch.arange(6) % 5, torch.arange(6)
    expected = copy.deepcopy(distiller).train()(pixel_values=x, labels=y, index=idx).loss.item()

    criteria = [(n, distiller.loss_weights[n], m) for n, m in distiller.losses.items()]
    optimizer = torch.optim.SGD(student.parameters(), lr=0.0)
    steps = reference.reference_train_steps(
        student, distiller.teacher, criteria, distiller.ce_weight, [(x, y, idx)], optimizer,
        torch.device("cpu"), num_steps=2,
    )
    losses = list(steps)
    assert len(losses) == 2  # the one-batch "loader" was re-iterated for a second epoch
    assert losses[0] == pytest.approx(expected, rel=1e-5)


def test_benchmark_runs_end_to_end_on_cpu(throughput, tmp_path, capsys):
    out = tmp_path / "results" / "throughput.json"
    report = throughput.main([
        "--device", "cpu", "--teacher", "resnet8", "--student", "resnet8", "--batch_size", "4", "--steps", "1",
        "--warmup", "1", "--methods", "crd+kd", "--num_classes", "5", "--image_size", "16", "--paths", "a,b,c,f",
        "--num_workers", "0", "--repeats", "2", "--json", str(out),
    ])
    rows = report["results"]
    assert [(r["method"], r["path"]) for r in rows] == [("crd+kd", p) for p in "abcf"]
    for r in rows:
        assert math.isfinite(r["images_per_s"]) and r["images_per_s"] > 0
        assert r["ms_per_step"] == pytest.approx(1000 * r["batch_size"] / r["images_per_s"])
        assert r["hours_240_epochs_cifar100"] == pytest.approx(240 * 50_000 / r["images_per_s"] / 3600)
        assert len(r["samples_images_per_s"]) == 2  # the row is the median of the two repeats
        assert r["images_per_s"] == pytest.approx(1 / (sum(1 / v for v in r["samples_images_per_s"]) / 2))
    assert set(report["ratios"]["crd+kd"]) == {"a/c", "b/c", "f/c"}
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert "| crd+kd | (b) icd-hf plain Trainer" in capsys.readouterr().out


def test_pairs_parse_and_refuse_malformed_items(throughput):
    assert throughput.parse_pairs(None, "wrn_40_2", "wrn_16_2") == [("wrn_40_2", "wrn_16_2")]
    assert throughput.parse_pairs("wrn_40_2:wrn_16_2,resnet56:resnet20", "x", "y") == [
        ("wrn_40_2", "wrn_16_2"), ("resnet56", "resnet20")]
    with pytest.raises(ValueError, match="'resnet56' is not teacher:student"):
        throughput.parse_pairs("resnet56", "x", "y")
    with pytest.raises(SystemExit):
        throughput.parse_args(["--pairs", "a:b,c:"])


def test_cost_split_table_shares_from_hand_values(throughput):
    table = throughput.cost_split_table({"t -> s kd": dict(zip(throughput.COST_PHASES, [1, 2, 3, 0, 4, 0]))})
    assert "| t -> s kd | 1.0 ms (10%) | 2.0 ms (20%) | 3.0 ms (30%) | 0.0 ms (0%) | 4.0 ms (40%) | 0.0 ms (0%) | " \
           "10.0 ms |" in table


def test_two_pairs_with_cost_split_end_to_end(throughput, capsys):
    report = throughput.main([
        "--device", "cpu", "--pairs", "resnet8:resnet8,resnet14:resnet8", "--batch_size", "4", "--steps", "2",
        "--warmup", "1", "--methods", "icd+kd", "--num_classes", "5", "--image_size", "16", "--paths", "a,c",
        "--num_workers", "0", "--cost_split",
    ])
    assert [(r["pair"], r["path"]) for r in report["results"]] == [
        ("resnet8 -> resnet8", "a"), ("resnet8 -> resnet8", "c"), ("resnet14 -> resnet8", "a"),
        ("resnet14 -> resnet8", "c")]
    assert set(report["ratios"]) == {"resnet8 -> resnet8 icd+kd", "resnet14 -> resnet8 icd+kd"}
    splits = report["cost_split_ms_per_step"]
    assert set(splits) == {"resnet8 -> resnet8 icd+kd", "resnet14 -> resnet8 icd+kd"}
    for phases in splits.values():
        assert list(phases) == list(throughput.COST_PHASES)
        assert all(v >= 0 for v in phases.values()) and phases["backward"] > 0 and phases["teacher"] > 0
    assert "cpu_bf16" in report["environment"] and len(report["environment"]["load_average_1min"]) == 2
    assert "| resnet14 -> resnet8 icd+kd | (a) icd-hf fast path" in capsys.readouterr().out


def test_cached_fast_path_and_its_cost_split_end_to_end(throughput, tmp_path):
    """Path a_cached on two pairs: the cache is built once per pair (shared by the methods and by the cost split),
    the timed runs never run their teacher (run_trainer raises if they do), a_cached/a is in the ratios."""
    cache_dir = tmp_path / "caches"
    report = throughput.main([
        "--device", "cpu", "--pairs", "resnet8:resnet8,resnet14:resnet8", "--batch_size", "4", "--steps", "2",
        "--warmup", "1", "--methods", "kd,icd+kd,fitnet", "--num_classes", "5", "--image_size", "16",
        "--paths", "a,a_cached", "--num_workers", "0", "--cost_split", "--teacher_cache_dir", str(cache_dir),
    ])
    pairs = ("resnet8 -> resnet8", "resnet14 -> resnet8")
    rows = {(r["pair"], r["method"], r["path"]) for r in report["results"]}
    assert rows == {(p, m, path) for p in pairs for m in ("kd", "icd+kd") for path in ("a", "a_cached")} | {
        (p, "fitnet", "a") for p in pairs}  # fitnet reads feature maps: no cached row
    for pair in pairs:
        for method in ("kd", "icd+kd"):
            ratio = report["ratios"][f"{pair} {method}"]["a_cached/a"]
            assert math.isfinite(ratio) and ratio > 0
        assert "a_cached/a" not in report["ratios"].get(f"{pair} fitnet", {})
        cached = report["cost_split_ms_per_step"][f"{pair} kd (cached teacher)"]
        assert list(cached) == list(throughput.COST_PHASES) and cached["backward"] > 0
        assert f"{pair} fitnet (cached teacher)" not in report["cost_split_ms_per_step"]
        # 12 synthetic images (batch 4 x 3 steps), 5 logits + 64 pooled features each, in the teacher's precision
        # (bf16 where the CPU has native bf16).
        bf16 = report["config"]["bf16_on"]
        assert report["teacher_cache"][pair] == {"precision": "bf16" if bf16 else "fp32",
                                                 "dtypes": ["bfloat16" if bf16 else "float32"] * 2,
                                                 "bytes_per_epoch": 12 * (5 + 64) * (2 if bf16 else 4)}
    assert len(list(cache_dir.iterdir())) == 2  # one cache per pair, whatever the method or the path


def test_readme_table_shows_the_cached_path_only_when_measured():
    from reports.throughput_cpu import readme_summary

    def report(paths: dict[str, float]) -> dict:
        return {"results": [{"method": "kd", "path": p, "images_per_s": v, "pair": "t -> s"} for p, v in paths.items()],
                "environment": {"device": "cpu", "torch": "2", "git_commit": "abc"},
                "config": {"batch_size": 64, "steps": 8}}

    with_cache = readme_summary(report({"a": 100.0, "a_cached": 200.0, "c": 50.0}))
    assert with_cache.splitlines()[0] == "| method | (a) fast path | (a) cached teacher | (c) reference | a/c | " \
                                         "a_cached/c | a_cached/a |"
    assert "| t -> s kd | 100 img/s | 200 img/s | 50 img/s | 2.00 | 4.00 | 2.00 |" in with_cache
    without = readme_summary(report({"a": 100.0, "c": 50.0}))
    assert without.splitlines()[0] == "| method | (a) fast path | (c) reference | a/c |"
