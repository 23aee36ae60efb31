"""One report mechanism (``icd_hf.evaluation.reports`` + ``benchmarks/reports/*.py`` + ``benchmarks/report.py``): every
committed report matches its kept results, and each declaration turns hand-made kept results into the right table."""

from __future__ import annotations

import importlib.util
import json
import shutil
import statistics
import sys
from pathlib import Path
from types import ModuleType

import pytest

from icd_hf.evaluation.reports import PlannedRun, Report, collect, discover, splice, stale

ROOT = Path(__file__).resolve().parents[1]
DECLARATIONS = ROOT / "benchmarks" / "reports"
REPORTS = discover(DECLARATIONS, ROOT)


def declaration(name: str) -> ModuleType:
    return sys.modules[type(REPORTS[name]).__module__]


def test_the_five_reports_are_discovered():
    assert set(REPORTS) == {"cpu_budget", "ensemble_cpu_budget", "throughput_cpu", "quickstart", "onnx_export"}


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_every_committed_report_matches_its_kept_results(name):
    """The drift test of every report: summary, README block and other generated files are what the kept results
    give (a run kept without `collect`, or a hand edit, fails here)."""
    assert stale(REPORTS[name]) == [], "run `python benchmarks/report.py collect`"


def test_splice_replaces_only_the_block():
    text = "a\n<!-- b -->\nold\n<!-- e -->\nz\n"
    assert splice(text, "<!-- b -->", "<!-- e -->", "new") == "a\n<!-- b -->\nnew\n<!-- e -->\nz\n"
    with pytest.raises(ValueError, match="no <!-- x --> ... <!-- e --> block"):
        splice(text, "<!-- x -->", "<!-- e -->", "new")


# ------------------------------------------------------------------------------------------------ cpu_budget

def _record(method: str, top1: float, seed: int = 0, *, precision: str | None = "bf16",
            teacher: str | None = "resnet56", epochs: int = 3, device: str = "cpu (Test CPU, x86_64, 2 cores)") -> dict:
    return {"method": method, "teacher": {"name": teacher} if teacher else None,
            "student": {"name": "resnet20" if teacher else "resnet56"}, "training": {"num_train_epochs": epochs},
            "config": {"training": {"seed": seed}},
            "metrics": {"top1": top1, "top5": top1 + 20, "best_top1": top1 + 0.5, "best_epoch": epochs},
            "wall_time_s": 300.0, "device": device, "precision": precision, "git_commit": "abc1234",
            "command": f"distill --method {method}"}


def _checkout(tmp_path: Path, begin: str, end: str) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "README.md").write_text(f"# x\n\n{begin}\nold\n{end}\n\nafter\n")
    return root


def _cpu_budget(tmp_path: Path, top1: dict[str, list[float]]) -> Report:
    module = declaration("cpu_budget")
    report = module.CpuBudget(_checkout(tmp_path, module.CpuBudget.begin, module.CpuBudget.end))
    report.paper_dir = tmp_path / "paper"
    report.paper_dir.mkdir()
    (report.paper_dir / "table1_cifar100_same_architecture.csv").write_text(
        "teacher,resnet-56\nstudent,resnet-20\nteacher_acc,72.34\nstudent_vanilla_acc,69.06\nKD,70.66\nICD+KD,71.81\n")
    kept = report.path(module.KEPT)
    kept.mkdir(parents=True)
    (kept / "teacher_resnet56.json").write_text(json.dumps(_record("vanilla", 48.0, precision=None, teacher=None,
                                                                   epochs=6)))
    methods = {row.key: row.method for row in module.ROWS}
    for key, values in top1.items():
        for seed, value in enumerate(values):
            (kept / f"resnet20_{key}_seed{seed}.json").write_text(json.dumps(_record(methods[key], value, seed)))
    return report


