#!/usr/bin/env python
"""Logit-correlation analysis (paper figure 1, after CRD's figure 2): teacher vs. students on a test set.

    python recipes/correlation.py --teacher runs/teachers/wrn_40_2 \\
        --students runs/wrn_40_2__wrn_16_2_kd runs/wrn_40_2__wrn_16_2_crd runs/wrn_40_2__wrn_16_2_icd \\
        --labels KD CRD ICD --dataset cifar100 --data_dir /tmp/data/cifar-100-python --out results/correlation

For each student, the difference between its and the teacher's class-logit Pearson correlation matrices over
the test set. Writes to ``--out``: ``correlation.json`` (mean/max absolute difference per student, the models'
top-1 on the set), ``correlation_<label>.png`` per student, ``correlation_all.png`` with every student side by
side on one colour scale, and ``correlation_matrices.safetensors`` (teacher matrix and every difference) to
re-plot without re-running the models. Logits are cached under ``--cache_dir``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from icd_hf.evaluation import correlation_difference, extract_outputs, plot_correlation_differences
from icd_hf.evaluation.loading import load_eval_datasets, load_eval_model

logger = logging.getLogger("correlation")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="correlation.py", description=__doc__.split("\n")[1],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--teacher", required=True, help="run directory, save_pretrained folder or Hub id")
    parser.add_argument("--students", nargs="+", required=True, help="one or more students (same forms)")
    parser.add_argument("--labels", nargs="+", default=None, help="panel label per student (default: folder names)")
    parser.add_argument("--dataset", default="cifar100")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--split", default="test")
    parser.add_argument("--image_size", type=int, default=0, help="resize images to this side (0: keep)")
    parser.add_argument("--max_eval_samples", type=int, default=None)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--cache_dir", default=".cache/features", help="logit cache folder ('' to disable)")
    parser.add_argument("--vmax", type=float, default=None, help="top of the colour scale (default: largest |diff|)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.students):
        parser.error(f"--labels has {len(args.labels)} entries for {len(args.students)} --students; give one each.")
    return args


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", label).strip("_") or "student"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start = time.time()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    labels = args.labels or [Path(s).name or s for s in args.students]
    if len(set(labels)) != len(labels):
        raise SystemExit(f"Student labels must be unique, got {labels}; pass --labels.")
    _, eval_ds, info = load_eval_datasets(
        args.dataset, data_dir=args.data_dir, image_size=args.image_size or None,
        max_train_samples=1, max_eval_samples=args.max_eval_samples, eval_split=args.split,
    )
    common = dict(keys=("logits",), batch_size=args.batch_size, device=device, cache_path=args.cache_dir or None,
                  num_workers=args.num_workers, progress=not args.no_progress)

    def logits_of(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        model = load_eval_model(name, num_classes=info.num_classes)
        out = extract_outputs(model, eval_ds, desc=f"logits of {name}", **common)
        del model
        return out["logits"], out["labels"]

    def top1(logits: torch.Tensor, targets: torch.Tensor) -> float:
        return 100.0 * float((logits.argmax(dim=1) == targets).float().mean())

    teacher_logits, targets = logits_of(args.teacher)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {
        "teacher": {"model": args.teacher, "top1": top1(teacher_logits, targets)},
        "dataset": {"name": info.name, "split": info.eval_split, "num_samples": int(targets.numel()),
                    "num_classes": info.num_classes},
        "students": {},
    }
    diffs: dict[str, torch.Tensor] = {}
    tensors: dict[str, torch.Tensor] = {}
    for name, label in zip(args.students, labels):
        student_logits, student_targets = logits_of(name)
        if not torch.equal(student_targets, targets):
            raise SystemExit(f"{name} saw the samples in another order than the teacher; the evaluation set changed.")
        result = correlation_difference(teacher_logits, student_logits)
        diffs[label] = result["diff_matrix"]
        tensors[f"diff/{label}"] = result["diff_matrix"].contiguous()
        tensors["teacher_corr"] = result["teacher_corr"].contiguous()
        png = plot_correlation_differences({label: result["diff_matrix"]}, out_dir / f"correlation_{_safe(label)}.png",
                                           vmax=args.vmax, title=f"{label} vs. teacher")
        summary["students"][label] = {
            "model": name,
            "top1": top1(student_logits, targets),
            "mean_abs_diff": result["mean_abs_diff"],
            "mean_abs_diff_offdiag": result["mean_abs_diff_offdiag"],
            "max_abs_diff": result["max_abs_diff"],
            "heatmap": str(png),
        }
        logger.info("%s: mean |corr diff| %.4f (off-diagonal %.4f), top-1 %.2f%%", label, result["mean_abs_diff"],
                    result["mean_abs_diff_offdiag"], summary["students"][label]["top1"])
    summary["side_by_side"] = str(plot_correlation_differences(
        diffs, out_dir / "correlation_all.png", vmax=args.vmax,
        title=f"|corr(student) - corr(teacher)| of class logits, {info.name} {info.eval_split}",
    ))
    save_file(tensors, str(out_dir / "correlation_matrices.safetensors"))
    summary["command"] = " ".join(["python", "recipes/correlation.py", *(sys.argv[1:] if argv is None else argv)])
    summary["wall_time_s"] = round(time.time() - start, 1)
    (out_dir / "correlation.json").write_text(json.dumps(summary, indent=2))
    logger.info("wrote %s", out_dir / "correlation.json")
    return summary


if __name__ == "__main__":
    main()
