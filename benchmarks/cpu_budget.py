#!/usr/bin/env python
"""The CPU-budget protocol on real CIFAR-100 (``recipes/configs/cpu_budget/``): publish its teacher, collect its runs.

    python benchmarks/cpu_budget.py export-teacher runs/cpu_budget/teachers/resnet56 \
        benchmarks/teachers/resnet56-cpu-budget
    python benchmarks/cpu_budget.py collect     # kept runs -> cifar100_cpu_budget.json + the README table
    python benchmarks/cpu_budget.py check       # exit 1 when the summary or README.md disagree with the kept runs

``benchmarks/cpu_budget.sh`` runs the whole protocol. Each finished run's ``results.json`` is kept as
``benchmarks/results/cifar100_cpu_budget/<name>.json``; the summary and the README table are generated from
those files (the paper's 240-epoch column from ``../shared/paper`` when present), so no number is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from icd_hf.runs import RunResults

ROOT = Path(__file__).resolve().parent.parent
KEPT_RUNS = ROOT / "benchmarks" / "results" / "cifar100_cpu_budget"
SUMMARY = ROOT / "benchmarks" / "results" / "cifar100_cpu_budget.json"
README = ROOT / "README.md"
BEGIN, END = "<!-- cpu-budget-table:begin (benchmarks/cpu_budget.py collect) -->", "<!-- cpu-budget-table:end -->"
# The order of the protocol (benchmarks/cpu_budget.sh); runs of other methods follow, sorted.
METHOD_ORDER = ("vanilla", "kd", "icd", "icd+kd", "crd+kd", "dkd")


def export_teacher(run_dir: Path, out_dir: Path) -> Path:
    """The teacher run as a Hub-ready folder (weights, code, processor, card), with the weights in fp16.

    fp16 halves the download; ``icd_hf.models.load_model`` upcasts to float32 on load, and the logits of the
    upcast model differ from the trained fp32 model by rounding only.
    """
    from icd_hf.hub import export_for_hub
    from icd_hf.models import load_model

    export_for_hub(run_dir, out_dir, measure_latency=False, overwrite=True)
    model = load_model(out_dir)
    model.to(torch.float16).save_pretrained(out_dir)
    shutil.copyfile(run_dir / "results.json", out_dir / "results.json")
    return out_dir


def _read_run(path: Path) -> RunResults:
    """A kept run: a copy of its ``results.json``, read as the record training wrote."""
    from icd_hf.runs import RunResults

    return RunResults.read(path)


def _run_row(results: RunResults) -> dict[str, Any]:
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
        "git_commit": results.git_commit,
        "command": results.command,
    }


def summarise(kept_dir: Path = KEPT_RUNS, paper_dir: Path | None = None) -> dict[str, Any]:
    """The protocol's summary from the kept ``results.json`` files: the teacher, and per student method its runs
    (one per seed) with mean and standard deviation of the last top-1, beside the paper's 240-epoch figure."""
    from icd_hf.paper import find_paper_result

    teacher_file = kept_dir / "teacher_resnet56.json"
    teacher = _run_row(_read_run(teacher_file)) if teacher_file.is_file() else None
    students: dict[str, list[dict[str, Any]]] = {}
    pair = ("resnet56", "resnet20")
    for path in sorted(kept_dir.glob("resnet20_*.json")):
        results = _read_run(path)
        pair = (results.teacher.name if results.teacher else pair[0], results.student.name)
        students.setdefault(results.method, []).append(_run_row(results))
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    methods = []
    for method in sorted(students, key=lambda m: (rank.get(m, len(rank)), m)):
        runs = sorted(students[method], key=lambda r: r["seed"] if r["seed"] is not None else -1)
        top1 = [r["top1"] for r in runs]
        paper = find_paper_result(pair[0], pair[1], None if method == "vanilla" else method, paper_dir)
        paper_top1 = None
        if paper is not None:
            paper_top1 = paper.vanilla_top1 if method == "vanilla" else paper.method_top1
        methods.append({
            "method": method,
            "runs": runs,
            "top1_mean": statistics.fmean(top1),
            "top1_std": statistics.stdev(top1) if len(top1) > 1 else None,
            "paper_240_epochs_top1": paper_top1,
        })
    paper_teacher = find_paper_result(pair[0], pair[1], None, paper_dir)
    bf16_check = {
        precision: _run_row(_read_run(path))
        for precision in ("fp32", "bf16")
        if (path := kept_dir / f"bf16_check_{precision}.json").is_file()
    }
    return {
        "protocol": "recipes/configs/cpu_budget/cifar100_cpu_budget.yaml",
        "dataset": "cifar100 (50,000 train / 10,000 test)",
        "pair": {"teacher": pair[0], "student": pair[1]},
        "teacher": teacher,
        "paper_240_epochs_teacher_top1": paper_teacher.teacher_top1 if paper_teacher else None,
        "students": methods,
        "bf16_check": bf16_check,
    }


def _cell(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.0f} min"


