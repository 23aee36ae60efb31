#!/usr/bin/env python
"""The CPU-budget protocol on real CIFAR-100 (``recipes/configs/cpu_budget/``): publish its teacher, collect its runs.

    python benchmarks/cpu_budget.py export-teacher runs/cpu_budget/teachers/resnet56 \
        benchmarks/teachers/resnet56-cpu-budget

``benchmarks/cpu_budget.sh`` runs the whole protocol. Each finished run's ``results.json`` is kept as
``benchmarks/results/cifar100_cpu_budget/<name>.json``, so no number is typed by hand.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export-teacher", help="publish a teacher run as fp16 safetensors + config + card")
    exp.add_argument("run_dir", type=Path)
    exp.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    print(export_teacher(args.run_dir, args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
