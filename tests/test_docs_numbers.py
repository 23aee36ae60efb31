"""Every quick-start number in README.md and model_cards/examples/ comes from benchmarks/results/quickstart.json."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "quickstart.json"


def _render_docs():
    spec = importlib.util.spec_from_file_location("render_docs", ROOT / "recipes" / "render_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _readme_block() -> str:
    docs = _render_docs()
    text = (ROOT / "README.md").read_text()
    start, end = text.index(docs.BEGIN), text.index(docs.END)
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
        folder = ROOT / "model_cards" / "examples" / _render_docs().example_dirname(run)
        assert json.loads((folder / "results.json").read_text()) == run
        card = (folder / "README.md").read_text()
        assert f"value: {round(run['metrics']['top1'], 4)}" in card and f"**{run['metrics']['top1']:.2f}**" in card


def test_render_docs_check_passes_and_catches_drift(tmp_path):
    docs = _render_docs()
    assert docs.render(check=True) == []
    drifted = copy.deepcopy(json.loads(RESULTS.read_text()))
    drifted["runs"]["distilled"]["metrics"]["top1"] += 1.0
    (tmp_path / "quickstart.json").write_text(json.dumps(drifted))
    stale = docs.render(check=True, results_file=tmp_path / "quickstart.json")
    assert str(docs.README) in stale and any(p.endswith("resnet8__icd+kd/results.json") for p in stale)
