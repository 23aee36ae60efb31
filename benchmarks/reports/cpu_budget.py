"""The CPU-budget protocol (recipes/configs/cpu_budget/): resnet56 -> resnet20 on real CIFAR-100, 3 student epochs.

Its runs: one resnet20 student per (row, seed) of ``ROWS``, the fp32/bf16 accuracy check, and the linear probe of
four seed-0 students on Tiny ImageNet (the paper's table 3). Its table: per row the mean ± sample std over seeds,
the paired per-seed differences that isolate ICD, and a reading generated from those numbers.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from icd_hf.evaluation.reports import PlannedRun, Report
from icd_hf.paper import find_paper_result, find_transfer_results
from icd_hf.runs import RunResults

CONFIG = "recipes/configs/cpu_budget/resnet56__resnet20.yaml"
KEPT = "benchmarks/results/cifar100_cpu_budget"
RUNS = "runs/cpu_budget/resnet56__resnet20"
TEACHER_DIR = "benchmarks/teachers/resnet56-cpu-budget"
TINY_IMAGENET = "tiny-imagenet-200"


@dataclass(frozen=True)
class Row:
    """One row of the table: a method (with loss overrides when it is a control) and the seeds it runs.

    ``key`` names its kept files, ``resnet20_<key>_seed<k>.json``; ``probe`` marks the students whose seed-0 run
    gets the Tiny ImageNet linear probe.
    """

    key: str
    method: str
    label: str
    seeds: tuple[int, ...] = (0, 1, 2)
    loss_overrides: dict[str, Any] = field(default_factory=dict)
    probe: bool = False
    paper_transfer_column: str | None = None  # its column of the paper's table 3, when it has one


# Every loss at its defaults, DKD with its authors' beta for this pair (2, in the config), the same teacher.
ROWS = (
    Row("vanilla", "vanilla", "vanilla (CE only)", probe=True, paper_transfer_column="student_vanilla"),
    Row("kd", "kd", "KD (CE 0.1 + KD 0.9, the CRD benchmark's KD)", probe=True, paper_transfer_column="KD"),
    Row("kd_ce1", "kd", "KD (CE 1, as in x+KD)", loss_overrides={"ce_weight": 1.0, "kd": {"weight": 1.0}},
        probe=True),
    Row("icd", "icd", "ICD (CE 1 + ICD 1)", seeds=(0,)),
    Row("icd_kd", "icd+kd", "ICD+KD (CE 1 + KD 1 + ICD 1)", probe=True, paper_transfer_column="ICD+KD"),
    Row("dkd", "dkd", "DKD (β 2)"),
    Row("crd_kd", "crd+kd", "CRD+KD (CE 1 + KD 1 + CRD 0.8)", seeds=(0,)),
    Row("icd_dkd", "icd+dkd", "ICD+DKD (CE 1 + DKD + ICD 1)", seeds=(0,)),
)
# The paired differences of the table: (minuend, subtrahend) row keys, compared seed by seed.
PAIRED = (("icd_kd", "kd_ce1"), ("icd_kd", "kd"), ("icd_kd", "dkd"), ("kd_ce1", "kd"), ("icd_dkd", "dkd"))
# The precision of the table's runs (every run of one table uses one precision). Runs of another precision are kept
# beside it: the earlier session's fp32 runs in fp32/, and the bf16 accuracy check.
TABLE_PRECISION = "bf16"
FP32_KEPT = f"{KEPT}/fp32"


def kept_name(row: Row, seed: int) -> str:
    return f"resnet20_{row.key}_seed{seed}.json"


def student_command(row: Row, seed: int, data_dir: str) -> list[str]:
    command = ["recipes/distill.py", "--config", CONFIG, "--method", row.method, "--data_dir", data_dir,
               "--training.seed", str(seed), "--output_dir", f"{RUNS}/{row.key}-seed{seed}"]
    return command + (["--loss_overrides", json.dumps(row.loss_overrides)] if row.loss_overrides else [])


def planned_runs(data_dir: str, probe_data_dir: str | None = None) -> list[PlannedRun]:
    """Every run in the order it runs: seed 0 of every row, the bf16 check, the probes, then the other seeds (so a
    stop leaves a whole table early)."""
    students = sorted(((r, s) for r in ROWS for s in r.seeds), key=lambda rs: (rs[1], ROWS.index(rs[0])))
    runs = [PlannedRun(f"{r.key}:{s}", student_command(r, s, data_dir), f"{RUNS}/{r.key}-seed{s}",
                       f"{KEPT}/{kept_name(r, s)}") for r, s in students if s == 0]
    for precision in ("fp32", "bf16"):
        out = f"runs/cpu_budget/bf16_check/{precision}"
        runs.append(PlannedRun(
            f"bf16_check:{precision}",
            ["recipes/train_teacher.py", "--config", "recipes/configs/cpu_budget/bf16_check_resnet20.yaml",
             "--data_dir", data_dir, "--training.bf16", "true" if precision == "bf16" else "false",
             "--output_dir", out], out, f"{KEPT}/bf16_check_{precision}.json"))
    probe_dir = probe_data_dir or str(Path(data_dir).parent / TINY_IMAGENET)
    for row in (r for r in ROWS if r.probe):
        kept = f"{KEPT}/transfer/tiny_imagenet_{row.key}_seed0.json"
        runs.append(PlannedRun(
            f"probe:{row.key}",
            ["recipes/linear_probe.py", "--model", f"{RUNS}/{row.key}-seed0", "--dataset", "tiny-imagenet",
             "--data_dir", probe_dir, "--image_size", "32", "--output", kept, "--no_progress"],
            f"{RUNS}/{row.key}-seed0", kept, result=""))
    runs += [PlannedRun(f"{r.key}:{s}", student_command(r, s, data_dir), f"{RUNS}/{r.key}-seed{s}",
                        f"{KEPT}/{kept_name(r, s)}") for r, s in students if s != 0]
    return runs


# ------------------------------------------------------------------------------------------------ summary

def run_row(results: RunResults, precision: str | None = None) -> dict[str, Any]:
    metrics = results.metrics
    return {
        "method": results.method,
        "seed": results.config.get("training", {}).get("seed"),
        "epochs": results.training.get("num_train_epochs"),
        "top1": metrics.top1,
        "top5": metrics.top5,
        "best_top1": metrics.best_top1,
        "best_epoch": metrics.best_epoch,
        "wall_time_s": results.wall_time_s,
        "device": results.device,
        "precision": results.precision or precision,
        "git_commit": results.git_commit,
        "command": results.command,
    }


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (``None`` for one value) of ``values``, with their count."""
    return {"n": len(values), "mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None}


def paired_difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """Seed-by-seed differences of row ``a`` minus row ``b`` (only seeds both ran), their mean and std, and whether
    the difference exceeds its seed spread: every seed has the same sign and |mean| exceeds the std."""
    top1_a = {r["seed"]: r["top1"] for r in a["runs"]}
    top1_b = {r["seed"]: r["top1"] for r in b["runs"]}
    seeds = sorted(set(top1_a) & set(top1_b))
    if not seeds:
        return None
    per_seed = {str(s): top1_a[s] - top1_b[s] for s in seeds}
    stats = mean_std(list(per_seed.values()))
    values = list(per_seed.values())
    same_sign = all(v > 0 for v in values) or all(v < 0 for v in values)
    exceeds = bool(stats["std"] is not None and same_sign and abs(stats["mean"]) > stats["std"])
    return {"a": a["key"], "b": b["key"], "label": f"{a['short']} − {b['short']}", "per_seed": per_seed, **stats,
            "exceeds_seed_spread": exceeds}


def reading(rows: dict[str, dict[str, Any]], paired: list[dict[str, Any]]) -> str:
    """One paragraph from the numbers: which differences exceed their seed spread and which do not."""
    sentences = []
    for d in paired:
        if d["n"] < 2:
            continue
        sign = "ahead of" if d["mean"] > 0 else "behind"
        verdict = ("more than its seed-to-seed spread, on every seed" if d["exceeds_seed_spread"] else
                   "within its seed-to-seed spread: not a difference these seeds can show")
        sentences.append(f"{rows[d['a']]['short']} is {abs(d['mean']):.2f} points {sign} {rows[d['b']]['short']} "
                         f"(mean of {d['n']} paired seeds, std {d['std']:.2f}), {verdict}.")
    return " ".join(sentences)


def _read(path: Path) -> RunResults:
    return RunResults.read(path)


def _short(row: Row) -> str:
    return row.label.split(" (")[0] + (" (CE 1)" if row.key == "kd_ce1" else "")


class CpuBudget(Report):
    name = "cpu_budget"
    summary_file = "benchmarks/results/cifar100_cpu_budget.json"
    begin = "<!-- cpu-budget-table:begin (python benchmarks/report.py collect cpu_budget) -->"
    end = "<!-- cpu-budget-table:end -->"
    paper_dir: Path | None = None  # default ../shared/paper

    def summarise(self) -> dict[str, Any]:
        kept = self.path(KEPT)
        teacher_file = kept / "teacher_resnet56.json"
        teacher = run_row(_read(teacher_file), "fp32") if teacher_file.is_file() else None
        rows: dict[str, dict[str, Any]] = {}
        for row in ROWS:
            runs = [run_row(_read(p)) for s in row.seeds if (p := kept / kept_name(row, s)).is_file()]
            runs = [r for r in runs if r["precision"] == TABLE_PRECISION]
            if not runs:
                continue
            paper = find_paper_result("resnet56", "resnet20", None if row.method == "vanilla" else row.method,
                                      self.paper_dir)
            paper_top1 = None
            if paper is not None and row.key != "kd_ce1":
                paper_top1 = paper.vanilla_top1 if row.method == "vanilla" else paper.method_top1
            rows[row.key] = {"key": row.key, "label": row.label, "short": _short(row), "method": row.method,
                             "loss_overrides": row.loss_overrides, "runs": runs,
                             "top1": mean_std([r["top1"] for r in runs]),
                             "top5": mean_std([r["top5"] for r in runs]),
                             "paper_240_epochs_top1": paper_top1}
        paired = [d for a, b in PAIRED if a in rows and b in rows and (d := paired_difference(rows[a], rows[b]))]
        fp32 = [run_row(_read(p), "fp32") for p in sorted(self.path(FP32_KEPT).glob("resnet20_*.json"))]
        bf16_check = {precision: run_row(_read(path), precision) for precision in ("fp32", "bf16")
                      if (path := kept / f"bf16_check_{precision}.json").is_file()}
        transfer = {}
        paper_tin = find_transfer_results("TIN-200", self.paper_dir) or {}
        for row in ROWS:
            path = kept / "transfer" / f"tiny_imagenet_{row.key}_seed0.json"
            if path.is_file():
                probe = json.loads(path.read_text())
                transfer[row.key] = {"label": row.label, "top1": probe["top1"], "top5": probe["top5"],
                                     "dataset": probe["dataset"], "device": probe.get("device"),
                                     "paper_wrn_16_2_240_epochs_top1": paper_tin.get(row.paper_transfer_column)}
        paper_teacher = find_paper_result("resnet56", "resnet20", None, self.paper_dir)
        cpus = sorted({r["device"] for row in rows.values() for r in row["runs"] if r["device"]})
        return {
            "protocol": "recipes/configs/cpu_budget/cifar100_cpu_budget.yaml",
            "dataset": "cifar100 (50,000 train / 10,000 test)",
            "pair": {"teacher": "resnet56", "student": "resnet20"},
            "precision": TABLE_PRECISION,
            "devices": cpus,
            "teacher": teacher,
            "paper_240_epochs_teacher_top1": paper_teacher.teacher_top1 if paper_teacher else None,
            "rows": list(rows.values()),
            "paired_differences": paired,
            "reading": reading(rows, paired),
            "fp32_runs": fp32,
            "bf16_check": bf16_check,
            "transfer_tiny_imagenet": transfer,
        }

    def planned_runs(self, data_dir: str) -> list[PlannedRun]:
        return planned_runs(data_dir)

    def comparable(self, summary: dict[str, Any]) -> dict[str, Any]:
        # The paper's column comes from ../shared/paper, which a checkout elsewhere may lack.
        out = {k: v for k, v in summary.items() if k != "paper_240_epochs_teacher_top1"}
        out["rows"] = [{k: v for k, v in r.items() if k != "paper_240_epochs_top1"} for r in summary.get("rows", [])]
        out["transfer_tiny_imagenet"] = {key: {k: v for k, v in entry.items() if not k.startswith("paper_")}
                                         for key, entry in summary.get("transfer_tiny_imagenet", {}).items()}
        return out

    def render(self, summary: dict[str, Any]) -> str:
        return render_table(summary)


def _cell(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def _minutes(seconds: list[float]) -> str:
    return f"{statistics.fmean(seconds) / 60:.0f} min" if seconds else "–"


def render_table(summary: dict[str, Any]) -> str:
    """The README's block: the main table, the paired differences and the reading, then the other precisions and
    the transfer probe."""
    teacher = summary.get("teacher")
    lines = [f"Every student run below: {summary['precision']} autocast on "
             f"{', '.join(summary['devices']) or 'the CPU'}; top-1 at the last epoch, mean ± sample std over seeds.",
             "",
             "| student (resnet20) | seeds | top-1, mean ± std | per seed | top-5, mean | min per run | "
             "paper, 240 epochs |",
             "|---|---:|---:|---|---:|---:|---:|"]
    if teacher is not None:
        lines.append(f"| teacher: resnet56, {teacher['epochs']:g} epochs ({teacher['precision']}) | 1 | "
                     f"{_cell(teacher['top1'])} | – | {_cell(teacher['top5'])} | "
                     f"{_minutes([teacher['wall_time_s']])} | {_cell(summary.get('paper_240_epochs_teacher_top1'))} |")
    for row in summary["rows"]:
        top1, runs = row["top1"], row["runs"]
        spread = f"{top1['mean']:.2f} ± {top1['std']:.2f}" if top1["std"] is not None else f"{top1['mean']:.2f}"
        per_seed = " / ".join(f"{r['top1']:.2f}" for r in runs)
        lines.append(f"| {row['label']} | {top1['n']} | {spread} | {per_seed} | {_cell(row['top5']['mean'])} | "
                     f"{_minutes([r['wall_time_s'] for r in runs if r['wall_time_s']])} | "
                     f"{_cell(row['paper_240_epochs_top1'])} |")
    if summary["paired_differences"]:
        seeds = sorted({s for d in summary["paired_differences"] for s in d["per_seed"]}, key=int)
        lines += ["", "Paired by seed (same seed: same initialisation and data order), top-1 points:", "",
                  "| difference | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std | beyond seed spread |",
                  "|---|" + "---:|" * (len(seeds) + 1) + "---|"]
        for d in summary["paired_differences"]:
            cells = [_signed(d["per_seed"][s]) if s in d["per_seed"] else "–" for s in seeds]
            stat = _signed(d["mean"]) + (f" ± {d['std']:.2f}" if d["std"] is not None else "")
            verdict = "yes" if d["exceeds_seed_spread"] else ("no" if d["n"] > 1 else "one seed")
            lines.append(f"| {d['label']} | " + " | ".join(cells) + f" | {stat} | {verdict} |")
        lines += ["", "(beyond seed spread: every seed's difference has the same sign and the mean exceeds the "
                      "std of the differences.)"]
    if summary["reading"]:
        lines += ["", f"**Reading.** {summary['reading']}"]
    other = [("fp32 (an earlier session)", r) for r in summary.get("fp32_runs", [])]
    if other or summary.get("bf16_check"):
        lines += ["", "Other precisions (not mixed into the table above):", "",
                  "| run | precision | seed | top-1 (last) | top-5 | min | device |",
                  "|---|---|---:|---:|---:|---:|---|"]
        for _, r in other:
            lines.append(f"| resnet20 {r['method']}, 3 epochs | {r['precision']} | {r['seed']} | {_cell(r['top1'])} | "
                         f"{_cell(r['top5'])} | {_minutes([r['wall_time_s']])} | {r['device']} |")
        for precision, r in summary.get("bf16_check", {}).items():
            lines.append(f"| bf16 check: resnet20 from labels, 10,000 images, {r['epochs']:g} epochs | {precision} | "
                         f"{r['seed']} | {_cell(r['top1'])} | {_cell(r['top5'])} | {_minutes([r['wall_time_s']])} | "
                         f"{r['device']} |")
    transfer = summary.get("transfer_tiny_imagenet") or {}
    if transfer:
        first = next(iter(transfer.values()))["dataset"]
        lines += ["", f"Transfer (the paper's table 3 protocol): a linear probe on the frozen seed-0 students' "
                      f"features of the Tiny ImageNet subset of ../shared/data ({first['num_classes']} classes, "
                      f"{first['num_train']:,} train / "
                      f"{first['num_eval']:,} val images, resized to {first['image_size']}):", "",
                  "| student (seed 0) | probe top-1 | probe top-5 | paper: WRN-16-2 student, 240 epochs |",
                  "|---|---:|---:|---:|"]
        for entry in transfer.values():
            lines.append(f"| {entry['label']} | {_cell(entry['top1'])} | {_cell(entry['top5'])} | "
                         f"{_cell(entry.get('paper_wrn_16_2_240_epochs_top1'))} |")
    return "\n".join(lines)
