#!/usr/bin/env python
"""Ensemble distillation under the CPU-budget protocol: resnet20 with ICD+KD from each teacher alone and from both.

    python benchmarks/ensemble_cpu_budget.py eval-teachers --data_dir /data/cifar-100-python
    python benchmarks/ensemble_cpu_budget.py collect   # kept runs -> ensemble_cpu_budget.json + the README table
    python benchmarks/ensemble_cpu_budget.py check     # exit 1 when the summary or README.md disagree with them

``benchmarks/ensemble_cpu_budget.sh`` runs it: the second teacher (wrn_16_2, the resnet56 teacher's 6 epochs), then
the three students (``recipes/configs/cpu_budget/{resnet56,wrn_16_2,ensemble}__resnet20.yaml``). The run from
resnet56 alone is the CPU-budget protocol's own ICD+KD run (``cifar100_cpu_budget/resnet20_icd_kd.json``); the
others are kept in ``benchmarks/results/ensemble_cpu_budget/``. Every number of the table comes from those files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_budget import KEPT_RUNS, README, ROOT, _cell, _minutes, _read_run, _run_row, replace_block  # noqa: E402

KEPT = ROOT / "benchmarks" / "results" / "ensemble_cpu_budget"
SUMMARY = ROOT / "benchmarks" / "results" / "ensemble_cpu_budget.json"
TEACHERS = {"resnet56": ROOT / "benchmarks" / "teachers" / "resnet56-cpu-budget",
            "wrn_16_2": ROOT / "benchmarks" / "teachers" / "wrn_16_2-cpu-budget"}
TEACHER_EVAL = KEPT / "teachers_eval.json"
BEGIN = "<!-- ensemble-cpu-budget:begin (benchmarks/ensemble_cpu_budget.py collect) -->"
END = "<!-- ensemble-cpu-budget:end -->"


def student_runs(kept: Path = KEPT, protocol_kept: Path = KEPT_RUNS) -> dict[str, Path]:
    """The kept file of the resnet20 student of each teacher set (the resnet56 one is the protocol's own run)."""
    return {"resnet56": protocol_kept / "resnet20_icd_kd.json",
            "wrn_16_2": kept / "resnet20_icd_kd_from_wrn_16_2.json",
            "resnet56+wrn_16_2": kept / "resnet20_icd_kd_from_ensemble.json"}


@torch.inference_mode()
def evaluate_teachers(data_dir: Path, teachers: dict[str, Path] = TEACHERS, batch_size: int = 500) -> dict[str, Any]:
    """Top-1 of each published teacher and of their ensemble (the mean of their softmax probabilities, the target
    ensemble KD uses at T = 1) on the CIFAR-100 test set."""
    from torch.utils.data import DataLoader

    from icd_hf.data import build_datasets, collate_batch
    from icd_hf.metrics import count_parameters
    from icd_hf.models import load_model

    _, test_ds, _ = build_datasets("cifar100", data_dir=str(data_dir))
    models = {name: load_model(path, num_classes=100).eval() for name, path in teachers.items()}
    correct = dict.fromkeys([*models, "ensemble"], 0)
    for batch in DataLoader(test_ds, batch_size=batch_size, collate_fn=collate_batch):
        probs = {name: m(pixel_values=batch["pixel_values"]).logits.softmax(-1) for name, m in models.items()}
        probs["ensemble"] = torch.stack(list(probs.values())).mean(0)
        for name, p in probs.items():
            correct[name] += (p.argmax(-1) == batch["labels"]).sum().item()
    return {
        "dataset": f"cifar100 test ({len(test_ds)} images)",
        "top1": {name: round(100 * c / len(test_ds), 2) for name, c in correct.items()},
        "num_parameters": {name: count_parameters(m) for name, m in models.items()},
        "weights": {name: str(path.relative_to(ROOT)) for name, path in teachers.items()},
    }


def summarise(kept: Path = KEPT, protocol_kept: Path = KEPT_RUNS) -> dict[str, Any]:
    """Teachers (their runs and the measured ensemble) and one resnet20 ICD+KD student per teacher set."""
    teachers = {}
    for name in TEACHERS:
        path = (protocol_kept if name == "resnet56" else kept) / f"teacher_{name}.json"
        if path.is_file():
            teachers[name] = _run_row(_read_run(path))
    students = []
    for source, path in student_runs(kept, protocol_kept).items():
        if path.is_file():
            results = _read_run(path)
            students.append({"teachers": source, "teacher_weighting": results.config.get("teacher_weighting"),
                             **_run_row(results)})
    vanilla = protocol_kept / "resnet20_vanilla.json"
    teachers_eval = kept / TEACHER_EVAL.name
    return {
        "protocol": "recipes/configs/cpu_budget/cifar100_cpu_budget.yaml",
        "student": "resnet20",
        "method": "icd+kd",
        "teachers": teachers,
        "teachers_eval": json.loads(teachers_eval.read_text()) if teachers_eval.is_file() else None,
        "vanilla": _run_row(_read_run(vanilla)) if vanilla.is_file() else None,
        "students": students,
    }


def markdown_table(summary: dict[str, Any]) -> str:
    evaluated = (summary.get("teachers_eval") or {}).get("top1", {})
    lines = ["| model | trained from | epochs | top-1 (last) | best top-1 | top-5 | wall time |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name, run in summary["teachers"].items():
        lines.append(f"| {name} (teacher) | labels | {run['epochs']:g} | {_cell(run['top1'])} | "
                     f"{_cell(run['best_top1'])} | {_cell(run['top5'])} | {_minutes(run['wall_time_s'])} |")
    if "ensemble" in evaluated:
        members = " + ".join(summary["teachers"]) or "the teachers"
        lines.append(f"| {members} (ensemble: mean of probabilities) | – | – | {_cell(evaluated['ensemble'])} | – | – "
                     f"| – |")
    rows = ([("labels only (vanilla)", summary["vanilla"])] if summary.get("vanilla") else []) + [
        (f"ICD+KD from {s['teachers'].replace('+', ' + ')}" + (" (ensemble)" if "+" in s["teachers"] else ""), s)
        for s in summary["students"]]
    for source, run in rows:
        lines.append(f"| {summary['student']} | {source} | {run['epochs']:g} | {_cell(run['top1'])} | "
                     f"{_cell(run['best_top1'])} | {_cell(run['top5'])} | {_minutes(run['wall_time_s'])} |")
    return "\n".join(lines)


def readme_block(summary: dict[str, Any]) -> str:
    return f"{BEGIN}\n{markdown_table(summary)}\n{END}"


def collect(kept: Path = KEPT, protocol_kept: Path = KEPT_RUNS, summary_path: Path = SUMMARY, readme: Path = README
            ) -> dict[str, Any]:
    """Write the summary JSON and the README table from the kept runs."""
    summary = summarise(kept, protocol_kept)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    readme.write_text(replace_block(readme.read_text(), readme_block(summary), BEGIN, END))
    return summary


def drift(kept: Path = KEPT, protocol_kept: Path = KEPT_RUNS, summary_path: Path = SUMMARY, readme: Path = README
          ) -> str | None:
    """What disagrees with the kept runs (the summary JSON or the README table), or ``None``."""
    summary = summarise(kept, protocol_kept)
    if not summary_path.is_file() or json.loads(summary_path.read_text()) != json.loads(json.dumps(summary)):
        return f"{summary_path.name} is not what the kept runs give"
    if readme_block(summary) not in readme.read_text():
        return "README.md's ensemble table is not what the kept runs give"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval-teachers", help="top-1 of each published teacher and of their ensemble")
    ev.add_argument("--data_dir", type=Path, required=True, help="the cifar-100-python folder")
    sub.add_parser("collect", help="write ensemble_cpu_budget.json and the README table from the kept runs")
    sub.add_parser("check", help="exit 1 when the summary or the README table drift from the kept runs")
    args = parser.parse_args(argv)
    if args.command == "eval-teachers":
        KEPT.mkdir(parents=True, exist_ok=True)
        TEACHER_EVAL.write_text(json.dumps(evaluate_teachers(args.data_dir), indent=2) + "\n")
        print(TEACHER_EVAL.read_text())
    elif args.command == "collect":
        print(markdown_table(collect()))
    elif problem := drift():
        print(f"{problem}: run `python benchmarks/ensemble_cpu_budget.py collect`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
