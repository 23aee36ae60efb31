#!/usr/bin/env python
"""Collect runs' results.json into the paper's table layout, next to the published numbers.

    python recipes/results_table.py runs/ --paper-table table1 --out results/table1.md
    python recipes/results_table.py runs/*__* runs/teachers --paper-table table2 --metric best_top1 --out t2.md
    python recipes/results_table.py --paper-table table1 --out paper_table1.md      # the published table alone

RUNS are results.json files, run directories, or folders searched recursively. Runs with no teacher (method
``vanilla``) give the teacher and vanilla-student rows. Writes the markdown to ``--out`` (and stdout), the
numbers (with each method's average relative improvement over KD, CRD's definition) to ``--json`` (default:
``--out`` with ``.json``) and a grouped bar chart to ``--plot`` (default: ``--out`` with ``.png``). The
published table is looked up in ``--paper-dir`` (default ``../shared/paper`` next to the repository) and left
out with a note when it is not there.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from icd_hf.evaluation import (
    build_results_table,
    find_paper_table,
    format_markdown,
    load_paper_table,
    load_run_results,
    plot_results,
    table_to_dict,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="results_table.py", description=__doc__.split("\n")[1],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("runs", nargs="*", help="results.json files, run directories or folders of runs")
    parser.add_argument("--paper-table", dest="paper_table", default=None,
                        help="published table to compare with: table1, table2, table3 or a .csv path")
    parser.add_argument("--paper-dir", dest="paper_dir", default=None, help="folder with the paper's CSVs")
    parser.add_argument("--metric", default="top1", help="metrics key: top1 (last epoch, as the paper) or best_top1")
    parser.add_argument("--dataset", default=None, help="keep runs on this dataset (needed if runs mix datasets)")
    parser.add_argument("--baseline", default="KD", help="method row the arrows and relative improvement refer to")
    parser.add_argument("--digits", type=int, default=2)
    parser.add_argument("--out", default="results.md", help="markdown file to write")
    parser.add_argument("--json", default=None, help="JSON file (default: --out with .json)")
    parser.add_argument("--plot", default=None, help="bar chart PNG (default: --out with .png; 'none' to skip)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    paper = None
    notes = []
    if args.paper_table:
        if find_paper_table(args.paper_table, args.paper_dir) is None:
            notes.append(f"_Published table {args.paper_table!r} not found (looked in "
                         f"{args.paper_dir or 'the default ../shared/paper'}); showing our runs only._")
        else:
            paper = load_paper_table(args.paper_table, args.paper_dir)
    if not args.runs and paper is None:
        raise SystemExit("Nothing to tabulate: pass run directories / results.json files, or --paper-table.")

    sections = [*notes]
    ours = None
    if args.runs:
        results = load_run_results(args.runs)
        ours = build_results_table(results, metric=args.metric, dataset=args.dataset,
                                   columns=paper.columns if paper is not None else None)
        title = f"## Our runs ({len(results)} results, metric `{args.metric}`)"
        if paper is not None:
            title += f", next to {paper.source}"
        sections += [title, format_markdown(ours, paper=paper, baseline=args.baseline, digits=args.digits)]
    if paper is not None:
        sections += [f"## Published: {paper.source}",
                     format_markdown(paper, baseline=args.baseline, digits=args.digits)]
    text = "\n\n".join(sections) + "\n"

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    data = {
        "ours": table_to_dict(ours, baseline=args.baseline) if ours is not None else None,
        "paper": table_to_dict(paper, baseline=args.baseline) if paper is not None else None,
        "metric": args.metric,
        "command": " ".join(["python", "recipes/results_table.py", *(sys.argv[1:] if argv is None else argv)]),
    }
    json_path = Path(args.json) if args.json else out.with_suffix(".json")
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    if args.plot != "none":
        plot_path = Path(args.plot) if args.plot else out.with_suffix(".png")
        plot_results(ours if ours is not None else paper, plot_path,
                     title=f"{'our runs' if ours is not None else paper.source}: top-1 per method and pair")
        data["plot"] = str(plot_path)
    print(text)
    return data


if __name__ == "__main__":
    main()
