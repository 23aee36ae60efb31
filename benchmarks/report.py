#!/usr/bin/env python
"""Every generated report of the project, one command (the declarations are benchmarks/reports/*.py):

    python benchmarks/report.py collect [NAME ...]    # kept results -> summary JSON, README blocks, other outputs
    python benchmarks/report.py check [NAME ...]      # exit 1 when any of them drifted from the kept results
    python benchmarks/report.py run NAME --data_dir /data/cifar-100-python [--commit_to CHECKOUT] [--only KEY ...]

``run`` trains every pending run a report declares (``planned_runs``), in its order, from this checkout: each
finished run's record is kept (and committed at once when ``--commit_to`` is a git checkout), then the report is
collected and committed there. A kept run is skipped; an interrupted one resumes from its last checkpoint. Start it
with ``OMP_WAIT_POLICY=PASSIVE`` on a shared machine (it sets it for its children).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from icd_hf.evaluation.reports import Report, collect, discover, select, stale

ROOT = Path(__file__).resolve().parents[1]
DECLARATIONS = Path(__file__).resolve().parent / "reports"


def _git_commit(repo: Path, paths: Sequence[str], message: str) -> None:
    """Commit ``paths`` (only them) in ``repo``, retrying while another commit holds the index lock."""
    if not (repo / ".git").exists():
        return
    for _ in range(6):
        if subprocess.run(["git", "add", "--", *paths], cwd=repo).returncode == 0 and subprocess.run(
                ["git", "commit", "-q", "-m", message, "--", *paths], cwd=repo).returncode == 0:
            return
        time.sleep(5)
    print(f"commit of {', '.join(paths)} in {repo} failed", file=sys.stderr)


def run_pending(report: Report, data_dir: str, commit_to: Path | None, only: Sequence[str] = ()) -> list[str]:
    """Train every pending run of ``report`` from this checkout; returns the keys it ran."""
    done = []
    repo = (commit_to or ROOT).resolve()
    target = type(report)(repo)  # the same declaration, collected in the checkout that keeps the results
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    for run in report.planned_runs(data_dir):
        kept = repo / run.kept
        if (only and run.key not in only) or kept.is_file():
            continue
        print(f"== {report.name} {run.key}: python {' '.join(run.command)}", flush=True)
        subprocess.run([sys.executable, *run.command], cwd=ROOT, env=env, check=True)
        done.append(run.key)
        kept.parent.mkdir(parents=True, exist_ok=True)
        if run.result:
            shutil.copyfile(ROOT / run.output_dir / run.result, kept)
        elif ROOT / run.kept != kept:
            shutil.copyfile(ROOT / run.kept, kept)
        _git_commit(repo, [run.kept], f"{report.name}: {run.kept}")
        try:
            written = collect(target)
        except Exception:  # noqa: BLE001 - a report bug must not stop hours of runs; the run is kept
            traceback.print_exc()
            print(f"collect {report.name} failed in {repo}: fix it, then `python benchmarks/report.py collect`",
                  file=sys.stderr)
            continue
        if written:
            _git_commit(repo, [str(p.relative_to(repo)) for p in written], f"{report.name}: summary and README")
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("collect", "write every out-of-date generated file"),
                            ("check", "exit 1 when a generated file drifted from its kept results")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("names", nargs="*", help="reports (default: all)")
    run = sub.add_parser("run", help="train every pending run of a report, keeping and committing each")
    run.add_argument("name")
    run.add_argument("--data_dir", required=True, help="the folder holding the cifar-100-python pickles")
    run.add_argument("--commit_to", type=Path, default=None, help="the checkout to keep and commit results in")
    run.add_argument("--only", nargs="*", default=(), help="run keys to run (default: every pending one)")
    args = parser.parse_args(argv)
    reports = discover(DECLARATIONS, ROOT)
    try:
        chosen = select(reports, [args.name] if args.command == "run" else args.names)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.command == "run":
        run_pending(chosen[0], args.data_dir, args.commit_to, args.only)
        return 0
    if args.command == "collect":
        for report in chosen:
            for path in collect(report):
                print(f"wrote {path.relative_to(ROOT)}")
        return 0
    problems = [f"{report.name}: {p}" for report in chosen for p in stale(report)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("run `python benchmarks/report.py collect`", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
