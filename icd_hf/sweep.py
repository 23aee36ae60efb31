"""One teacher->student pair, many methods: the comparison users run first."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from .cli_utils import BAD_INPUT_ERRORS, configure_logging, print_help, report_error, wants_help
from .config import load_config, parse_overrides, training_defaults
from .experiment import experiment_fingerprint, run_experiment
from .losses.presets import resolve_method
from .runs import (
    RESULTS_NAME,
    RUNS_ROOT,
    RunResults,
    default_output_dir,
    fingerprint_diff,
    git_commit,
    method_dirname,
    pair_dirname,
)

DEFAULT_METHODS = (
    "vanilla,kd,fitnet,at,sp,cc,vid,rkd,pkt,ab,ft,fsp,nst,crd,crd+kd,icd,icd+kd"
)


def sweep_root(config_path: str | None, overrides: dict[str, Any]) -> Path:
    """The pair's folder: ``output_dir`` when given, else ``runs/<teacher>__<student>``; each method's run goes
    into ``<root>/<method>[-<tag>]``, the same folder ``distill.py --method <method>`` uses by default."""
    base = load_config(config_path, {**overrides, "method": "vanilla"})
    if base.output_dir != default_output_dir(base.student, base.teacher_label, "vanilla", base.tag,
                                             needs_teacher=False):
        return Path(base.output_dir)
    return Path(RUNS_ROOT) / pair_dirname(base.teacher_label or "none", base.student)


def run_sweep(
    config_path: str | None, methods: list[str], overrides: dict[str, Any], command: str | None = None
) -> dict[str, Any]:
    """Run ``methods`` (reusing a method's finished run when it is this same run) and return the table."""
    base = load_config(config_path, {**overrides, "method": "vanilla"})
    specs = {}
    for method in methods:  # fail on a typo before hours of training, not after
        specs[method] = resolve_method(method, base.loss_overrides)
    root = sweep_root(config_path, overrides)
    rows: dict[str, Any] = {}
    for method in methods:
        cfg = load_config(config_path, {**overrides, "method": method})
        cfg = replace(cfg, output_dir=str(root / method_dirname(method, cfg.tag)))
        if (Path(cfg.output_dir) / RESULTS_NAME).is_file():
            done = RunResults.read(cfg.output_dir)
            fingerprint = experiment_fingerprint(cfg, resolve_method(method, cfg.loss_overrides))
            # Only the same run counts as done; a different one in that folder is refused by run_experiment.
            if not fingerprint_diff(done.fingerprint, fingerprint, training_defaults()):
                rows[method] = done
                continue
        rows[method] = run_experiment(cfg, command=command or f"sweep {method}")
    table = {
        "teacher": base.teacher_label,
        "student": base.student,
        "dataset": base.dataset,
        "results": {
            m: {"top1": r.metrics.top1, "best_top1": r.metrics.best_top1, "top5": r.metrics.top5}
            for m, r in rows.items()
        },
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "sweep.json").write_text(json.dumps(table, indent=2))
    (root / "sweep.md").write_text(sweep_markdown(table))
    return table


def sweep_markdown(table: dict[str, Any]) -> str:
    """Markdown rows ``method | top-1 (last) | best | top-5 | vs KD``."""
    results = table["results"]
    kd = results.get("kd", {}).get("top1")
    lines = [
        f"### {table['teacher']} -> {table['student']} on {table['dataset']}",
        "",
        "| method | top-1 (last) | top-1 (best) | top-5 | vs KD |",
        "|---|---|---|---|---|",
    ]
    for method, r in results.items():
        delta = "" if kd is None or method == "kd" else f"{r['top1'] - kd:+.2f}"
        lines.append(f"| {method} | {r['top1']:.2f} | {r['best_top1']:.2f} | {r['top5']:.2f} | {delta} |")
    return "\n".join(lines) + "\n"


def validate_sweep_argv(argv: list[str], extra: dict[str, Any]) -> None:
    """Check a sweep's arguments (config, types, every method name) without loading anything."""
    overrides = parse_overrides(argv, extra=extra)
    methods = str(overrides.pop("methods", DEFAULT_METHODS)).split(",")
    base = load_config(overrides.pop("config", None), {**overrides, "method": "vanilla"})
    for method in (m.strip() for m in methods if m.strip()):
        resolve_method(method, base.loss_overrides)


SWEEP_OPTIONS = {"methods": (str, DEFAULT_METHODS, "comma-separated methods to run, one run folder each")}


def sweep_from_argv(argv: list[str], prog: str = "sweep.py") -> int:
    if wants_help(argv):
        print_help(prog, argv, extra=SWEEP_OPTIONS)
        return 0
    configure_logging()
    git_commit()  # cached: every run of the sweep records the code it started with
    try:
        overrides = parse_overrides(argv, extra={name: hint for name, (hint, _, _) in SWEEP_OPTIONS.items()})
        methods = str(overrides.pop("methods", DEFAULT_METHODS)).split(",")
        table = run_sweep(overrides.pop("config", None), [m.strip() for m in methods if m.strip()], overrides,
                          command=" ".join([prog, *argv]))
    except BAD_INPUT_ERRORS as err:
        report_error(prog, err)
        return 2
    print(sweep_markdown(table))
    return 0
