"""Every quick-start number in README.md and model_cards/examples/ comes from benchmarks/results/quickstart.json
(through the ``quickstart`` report; its drift test is in tests/test_reports.py)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from icd_hf.evaluation.reports import discover

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "quickstart.json"
REPORT = discover(ROOT / "benchmarks" / "reports", ROOT)["quickstart"]
DECLARATION = sys.modules[type(REPORT).__module__]


def _readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    start, end = text.index(REPORT.begin), text.index(REPORT.end)
    return text[start:end]


def test_readme_table_is_the_results_file():
    summary = json.loads(RESULTS.read_text())
    rows = re.findall(r"^\| (.+?) \| ([\d,]+) \| ([\d.]+) \| ([\d.]+) \| (\d+) s \|$", _readme_block(), re.M)
    expected = [("teacher", "teacher"), ("vanilla", "vanilla student"), ("distilled", "student")]
    assert len(rows) == len(expected)
    for (key, label), (name, params, top1, top5, seconds) in zip(expected, rows):
        run = summary["runs"][key]
        assert label in name and run["student"]["name"] in name
        assert int(params.replace(",", "")) == run["student"]["num_parameters"]
        assert (float(top1), float(top5)) == (round(run["metrics"]["top1"], 2), round(run["metrics"]["top5"], 2))
        assert int(seconds) == round(run["wall_time_s"])
    assert f"one image is {100 / summary['runs']['teacher']['dataset']['num_eval']:.2f} points" in _readme_block()


def test_example_cards_are_the_results_file():
    summary = json.loads(RESULTS.read_text())
    for key in ("teacher", "distilled"):
        run = summary["runs"][key]
        folder = ROOT / "model_cards" / "examples" / DECLARATION.example_dirname(run)
        assert json.loads((folder / "results.json").read_text()) == run
        card = (folder / "README.md").read_text()
        assert f"value: {round(run['metrics']['top1'], 4)}" in card and f"**{run['metrics']['top1']:.2f}**" in card
