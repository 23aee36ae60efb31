"""Ensemble distillation under the CPU-budget protocol: resnet20 with ICD+KD from resnet56 alone, wrn_16_2 alone and
both at once (recipes/configs/cpu_budget/{resnet56,wrn_16_2,ensemble}__resnet20.yaml), beside the teachers' own
accuracy and their ensemble's (``python benchmarks/teachers.py evaluate``). The run from resnet56 alone is the
protocol's fp32 ICD+KD run (cifar100_cpu_budget/fp32/); its teachers and these students ran in fp32 too.
"""

from __future__ import annotations

import json
from typing import Any

from icd_hf.evaluation.reports import PlannedRun, Report
from icd_hf.runs import RunResults

KEPT = "benchmarks/results/ensemble_cpu_budget"
PROTOCOL_KEPT = "benchmarks/results/cifar100_cpu_budget"
TEACHERS = {"resnet56": f"{PROTOCOL_KEPT}/teacher_resnet56.json", "wrn_16_2": f"{KEPT}/teacher_wrn_16_2.json"}
STUDENTS = {  # the teacher set -> its config and kept record
    "resnet56": ("resnet56__resnet20.yaml", f"{PROTOCOL_KEPT}/fp32/resnet20_icd_kd_seed0.json"),
    "wrn_16_2": ("wrn_16_2__resnet20.yaml", f"{KEPT}/resnet20_icd_kd_from_wrn_16_2.json"),
    "resnet56+wrn_16_2": ("ensemble__resnet20.yaml", f"{KEPT}/resnet20_icd_kd_from_ensemble.json"),
}
VANILLA = f"{PROTOCOL_KEPT}/fp32/resnet20_vanilla_seed0.json"


def run_row(results: RunResults) -> dict[str, Any]:
    m = results.metrics
    return {"method": results.method, "seed": results.config.get("training", {}).get("seed"),
            "epochs": results.training.get("num_train_epochs"), "top1": m.top1, "top5": m.top5,
            "best_top1": m.best_top1, "best_epoch": m.best_epoch, "wall_time_s": results.wall_time_s,
            "device": results.device, "git_commit": results.git_commit, "command": results.command}


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.0f} min"


class EnsembleCpuBudget(Report):
    name = "ensemble_cpu_budget"
    summary_file = "benchmarks/results/ensemble_cpu_budget.json"
    begin = "<!-- ensemble-cpu-budget:begin (python benchmarks/report.py collect ensemble_cpu_budget) -->"
    end = "<!-- ensemble-cpu-budget:end -->"

    def planned_runs(self, data_dir: str) -> list[PlannedRun]:
        # The teachers are trained and published first (benchmarks/teachers.py); the resnet56 student is the
        # CPU-budget protocol's own fp32 run.
        return [PlannedRun(source, ["recipes/distill.py", "--config", f"recipes/configs/cpu_budget/{config}",
                                    "--data_dir", data_dir, "--output_dir", f"runs/cpu_budget/{source}__resnet20"],
                           f"runs/cpu_budget/{source}__resnet20", kept)
                for source, (config, kept) in STUDENTS.items() if source != "resnet56"]

    def summarise(self) -> dict[str, Any]:
        teachers = {n: run_row(RunResults.read(self.path(p))) for n, p in TEACHERS.items() if self.path(p).is_file()}
        students = []
        for source, (_, kept) in STUDENTS.items():
            if self.path(kept).is_file():
                results = RunResults.read(self.path(kept))
                students.append({"teachers": source, "teacher_weighting": results.config.get("teacher_weighting"),
                                 **run_row(results)})
        evaluated = self.path(f"{KEPT}/teachers_eval.json")
        return {
            "protocol": "recipes/configs/cpu_budget/cifar100_cpu_budget.yaml",
            "student": "resnet20",
            "method": "icd+kd",
            "teachers": teachers,
            "teachers_eval": json.loads(evaluated.read_text()) if evaluated.is_file() else None,
            "vanilla": run_row(RunResults.read(self.path(VANILLA))) if self.path(VANILLA).is_file() else None,
            "students": students,
        }

    def render(self, summary: dict[str, Any]) -> str:
        evaluated = (summary.get("teachers_eval") or {}).get("top1", {})
        lines = ["| model | trained from | epochs | top-1 (last) | best top-1 | top-5 | wall time |",
                 "|---|---|---:|---:|---:|---:|---:|"]
        for name, run in summary["teachers"].items():
            lines.append(f"| {name} (teacher) | labels | {run['epochs']:g} | {_cell(run['top1'])} | "
                         f"{_cell(run['best_top1'])} | {_cell(run['top5'])} | {_minutes(run['wall_time_s'])} |")
        if "ensemble" in evaluated:
            members = " + ".join(summary["teachers"]) or "the teachers"
            lines.append(f"| {members} (ensemble: mean of probabilities) | – | – | {_cell(evaluated['ensemble'])} | – "
                         f"| – | – |")
        rows = ([("labels only (vanilla)", summary["vanilla"])] if summary.get("vanilla") else []) + [
            (f"ICD+KD from {s['teachers'].replace('+', ' + ')}" + (" (ensemble)" if "+" in s["teachers"] else ""), s)
            for s in summary["students"]]
        for source, run in rows:
            lines.append(f"| {summary['student']} | {source} | {run['epochs']:g} | {_cell(run['top1'])} | "
                         f"{_cell(run['best_top1'])} | {_cell(run['top5'])} | {_minutes(run['wall_time_s'])} |")
        return "\n".join(lines)