def markdown_table(summary: dict[str, Any]) -> str:
    """The README's table: last/best top-1, top-5 and wall time per run, the paper's 240-epoch top-1 beside."""
    from icd_hf.paper import method_display_name

    lines = [
        "| model | method | epochs | top-1 (last) | best top-1 | top-5 | wall time | paper, 240 epochs |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    teacher = summary.get("teacher")
    pair = summary["pair"]
    if teacher is not None:
        lines.append(
            f"| {pair['teacher']} (teacher) | vanilla | {teacher['epochs']:g} | {_cell(teacher['top1'])} | "
            f"{_cell(teacher['best_top1'])} | {_cell(teacher['top5'])} | {_minutes(teacher['wall_time_s'])} | "
            f"{_cell(summary.get('paper_240_epochs_teacher_top1'))} |"
        )
    for entry in summary["students"]:
        runs = entry["runs"]
        name = "vanilla" if entry["method"] == "vanilla" else method_display_name(entry["method"])
        if len(runs) > 1:
            top1 = f"{entry['top1_mean']:.2f} ± {entry['top1_std']:.2f} ({len(runs)} seeds)"
            best = _cell(statistics.fmean(r["best_top1"] for r in runs))
            top5 = _cell(statistics.fmean(r["top5"] for r in runs))
        else:
            top1, best, top5 = _cell(runs[0]["top1"]), _cell(runs[0]["best_top1"]), _cell(runs[0]["top5"])
        wall = _minutes(statistics.fmean(r["wall_time_s"] for r in runs if r["wall_time_s"] is not None)
                        if any(r["wall_time_s"] is not None for r in runs) else None)
        lines.append(
            f"| {pair['student']} | {name} | {runs[0]['epochs']:g} | {top1} | {best} | {top5} | {wall} | "
            f"{_cell(entry['paper_240_epochs_top1'])} |"
        )
    check = summary.get("bf16_check") or {}
    if check:
        lines += [
            "",
            "bf16 accuracy check (resnet20 from labels, 10,000 training images, same seed):",
            "",
            "| precision | epochs | top-1 (last) | best top-1 | top-5 | wall time |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for precision, run in check.items():
            lines.append(
                f"| {precision} | {run['epochs']:g} | {_cell(run['top1'])} | {_cell(run['best_top1'])} | "
                f"{_cell(run['top5'])} | {_minutes(run['wall_time_s'])} |"
            )
    return "\n".join(lines)


def readme_block(summary: dict[str, Any]) -> str:
    return f"{BEGIN}\n{markdown_table(summary)}\n{END}"


def replace_block(text: str, block: str, begin: str = BEGIN, end_marker: str = END) -> str:
    """``text`` with the generated block between the markers ``begin`` and ``end_marker`` replaced by ``block``."""
    start, end = text.find(begin), text.find(end_marker)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {begin} ... {end_marker} block to fill")
    return text[:start] + block + text[end + len(end_marker):]


def collect(kept_dir: Path = KEPT_RUNS, summary_path: Path = SUMMARY, readme: Path = README,
            paper_dir: Path | None = None) -> dict[str, Any]:
    """Write the summary JSON and the README table from the kept runs."""
    summary = summarise(kept_dir, paper_dir)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    readme.write_text(replace_block(readme.read_text(), readme_block(summary)))
    return summary


def _run_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """What a summary says about the runs, without the paper's column (read from ../shared/paper, which a clean
    checkout elsewhere may lack)."""
    return {
        "teacher": summary.get("teacher"),
        "students": [{k: v for k, v in m.items() if k != "paper_240_epochs_top1"} for m in summary["students"]],
        "bf16_check": summary.get("bf16_check"),
    }


def summary_matches_runs(kept_dir: Path = KEPT_RUNS, summary_path: Path = SUMMARY) -> bool:
    """Whether the committed summary is the one the kept runs give (a kept run was added without ``collect``)."""
    return _run_fields(json.loads(summary_path.read_text())) == _run_fields(summarise(kept_dir))


def readme_matches(summary_path: Path = SUMMARY, readme: Path = README) -> bool:
    """Whether the README's table is the one the committed summary generates (no drift, no hand edits)."""
    summary = json.loads(summary_path.read_text())
    return readme_block(summary) in readme.read_text()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export-teacher", help="publish a teacher run as fp16 safetensors + config + card")
    exp.add_argument("run_dir", type=Path)
    exp.add_argument("out_dir", type=Path)
    col = sub.add_parser("collect", help="write cifar100_cpu_budget.json and the README table from the kept runs")
    col.add_argument("--paper_dir", type=Path, default=None, help="the paper's CSVs (default ../shared/paper)")
    sub.add_parser("check", help="exit 1 when the README table differs from what the summary generates")
    args = parser.parse_args(argv)
    if args.command == "export-teacher":
        print(export_teacher(args.run_dir, args.out_dir))
    elif args.command == "collect":
        print(markdown_table(collect(paper_dir=args.paper_dir)))
    elif not summary_matches_runs():
        print("benchmarks/results/cifar100_cpu_budget.json is not what the kept runs give: run "
              "`python benchmarks/cpu_budget.py collect`", file=sys.stderr)
        return 1
    elif not readme_matches():
        print("README.md's CPU-budget table differs from benchmarks/results/cifar100_cpu_budget.json: run "
              "`python benchmarks/cpu_budget.py collect`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
