"""One teacher->student pair, many methods: the comparison users run first."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from .cli_utils import (
    BAD_INPUT_ERRORS,
    EXIT_INTERRUPTED,
    configure_logging,
    error_message,
    print_help,
    report_error,
    run_training,
    wants_help,
)
from .config import ExperimentConfig, load_config, parse_overrides, training_defaults
from .experiment import execute_experiment, experiment_fingerprint, finished_run, prepare_experiment, run_experiment
from .losses.presets import resolve_method
from .preflight import check_output_dir
from .runs import (
    RUNS_ROOT,
    RunResults,
    default_output_dir,
    git_commit,
    method_dirname,
    pair_dirname,
    plan_resume,
)
from .teacher_cache import cache_use, teacher_cache_refusal

DEFAULT_METHODS = (
    "vanilla,kd,fitnet,at,sp,cc,vid,rkd,pkt,ab,ft,fsp,nst,crd,crd+kd,icd,icd+kd"
)


def method_overrides(overrides: dict[str, Any], method: str, loss_overrides: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
    """The overrides of one method's run: ``overrides`` with its method; a method that cannot read a teacher cache
    (no teacher, or losses that read feature maps: ``teacher_cache_refusal``) runs its teacher live, so the sweep's
    ``teacher_cache`` is turned off for it rather than refused, and the table says which runs used the cache."""
    out = {**overrides, "method": method}
    if teacher_cache_refusal(resolve_method(method, loss_overrides)) is not None:
        out["teacher_cache"] = None
    return out


def sweep_root(config_path: str | None, overrides: dict[str, Any]) -> Path:
    """The pair's folder: ``output_dir`` when given, else ``runs/<teacher>__<student>``; each method's run goes
    into ``<root>/<method>[-<tag>]``, the same folder ``distill.py --method <method>`` uses by default."""
    # Without the tag: it suffixes each method's folder, not the pair's.
    base = load_config(config_path, {**method_overrides(overrides, "vanilla"), "tag": None})
    if base.output_dir != default_output_dir(base.student, base.teacher_label, "vanilla", None, needs_teacher=False):
        return Path(base.output_dir)
    return Path(RUNS_ROOT) / pair_dirname(base.teacher_label or "none", base.student)


def plan_sweep(
    config_path: str | None, methods: list[str], overrides: dict[str, Any]
) -> tuple[Path, ExperimentConfig, dict[str, ExperimentConfig], dict[str, RunResults]]:
    """Everything about a sweep that can be checked before any data or model loads: ``(pair folder, base config,
    {method: its config}, {method: its finished run})``; a method whose folder already holds this same run
    finished is reused, not trained again.

    Raises:
        ConfigError, KeyError, ValueError: a bad config or method, an unwritable folder, or a folder that holds a
            different run (the same checks as one run's, for every method at once).
    """
    base = load_config(config_path, method_overrides(overrides, "vanilla"))
    for method in methods:  # fail on a typo before hours of training, not after
        resolve_method(method, base.loss_overrides)
    root = sweep_root(config_path, overrides)
    configs: dict[str, ExperimentConfig] = {}
    done: dict[str, RunResults] = {}
    for method in methods:
        cfg = load_config(config_path, method_overrides(overrides, method, base.loss_overrides))
        cfg = replace(cfg, output_dir=str(root / method_dirname(method, cfg.tag)))
        configs[method] = cfg
        finished = finished_run(cfg)
        if finished is not None:
            done[method] = finished
            continue
        check_output_dir(cfg.output_dir)
        plan_resume(cfg.output_dir, cfg.resume, experiment_fingerprint(cfg, resolve_method(method, cfg.loss_overrides)),
                    overwrite=cfg.overwrite_output_dir, defaults=training_defaults())
    return root, base, configs, done


def write_sweep_table(root: Path, base: ExperimentConfig, rows: dict[str, RunResults]) -> dict[str, Any]:
    """Write ``<root>/sweep.json`` and ``sweep.md`` from the runs' records; returns the table."""
    table = {
        "teacher": base.teacher_label,
        "student": base.student,
        "dataset": base.dataset,
        "results": {
            m: {"top1": r.metrics.top1, "best_top1": r.metrics.best_top1, "top5": r.metrics.top5,
                # How the run got its teacher's outputs: live, or through the sweep's teacher cache.
                "teacher_outputs": cache_use(r.teacher_cache) if r.teacher is not None else None}
            for m, r in rows.items()
        },
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "sweep.json").write_text(json.dumps(table, indent=2))
    (root / "sweep.md").write_text(sweep_markdown(table))
    return table


def run_sweep(
    config_path: str | None, methods: list[str], overrides: dict[str, Any], command: str | None = None
) -> dict[str, Any]:
    """Run ``methods`` (reusing a method's finished run when it is this same run) and return the table."""
    root, base, configs, done = plan_sweep(config_path, methods, overrides)
    rows = {m: done[m] if m in done else run_experiment(cfg, command=command or f"sweep {m}")
            for m, cfg in configs.items()}
    return write_sweep_table(root, base, rows)


def sweep_markdown(table: dict[str, Any]) -> str:
    """Markdown rows ``method | top-1 (last) | best | top-5 | vs KD``, and ``teacher outputs`` (live, cache read,
    cache built) when a run of the sweep used a teacher cache."""
    results = table["results"]
    kd = results.get("kd", {}).get("top1")
    cached = any(str(r.get("teacher_outputs") or "").startswith("cache") for r in results.values())
    lines = [
        f"### {table['teacher']} -> {table['student']} on {table['dataset']}",
        "",
        "| method | top-1 (last) | top-1 (best) | top-5 | vs KD |" + (" teacher outputs |" if cached else ""),
        "|---|---|---|---|---|" + ("---|" if cached else ""),
    ]
    for method, r in results.items():
        delta = "" if kd is None or method == "kd" else f"{r['top1'] - kd:+.2f}"
        row = f"| {method} | {r['top1']:.2f} | {r['best_top1']:.2f} | {r['top5']:.2f} | {delta} |"
        lines.append(row + (f" {r.get('teacher_outputs') or '–'} |" if cached else ""))
    return "\n".join(lines) + "\n"


def validate_sweep_argv(argv: list[str], extra: dict[str, Any]) -> None:
    """Check a sweep's arguments (config, types, every method name) without loading anything."""
    overrides = parse_overrides(argv, extra=extra)
    methods = str(overrides.pop("methods", DEFAULT_METHODS)).split(",")
    base = load_config(overrides.pop("config", None), method_overrides(overrides, "vanilla"))
    for method in (m.strip() for m in methods if m.strip()):
        resolve_method(method, base.loss_overrides)


SWEEP_OPTIONS = {"methods": (str, DEFAULT_METHODS, "comma-separated methods to run, one run folder each")}


def sweep_from_argv(argv: list[str], prog: str = "sweep.py") -> int:
    """The sweep's command line. Bad input (the config, a method, a run folder; each method's data and models as
    its turn comes) is one line and exit status 2; an exception while a method trains keeps its traceback."""
    if wants_help(argv):
        print_help(prog, argv, extra=SWEEP_OPTIONS)
        return 0
    configure_logging()
    git_commit()  # cached: every run of the sweep records the code it started with
    command = " ".join([prog, *argv])
    try:
        overrides = parse_overrides(argv, extra={name: hint for name, (hint, _, _) in SWEEP_OPTIONS.items()})
        methods = str(overrides.pop("methods", DEFAULT_METHODS)).split(",")
        root, base, configs, done = plan_sweep(overrides.pop("config", None), [m.strip() for m in methods if m.strip()],
                                               overrides)
    except BAD_INPUT_ERRORS as err:
        report_error(prog, err)
        return 2
    rows: dict[str, RunResults] = {}
    for method, cfg in configs.items():
        if method in done:
            rows[method] = done[method]
            continue
        try:
            experiment = prepare_experiment(cfg)
        except BAD_INPUT_ERRORS as err:
            report_error(prog, f"{method}: {error_message(err)}")
            return 2
        except KeyboardInterrupt:
            report_error(prog, f"Interrupted while loading {method}, before it trained.", label="interrupted")
            return EXIT_INTERRUPTED
        result, code = run_training(prog, cfg, lambda experiment=experiment: execute_experiment(experiment, command))
        if code:
            return code
        rows[method] = result
    print(sweep_markdown(write_sweep_table(root, base, rows)))
    return 0