def test_cpu_budget_statistics_and_paired_differences_by_hand(tmp_path):
    report = _cpu_budget(tmp_path, {"vanilla": [32.0, 31.0, 33.0], "kd": [40.0, 40.5, 41.0],
                                    "kd_ce1": [42.0, 43.0, 42.5], "icd_kd": [44.0, 44.5, 44.2],
                                    "dkd": [44.5, 43.8, 44.6]})
    summary = report.summarise()
    rows = {r["key"]: r for r in summary["rows"]}
    assert list(rows) == ["vanilla", "kd", "kd_ce1", "icd_kd", "dkd"]  # the declaration's order
    assert rows["kd"]["top1"] == {"n": 3, "mean": pytest.approx(40.5), "std": pytest.approx(0.5)}
    assert rows["vanilla"]["top1"]["std"] == pytest.approx(1.0)
    assert rows["kd_ce1"]["paper_240_epochs_top1"] is None and rows["kd"]["paper_240_epochs_top1"] == 70.66
    paired = {(d["a"], d["b"]): d for d in summary["paired_differences"]}
    vs_ce1 = paired[("icd_kd", "kd_ce1")]
    assert vs_ce1["per_seed"] == pytest.approx({"0": 2.0, "1": 1.5, "2": 1.7})
    assert vs_ce1["mean"] == pytest.approx(statistics.fmean([2.0, 1.5, 1.7]))
    assert vs_ce1["std"] == pytest.approx(statistics.stdev([2.0, 1.5, 1.7]))
    assert vs_ce1["exceeds_seed_spread"]
    vs_dkd = paired[("icd_kd", "dkd")]  # -0.5, +0.7, -0.4: signs differ
    assert vs_dkd["per_seed"] == pytest.approx({"0": -0.5, "1": 0.7, "2": -0.4}) and not vs_dkd["exceeds_seed_spread"]
    reading = summary["reading"]
    assert "ICD+KD is 1.73 points ahead of KD (CE 1) (mean of 3 paired seeds, std 0.25), more than its " \
           "seed-to-seed spread, on every seed." in reading
    assert "ICD+KD is 0.07 points behind DKD (mean of 3 paired seeds, std 0.67), within its seed-to-seed spread" \
        in reading
    table = report.render(summary)
    assert "| KD (CE 0.1 + KD 0.9, the CRD benchmark's KD) | 3 | 40.50 ± 0.50 | 40.00 / 40.50 / 41.00 | 60.50 | " \
           "5 min | 70.66 |" in table
    assert "| ICD+KD − KD (CE 1) | +2.00 | +1.50 | +1.70 | +1.73 ± 0.25 | yes |" in table
    assert "| ICD+KD − DKD | -0.50 | +0.70 | -0.40 | -0.07 ± 0.67 | no |" in table
    assert "| teacher: resnet56, 6 epochs (fp32) | 1 | 48.00 |" in table
    assert "bf16 autocast on cpu (Test CPU, x86_64, 2 cores)" in table


def test_cpu_budget_keeps_one_precision_per_table(tmp_path):
    report = _cpu_budget(tmp_path, {"vanilla": [32.0]})
    module = declaration("cpu_budget")
    kept = report.path(module.KEPT)
    # An fp32 run under a table name is not averaged with the bf16 runs; the earlier fp32 runs are listed apart.
    (kept / "resnet20_vanilla_seed1.json").write_text(json.dumps(_record("vanilla", 40.0, 1, precision="fp32")))
    (kept / "fp32").mkdir()
    (kept / "fp32" / "resnet20_icd_kd_seed0.json").write_text(json.dumps(_record("icd+kd", 44.9, precision=None)))
    for precision, top1 in (("fp32", 30.0), ("bf16", 29.5)):
        (kept / f"bf16_check_{precision}.json").write_text(json.dumps(_record("vanilla", top1, precision=precision,
                                                                              teacher=None)))
    summary = report.summarise()
    assert [r["top1"] for r in summary["rows"][0]["runs"]] == [32.0]
    assert [(r["method"], r["precision"]) for r in summary["fp32_runs"]] == [("icd+kd", "fp32")]
    assert {p: r["top1"] for p, r in summary["bf16_check"].items()} == {"fp32": 30.0, "bf16": 29.5}
    table = report.render(summary)
    assert "| resnet20 icd+kd, 3 epochs | fp32 | 0 | 44.90 |" in table
    assert "| bf16 check: resnet20 from labels, 10,000 images, 3 epochs | bf16 | 0 | 29.50 |" in table


