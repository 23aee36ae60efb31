"""Two students exported with ``icd-hf export --onnx --int8``: the README's format · top-1 · top-5 · size · latency
tables (issue 21).

Its runs are exports of finished runs, not trainings: the quick start's ICD+KD student (``python
recipes/quickstart.py`` trains it) and the CPU-budget resnet20 ICD+KD student, seed 0 (``python benchmarks/report.py
run cpu_budget`` trains it). Each export's ``results.json`` (the run's record, the measurements under
``hub_export.onnx``) is kept as ``benchmarks/results/onnx_export/<key>.json``; an export not kept yet shows the
commands that make it. When int8 loses more than a point of top-1 the README says why: ``notes.json`` in the same
folder holds that sentence per export, written by whoever read the numbers, and ``collect`` refuses the table
without it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from icd_hf.evaluation.reports import PlannedRun, Report
from icd_hf.hub.onnx_export import int8_loss, onnx_table

KEPT = "benchmarks/results/onnx_export"
NOTES = f"{KEPT}/notes.json"


@dataclass(frozen=True)
class Export:
    """One exported student: the run it reads, where the export goes, whether it needs ``--data_dir``."""

    key: str
    label: str
    run_dir: str
    out_dir: str
    needs_data_dir: bool
    trained_by: str

    def command(self, data_dir: str) -> list[str]:
        extra = ["--data_dir", data_dir] if self.needs_data_dir else []
        return ["-m", "icd_hf.cli", "export", self.run_dir, "--out", self.out_dir, "--onnx", "--int8", "--overwrite",
                *extra]


EXPORTS = (
    Export("quickstart", "The quick start's ICD+KD student (resnet8 on digits)", "runs/quickstart/icd_kd",
           "runs/quickstart/export", False, "python recipes/quickstart.py"),
    Export("cpu_budget", "The CPU-budget ICD+KD student (resnet20 on CIFAR-100, seed 0)",
           "runs/cpu_budget/resnet56__resnet20/icd_kd-seed0", "runs/cpu_budget/export/icd_kd-seed0", True,
           "python benchmarks/report.py run cpu_budget --data_dir /data/cifar-100-python --only icd_kd:0"),
)


def export_summary(results: dict[str, Any], note: str | None) -> dict[str, Any]:
    """What the README shows of one kept export: the run, the ONNX record, the reason for an int8 loss."""
    hub_export = results.get("hub_export") or {}
    onnx = hub_export.get("onnx")
    if not onnx:
        raise ValueError("a kept export has no hub_export.onnx: it was not exported with --onnx --int8.")
    return {"student": results["student"]["name"], "method": results.get("method"),
            "dataset": (results.get("dataset") or {}).get("name"), "run_top1": results["metrics"]["top1"],
            "git_commit": results.get("git_commit"), "icd_hf_version": hub_export.get("icd_hf_version"),
            "onnx": onnx, "note": note}


def export_block(export: Export, summary: dict[str, Any] | None) -> str:
    """The README section of one export: its table and how it was measured, or the commands that measure it."""
    if summary is None:
        return "\n".join([
            f"{export.label}: not exported yet. On an idle machine:", "", "```bash",
            f"{export.trained_by}    # the run, if {export.run_dir} is not there",
            f"python benchmarks/report.py run onnx_export --data_dir /data/cifar-100-python --only {export.key}",
            "```"])
    onnx = summary["onnx"]
    latency = onnx.get("latency") or {}
    facts = []
    if latency.get("measured"):
        load = latency.get("load_average")
        facts.append(f"CPU latency: median of {latency['runs']} timed runs after {latency['warmup']} warm-up runs on "
                     f"{latency['device']}, {latency['threads']} thread(s)"
                     + (f", 1-min load average {load:.1f}" if load is not None else "") + ".")
    int8 = onnx.get("int8") or {}
    if int8:
        calibration = int8.get("calibration")
        facts.append(f"int8: {int8['method']} quantization" + (
            f", calibrated on {calibration['images']} training images (seed {calibration['seed']})." if calibration
            else f" ({int8.get('fallback_reason')})."))
    loss = int8_loss(onnx)
    if loss:
        if not summary.get("note"):
            raise ValueError(f"int8 loses {loss['points']} points of top-1 in the {export.key} export: say why in "
                             f"{NOTES} ({{\"{export.key}\": \"...\"}}), then collect again.")
        facts.append(f"**int8 loses {loss['points']} points of top-1** (its top-1 differs from PyTorch's on "
                     f"{loss['changed']} % of the images): {summary['note']}")
    elif summary.get("note"):
        facts.append(summary["note"])
    lines = [f"{export.label}, run at icd-hf commit `{summary['git_commit']}`, exported by icd-hf "
             f"{summary['icd_hf_version']}; every format on the same {onnx['evaluation']['images']} "
             f"`{onnx['evaluation']['split']}` images:", "", onnx_table(onnx)]
    return "\n".join(lines + (["", " ".join(facts)] if facts else []))


class OnnxExport(Report):
    name = "onnx_export"
    summary_file = "benchmarks/results/onnx_export.json"
    begin = ("<!-- onnx-export:begin: generated by `python benchmarks/report.py collect onnx_export` from "
             "benchmarks/results/onnx_export/; do not edit -->")
    end = "<!-- onnx-export:end -->"

    def planned_runs(self, data_dir: str) -> list[PlannedRun]:
        return [PlannedRun(e.key, e.command(data_dir), e.out_dir, f"{KEPT}/{e.key}.json") for e in EXPORTS]

    def summarise(self) -> dict[str, Any]:
        notes_path = self.path(NOTES)
        notes = json.loads(notes_path.read_text()) if notes_path.is_file() else {}
        exports: dict[str, Any] = {}
        for export in EXPORTS:
            kept = self.path(f"{KEPT}/{export.key}.json")
            exports[export.key] = export_summary(json.loads(kept.read_text()), notes.get(export.key)) \
                if kept.is_file() else None
        return {"exports": exports}

    def render(self, summary: dict[str, Any]) -> str:
        return "\n\n".join(export_block(e, summary["exports"].get(e.key)) for e in EXPORTS)
