#!/usr/bin/env python
"""The CPU-budget protocol's published teachers (benchmarks/teachers/*-cpu-budget): publish one, evaluate them.

    python recipes/train_teacher.py --config recipes/configs/cpu_budget/teacher_resnet56.yaml --data_dir $DATA
    python benchmarks/teachers.py publish runs/cpu_budget/teachers/resnet56 benchmarks/teachers/resnet56-cpu-budget
    python benchmarks/teachers.py evaluate --data_dir $DATA   # -> ensemble_cpu_budget/teachers_eval.json

``publish`` writes a Hub-ready folder with the weights in fp16 (half the download; ``load_model`` upcasts to
float32); keep the run's results.json beside the protocol's kept runs (teacher_<name>.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
TEACHERS = {"resnet56": ROOT / "benchmarks" / "teachers" / "resnet56-cpu-budget",
            "wrn_16_2": ROOT / "benchmarks" / "teachers" / "wrn_16_2-cpu-budget"}
TEACHERS_EVAL = ROOT / "benchmarks" / "results" / "ensemble_cpu_budget" / "teachers_eval.json"


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


@torch.inference_mode()
def evaluate_teachers(data_dir: Path, teachers: dict[str, Path] = TEACHERS, batch_size: int = 500) -> dict[str, Any]:
    """Top-1 of each published teacher and of their ensemble (the mean of their softmax probabilities, the target
    ensemble KD uses at T = 1) on the CIFAR-100 test set."""
    from torch.utils.data import DataLoader

    from icd_hf.data import build_datasets, collate_batch
    from icd_hf.metrics import count_parameters
    from icd_hf.models import load_model

    _, test_ds, _ = build_datasets("cifar100", data_dir=str(data_dir))
    models = {name: load_model(path, num_classes=100).eval() for name, path in teachers.items()}
    correct = dict.fromkeys([*models, "ensemble"], 0)
    for batch in DataLoader(test_ds, batch_size=batch_size, collate_fn=collate_batch):
        probs = {name: m(pixel_values=batch["pixel_values"]).logits.softmax(-1) for name, m in models.items()}
        probs["ensemble"] = torch.stack(list(probs.values())).mean(0)
        for name, p in probs.items():
            correct[name] += (p.argmax(-1) == batch["labels"]).sum().item()
    return {
        "dataset": f"cifar100 test ({len(test_ds)} images)",
        "top1": {name: round(100 * c / len(test_ds), 2) for name, c in correct.items()},
        "num_parameters": {name: count_parameters(m) for name, m in models.items()},
        "weights": {name: str(path.relative_to(ROOT)) for name, path in teachers.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    pub = sub.add_parser("publish", help="a teacher run as fp16 safetensors + config + card")
    pub.add_argument("run_dir", type=Path)
    pub.add_argument("out_dir", type=Path)
    ev = sub.add_parser("evaluate", help="top-1 of each published teacher and of their ensemble")
    ev.add_argument("--data_dir", type=Path, required=True, help="the cifar-100-python folder")
    args = parser.parse_args(argv)
    if args.command == "publish":
        print(export_teacher(args.run_dir, args.out_dir))
    else:
        TEACHERS_EVAL.parent.mkdir(parents=True, exist_ok=True)
        TEACHERS_EVAL.write_text(json.dumps(evaluate_teachers(args.data_dir), indent=2) + "\n")
        print(TEACHERS_EVAL.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