def test_cpu_budget_transfer_probe_rows_beside_the_papers_table_3(tmp_path):
    report = _cpu_budget(tmp_path, {"vanilla": [32.0]})
    (report.paper_dir / "table3_linear_probe_transfer.csv").write_text(
        "transfer,teacher,student_vanilla,KD,ICD+KD\nCIFAR-100->STL-10,68.6,69.7,70.9,72.5\n"
        "CIFAR-100->TIN-200,31.5,33.7,33.9,36.2\n")
    transfer = report.path(declaration("cpu_budget").KEPT) / "transfer"
    transfer.mkdir()
    dataset = {"name": "tiny-imagenet", "num_classes": 200, "num_train": 40000, "num_eval": 10000, "image_size": 32}
    for key, top1 in (("vanilla", 12.5), ("kd_ce1", 14.0), ("icd_kd", 15.25)):
        (transfer / f"tiny_imagenet_{key}_seed0.json").write_text(json.dumps(
            {"top1": top1, "top5": top1 + 20, "dataset": dataset, "device": "cpu"}))
    summary = report.summarise()
    assert list(summary["transfer_tiny_imagenet"]) == ["vanilla", "kd_ce1", "icd_kd"]
    table = report.render(summary)
    assert "(200 classes, 40,000 train / 10,000 val images, resized to 32)" in table
    assert "| vanilla (CE only) | 12.50 | 32.50 | 33.70 |" in table
    assert "| KD (CE 1, as in x+KD) | 14.00 | 34.00 | – |" in table  # the paper has no such control
    assert "| ICD+KD (CE 1 + KD 1 + ICD 1) | 15.25 | 35.25 | 36.20 |" in table


def test_cpu_budget_collect_then_drift(tmp_path):
    report = _cpu_budget(tmp_path, {"vanilla": [32.0], "kd": [40.0]})
    written = collect(report)
    assert {p.name for p in written} == {"README.md", "cifar100_cpu_budget.json"}
    text = report.path("README.md").read_text()
    assert "old" not in text and text.endswith("\n\nafter\n") and "| vanilla (CE only) | 1 | 32.00 |" in text
    assert stale(report) == []
    report.path("README.md").write_text(text.replace("32.00", "33.00"))
    assert [s for s in stale(report) if "README.md" in s]
    collect(report)
    kept = report.path(declaration("cpu_budget").KEPT)
    (kept / "resnet20_dkd_seed0.json").write_text(json.dumps(_record("dkd", 41.0)))  # kept without collect
    assert any("not what the kept results give" in s for s in stale(report))


def test_cpu_budget_plans_seed_zero_first_then_check_probes_and_seeds():
    module = declaration("cpu_budget")
    runs = REPORTS["cpu_budget"].planned_runs("/data/cifar-100-python")
    keys = [r.key for r in runs]
    assert keys[:8] == [f"{r.key}:0" for r in module.ROWS]
    assert keys[8:10] == ["bf16_check:fp32", "bf16_check:bf16"]
    assert keys[10:14] == ["probe:vanilla", "probe:kd", "probe:kd_ce1", "probe:icd_kd"]
    assert set(keys[14:]) == {f"{k}:{s}" for k in ("vanilla", "kd", "kd_ce1", "icd_kd", "dkd") for s in (1, 2)}
    control = next(r for r in runs if r.key == "kd_ce1:1")
    assert control.command[control.command.index("--loss_overrides") + 1] == json.dumps(
        {"ce_weight": 1.0, "kd": {"weight": 1.0}})
    assert control.command[control.command.index("--training.seed") + 1] == "1"
    probe = next(r for r in runs if r.key == "probe:icd_kd")
    assert "/data/tiny-imagenet-200" in probe.command and probe.result == ""


