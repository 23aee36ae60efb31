"""The CPU throughput of the three training paths (benchmarks/throughput.py writes the measurement; this renders it).

The summary is the measurement file itself: ``python benchmarks/throughput.py ... --json
benchmarks/results/throughput_cpu.json`` writes it, then ``python benchmarks/report.py collect throughput_cpu``.
"""

from __future__ import annotations

from typing import Any

from icd_hf.evaluation.reports import Report

# The phases of a fast-path step that benchmarks/throughput.py --cost_split times, in its order.
COST_PHASES = ("data", "teacher", "student_forward", "losses", "backward", "optimizer")
PATH_NAMES = {"a": "(a) fast path", "a_cached": "(a) cached teacher", "b": "(b) Trainer", "c": "(c) reference"}


def cost_split_table(splits: dict[str, dict[str, float]]) -> str:
    """``{row: {phase: ms}}`` as a markdown table with each phase's share of the row's total."""
    lines = ["| pair method | " + " | ".join(COST_PHASES) + " | total |", "|---|" + "---:|" * (len(COST_PHASES) + 1)]
    for key, phases in splits.items():
        total = sum(phases.values())
        cells = [f"{phases[p]:.1f} ms ({100 * phases[p] / total:.0f}%)" for p in COST_PHASES]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {total:.1f} ms |")
    return "\n".join(lines)


def readme_summary(report: dict[str, Any]) -> str:
    """images/s per path side by side with the ratios to the reference (and of the cached fast path to the live one,
    when measured), the cost split when measured, and what the numbers were measured on."""
    rows: dict[str, dict[str, float]] = {}
    for r in report["results"]:
        key = f"{r['pair']} {r['method']}" if r.get("pair") else r["method"]
        rows.setdefault(key, {})[r["path"]] = r["images_per_s"]
    paths = [p for p in ("a", "a_cached", "b", "c") if any(p in v for v in rows.values())]
    ratio_paths = [p for p in paths if p != "c"] if "c" in paths else []
    # (numerator, denominator) of each ratio column: every path against the reference, the cache against path a.
    ratio_columns = [(p, "c") for p in ratio_paths] + ([("a_cached", "a")] if {"a", "a_cached"} <= set(paths) else [])
    lines = [
        "| method | " + " | ".join(PATH_NAMES[p] for p in paths) + "".join(f" | {n}/{d}" for n, d in ratio_columns)
        + " |",
        "|---|" + "---:|" * (len(paths) + len(ratio_columns)),
    ]
    for key, ips in rows.items():
        cells = [f"{ips[p]:,.0f} img/s" if p in ips else "–" for p in paths]
        cells += [f"{ips[n] / ips[d]:.2f}" if n in ips and d in ips else "–" for n, d in ratio_columns]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    env, cfg = report["environment"], report["config"]
    facts = [env["device"], f"batch {cfg['batch_size']}", f"{cfg['steps']} timed steps x {cfg.get('repeats', 1)}",
             f"torch {env['torch']}", f"commit `{env['git_commit']}`"]
    if "cpu_bf16" in env:
        facts.append(f"native bf16: {env['cpu_bf16']}")
    if env.get("load_average_1min"):
        facts.append("1-min load average " + " → ".join(f"{v:.1f}" for v in env["load_average_1min"] if v is not None))
    lines += ["", "Measured on " + ", ".join(facts) + "."]
    if report.get("cost_split_ms_per_step"):
        lines += ["", "Where a fast-path step goes (bare loop, phases timed one after another):", "",
                  cost_split_table(report["cost_split_ms_per_step"])]
    cache = cache_reading(report)
    if cache:
        lines += ["", cache]
    return "\n".join(lines)


def cache_reading(report: dict[str, Any]) -> str | None:
    """What the teacher cache gave, against what it can give: skipping the teacher's forward speeds a step up by
    at most 1 / (1 - the teacher's share of it). ``None`` without an ``a_cached`` measurement and a cost split."""
    splits = {k: v for k, v in (report.get("cost_split_ms_per_step") or {}).items() if "(cached teacher)" not in k}
    measured = {k: v["a_cached/a"] for k, v in (report.get("ratios") or {}).items() if "a_cached/a" in v}
    if not splits or not measured:
        return None
    shares = {k: v["teacher"] / sum(v.values()) for k, v in splits.items()}
    logit = [k for k in measured if not k.endswith("crd+kd") and k in shares]
    if not logit:
        return None
    share = [shares[k] for k in logit]
    parts = [f"For kd and icd+kd the teacher's forward is {min(share):.0%}–{max(share):.0%} of a fast-path step here, "
             f"so a teacher cache can make their step at most {1 / (1 - min(share)):.2f}–{1 / (1 - max(share)):.2f}× "
             f"faster (1 / (1 − share), from the bare loop's split); measured on the Trainer path, a_cached/a is "
             f"{min(measured[k] for k in logit):.2f}–{max(measured[k] for k in logit):.2f} for them"]
    crd = [measured[k] for k in measured if k.endswith("crd+kd")]
    if crd:
        parts.append(f", and {min(crd):.2f}–{max(crd):.2f} for crd+kd, whose memory-bank loss dominates its step")
    return "".join(parts) + "."


class ThroughputCpu(Report):
    name = "throughput_cpu"
    summary_file = "benchmarks/results/throughput_cpu.json"
    begin = "<!-- throughput-cpu:begin (python benchmarks/report.py collect throughput_cpu) -->"
    end = "<!-- throughput-cpu:end -->"

    def render(self, summary: dict[str, Any]) -> str:
        return readme_summary(summary)
