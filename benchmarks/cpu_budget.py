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
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
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


CONFIG = "recipes/configs/cpu_budget/resnet56__resnet20.yaml"
RUNS = Path("runs") / "cpu_budget" / "resnet56__resnet20"


@dataclass(frozen=True)
class Row:
    """One row of the protocol's table: a method (with loss overrides when it is a control) and the seeds it runs.

    ``key`` names its kept files, ``resnet20_<key>_seed<k>.json``.
    """

    key: str
    method: str
    label: str
    seeds: tuple[int, ...] = (0, 1, 2)
    loss_overrides: dict[str, object] = field(default_factory=dict)


# The protocol's students (issue 19): every loss at its defaults, DKD with beta 2 (the config), same teacher.
ROWS = (
    Row("vanilla", "vanilla", "vanilla (labels only)"),
    Row("kd", "kd", "KD (CE 0.1 + KD 0.9, the CRD benchmark's KD)"),
    Row("kd_ce1", "kd", "KD (CE 1, as in x+KD)", loss_overrides={"ce_weight": 1.0, "kd": {"weight": 1.0}}),
    Row("icd", "icd", "ICD (CE 1 + ICD 1)", seeds=(0,)),
    Row("icd_kd", "icd+kd", "ICD+KD (CE 1 + KD 1 + ICD 1)"),
    Row("dkd", "dkd", "DKD (beta 2)"),
    Row("crd_kd", "crd+kd", "CRD+KD", seeds=(0,)),
    Row("icd_dkd", "icd+dkd", "ICD+DKD", seeds=(0,)),
)


def kept_name(row: Row, seed: int) -> str:
    return f"resnet20_{row.key}_seed{seed}.json"


def run_queue(rows: Sequence[Row] = ROWS) -> list[tuple[Row, int]]:
    """Every (row, seed) in the order they run: seed 0 of every row first, so a stop leaves a whole table."""
    return sorted(((r, s) for r in rows for s in r.seeds), key=lambda rs: (rs[1], rows.index(rs[0])))


def distill_command(row: Row, seed: int, data_dir: str) -> list[str]:
    command = [sys.executable, "recipes/distill.py", "--config", CONFIG, "--method", row.method,
               "--data_dir", data_dir, "--training.seed", str(seed),
               "--output_dir", str(RUNS / f"{row.key}-seed{seed}")]
    if row.loss_overrides:
        command += ["--loss_overrides", json.dumps(row.loss_overrides)]
    return command


def _commit(repo: Path, paths: Sequence[str], message: str) -> None:
    for _ in range(5):
        add = subprocess.run(["git", "add", "--", *paths], cwd=repo)
        if add.returncode == 0 and subprocess.run(["git", "commit", "-q", "-m", message, "--", *paths],
                                                  cwd=repo).returncode == 0:
            return
        subprocess.run(["sleep", "5"])
    print(f"commit of {paths} in {repo} failed", file=sys.stderr)


def run_protocol(data_dir: str, commit_to: Path | None, only: Sequence[str] = ()) -> None:
    """Run every pending (row, seed) from this checkout, keep each finished run in ``commit_to`` (default this
    checkout) and commit it there at once, then regenerate the summary and README there. A kept run is skipped; an
    interrupted one resumes from its last checkpoint (distill.py's resume)."""
    repo = commit_to or ROOT
    kept = repo / KEPT_RUNS.relative_to(ROOT)
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), "PYTHONPATH": str(ROOT)}
    for row, seed in run_queue():
        name = kept_name(row, seed)
        if (only and f"{row.key}:{seed}" not in only) or (kept / name).is_file():
            continue
        print(f"== {row.key} seed {seed}: {' '.join(distill_command(row, seed, data_dir))}", flush=True)
        subprocess.run(distill_command(row, seed, data_dir), cwd=ROOT, env=env, check=True)
        kept.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / RUNS / f"{row.key}-seed{seed}" / "results.json", kept / name)
        rel = str((kept / name).relative_to(repo))
        _commit(repo, [rel], f"cpu budget: {rel}")
        collected = subprocess.run([sys.executable, "benchmarks/cpu_budget.py", "collect"], cwd=repo,
                                   env={**env, "PYTHONPATH": str(repo)}, capture_output=True, text=True)
        if collected.returncode == 0:
            _commit(repo, ["README.md", str(SUMMARY.relative_to(ROOT))], "cpu budget: summary and README table")
        else:
            print(f"collect failed in {repo}:\n{collected.stderr[-2000:]}", file=sys.stderr)


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
    run = sub.add_parser("run", help="run every pending (row, seed) of the protocol, keep and commit each")
    run.add_argument("--data_dir", required=True, help="the folder holding the cifar-100-python pickles")
    run.add_argument("--commit_to", type=Path, default=None, help="the checkout to keep and commit results in")
    run.add_argument("--only", nargs="*", default=(), help="KEY:SEED pairs to run (default: every pending one)")
    args = parser.parse_args(argv)
    if args.command == "run":
        run_protocol(args.data_dir, args.commit_to, args.only)
    elif args.command == "export-teacher":
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