def test_the_kd_control_resolves_to_ce_1_kd_1():
    from icd_hf.config import load_config

    row = next(r for r in declaration("cpu_budget").ROWS if r.key == "kd_ce1")
    cfg = load_config(ROOT / declaration("cpu_budget").CONFIG, {"method": "kd", "loss_overrides": row.loss_overrides})
    spec = cfg.method_spec()
    assert (spec.ce_weight, [(t.name, t.weight) for t in spec.terms]) == (1.0, [("kd", 1.0)])


# ------------------------------------------------------------------------------------------------ the others

def test_ensemble_table_from_kept_runs(tmp_path):
    module = declaration("ensemble_cpu_budget")
    report = module.EnsembleCpuBudget(_checkout(tmp_path, module.EnsembleCpuBudget.begin,
                                                module.EnsembleCpuBudget.end))
    files = {
        module.TEACHERS["resnet56"]: _record("vanilla", 48.0, teacher=None, epochs=6),
        module.TEACHERS["wrn_16_2"]: _record("vanilla", 46.0, teacher=None, epochs=6),
        module.VANILLA: _record("vanilla", 31.0),
        module.STUDENTS["resnet56"][1]: _record("icd+kd", 33.0),
        module.STUDENTS["wrn_16_2"][1]: _record("icd+kd", 32.5),
        f"{module.KEPT}/teachers_eval.json": {"top1": {"resnet56": 48.0, "wrn_16_2": 46.0, "ensemble": 52.5}},
    }
    for path, data in files.items():
        report.path(path).parent.mkdir(parents=True, exist_ok=True)
        report.path(path).write_text(json.dumps(data))
    collect(report)
    text = report.path("README.md").read_text()
    assert "| resnet56 (teacher) | labels | 6 | 48.00 | 48.50 | 68.00 | 5 min |" in text
    assert "| resnet56 + wrn_16_2 (ensemble: mean of probabilities) | – | – | 52.50 |" in text
    assert "| resnet20 | ICD+KD from wrn_16_2 | 3 | 32.50 | 33.00 | 52.50 | 5 min |" in text
    report.path(module.STUDENTS["resnet56+wrn_16_2"][1]).write_text(json.dumps(_record("icd+kd", 34.0)))
    assert stale(report)
    collect(report)
    text = report.path("README.md").read_text()
    assert "| resnet20 | ICD+KD from resnet56 + wrn_16_2 (ensemble) | 3 | 34.00 |" in text


def test_throughput_block_from_a_saved_measurement(tmp_path):
    module = declaration("throughput_cpu")
    rows = [("kd", "a", 300.0), ("kd", "b", 150.0), ("kd", "c", 100.0), ("icd+kd", "a", 280.0), ("icd+kd", "c", 100.0)]
    measurement = {
        "results": [{"pair": "t -> s", "method": m, "path": p, "images_per_s": v} for m, p, v in rows],
        "environment": {"device": "cpu (x86_64, 2 cores)", "torch": "2.14.1", "git_commit": "abc1234",
                        "cpu_bf16": "AMX-BF16", "load_average_1min": [0.1, 0.3]},
        "config": {"batch_size": 64, "steps": 8, "repeats": 2},
        "cost_split_ms_per_step": {"t -> s kd": dict(zip(module.COST_PHASES, [1, 2, 3, 0, 4, 0]))},
    }
    report = module.ThroughputCpu(_checkout(tmp_path, module.ThroughputCpu.begin, module.ThroughputCpu.end))
    report.path(report.summary_file).parent.mkdir(parents=True)
    report.path(report.summary_file).write_text(json.dumps(measurement))
    assert collect(report) == [report.path("README.md")]  # the measurement itself is never rewritten
    text = report.path("README.md").read_text()
    assert "| t -> s kd | 300 img/s | 150 img/s | 100 img/s | 3.00 | 1.50 |" in text
    assert "| t -> s icd+kd | 280 img/s | – | 100 img/s | 2.80 | – |" in text
    assert "native bf16: AMX-BF16, 1-min load average 0.1 → 0.3." in text
    assert "| t -> s kd | 1.0 ms (10%) |" in text
    assert stale(report) == []


