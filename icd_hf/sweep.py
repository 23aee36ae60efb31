"""One teacher->student pair, many methods: the comparison users run first."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from .cli_utils import error_message
from .config import ConfigError, load_config, parse_overrides
from .experiment import run_experiment
from .losses.presets import resolve_method
from .runs import RESULTS_NAME

DEFAULT_METHODS = (
    "vanilla,kd,fitnet,at,sp,cc,vid,rkd,pkt,ab,ft,fsp,nst,crd,crd+kd,icd,icd+kd"
)


def run_sweep(config_path: str | None, methods: list[str], overrides: dict[str, Any]) -> dict[str, Any]:
    """Run ``methods`` (skipping those whose ``results.json`` exists) and return the collected table."""
    base = load_config(config_path, {**overrides, "method": "vanilla"})
    for method in methods:  # fail on a typo before hours of training, not after
        resolve_method(method, base.loss_overrides if method != "vanilla" else None)
    root = Path(base.output_dir)
    rows: dict[str, Any] = {}
    for method in methods:
        out = root / method.replace("+", "_")
        results_file = out / RESULTS_NAME
        if results_file.is_file():
            rows[method] = json.loads(results_file.read_text())
            continue
        cfg = load_config(config_path, {**overrides, "method": method})
        rows[method] = run_experiment(replace(cfg, output_dir=str(out)), command=f"sweep {method}")
    table = {
        "teacher": base.teacher,
        "student": base.student,
        "dataset": base.dataset,
        "results": {
            m: {"top1": r["metrics"]["top1"], "best_top1": r["metrics"]["best_top1"], "top5": r["metrics"]["top5"]}
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


def sweep_from_argv(argv: list[str]) -> int:
    try:
        overrides = parse_overrides(argv)
        methods = str(overrides.pop("methods", DEFAULT_METHODS)).split(",")
        table = run_sweep(overrides.pop("config", None), [m.strip() for m in methods if m.strip()], overrides)
    except (ConfigError, KeyError, FileNotFoundError) as err:
        print(f"sweep.py: error: {error_message(err)}", file=sys.stderr)
        return 2
    print(sweep_markdown(table))
    return 0