def test_throughput_cache_reading_from_hand_values():
    module = declaration("throughput_cpu")
    split = dict(zip(module.COST_PHASES, [0, 40, 20, 0, 40, 0]))  # the teacher: 40 % of 100 ms
    report = {"cost_split_ms_per_step": {"t -> s kd": split, "t -> s kd (cached teacher)": split,
                                         "t -> s crd+kd": dict(zip(module.COST_PHASES, [0, 10, 10, 50, 30, 0]))},
              "ratios": {"t -> s kd": {"a_cached/a": 1.5}, "t -> s crd+kd": {"a_cached/a": 1.05}}}
    assert module.cache_reading(report) == (
        "For kd and icd+kd the teacher's forward is 40%–40% of a fast-path step here, so a teacher cache can make "
        "their step at most 1.67–1.67× faster (1 / (1 − share), from the bare loop's split); measured on the "
        "Trainer path, a_cached/a is 1.50–1.50 for them, and 1.05–1.05 for crd+kd, whose memory-bank loss "
        "dominates its step.")
    assert module.cache_reading({"ratios": {}, "cost_split_ms_per_step": {}}) is None


def test_quickstart_block_and_example_cards_follow_the_results_file(tmp_path):
    module = declaration("quickstart")
    root = _checkout(tmp_path, module.Quickstart.begin, module.Quickstart.end)
    shutil.copytree(ROOT / "benchmarks" / "results", root / "benchmarks" / "results")
    report = module.Quickstart(root)
    collect(report)
    assert stale(report) == []
    summary = json.loads(report.path(report.summary_file).read_text())
    summary["runs"]["distilled"]["metrics"]["top1"] += 1.0
    report.path(report.summary_file).write_text(json.dumps(summary))
    drifted = stale(report)
    assert any(s.startswith(str(root / "README.md")) for s in drifted)
    assert any("resnet8__icd+kd/results.json" in s for s in drifted)
    assert any("resnet8__icd+kd/README.md" in s for s in drifted)


def test_report_run_keeps_each_run_and_collects(tmp_path, monkeypatch):
    """benchmarks/report.py run: a pending run is trained (here: a script that writes a results file), kept in the
    other checkout and collected there; a kept run is skipped."""
    spec = importlib.util.spec_from_file_location("report_cli", ROOT / "benchmarks" / "report.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    out = tmp_path / "work" / "run"
    script = f"import json, pathlib; p = pathlib.Path({str(out)!r}); p.mkdir(parents=True); " \
             f"(p / 'results.json').write_text(json.dumps({{'top1': 1.5}}))"

    class Tiny(Report):
        name = "tiny"
        summary_file = "summary.json"

        def planned_runs(self, data_dir: str) -> list[PlannedRun]:
            return [PlannedRun("one", ["-c", script], str(out), "kept/one.json")]

        def summarise(self) -> dict:
            kept = self.path("kept/one.json")
            return {"top1": json.loads(kept.read_text())["top1"] if kept.is_file() else None}

    keep = tmp_path / "keep"
    keep.mkdir()
    assert cli.run_pending(Tiny(ROOT), "unused", keep) == ["one"]
    assert json.loads((keep / "kept" / "one.json").read_text()) == {"top1": 1.5}
    assert json.loads((keep / "summary.json").read_text()) == {"top1": 1.5}
    assert cli.run_pending(Tiny(ROOT), "unused", keep) == []  # kept: skipped
    assert cli.main(["check", "nope"]) == 2
