#!/usr/bin/env python
"""Quick start: train a teacher, a vanilla student and an ICD+KD student on a small offline dataset.

    python recipes/quickstart.py [--output_dir runs/quickstart] [--teacher_epochs 15] [--training.num_train_epochs 15]

Runs offline on a CPU in a few minutes (scikit-learn's digits, upscaled to 32x32) and prints the teacher,
vanilla-student and distilled-student accuracies. Any config field can be overridden as in distill.py.
"""

import sys
from dataclasses import replace
from pathlib import Path

from icd_hf.config import ConfigError, load_config, parse_overrides
from icd_hf.experiment import run_experiment
from icd_hf.runs import EXPORT_DIRNAME

CONFIG = Path(__file__).parent / "configs" / "quickstart.yaml"


def main(argv: list[str]) -> int:
    try:
        overrides = parse_overrides(argv)
        root = Path(overrides.pop("output_dir", "runs/quickstart"))
        teacher_epochs = int(overrides.pop("teacher_epochs", 15))
        cfg = load_config(overrides.pop("config", CONFIG), overrides)
    except ConfigError as err:
        print(f"quickstart.py: error: {err}", file=sys.stderr)
        return 2
    # The teacher may train for a different number of epochs; its LR steps sit at 2/3 and 5/6 of them.
    teacher_training = {
        **cfg.training,
        "num_train_epochs": teacher_epochs,
        "lr_milestones": [round(teacher_epochs * 2 / 3), round(teacher_epochs * 5 / 6)],
    }
    teacher_cfg = replace(
        cfg, student=cfg.teacher, method="vanilla", output_dir=str(root / "teacher"), training=teacher_training
    )
    teacher = run_experiment(teacher_cfg, command="quickstart teacher")
    vanilla_cfg = replace(cfg, method="vanilla", output_dir=str(root / "vanilla"))
    vanilla = run_experiment(vanilla_cfg, command="quickstart vanilla")
    distilled = run_experiment(
        replace(
            cfg,
            teacher_checkpoint=str(root / "teacher" / EXPORT_DIRNAME),
            output_dir=str(root / cfg.method.replace("+", "_")),
            baselines={"vanilla_top1": vanilla["metrics"]["top1"]},
        ),
        command="quickstart distill",
    )
    rows = [
        (f"teacher ({cfg.teacher})", teacher),
        (f"vanilla student ({cfg.student})", vanilla),
        (f"{cfg.method} student ({cfg.student})", distilled),
    ]
    print(f"\nQuick start on {cfg.dataset} ({teacher['dataset'].get('num_classes')} classes), test accuracy:")
    print("| model | params | top-1 | top-5 | train time |")
    print("|---|---|---|---|---|")
    for name, r in rows:
        m = r["metrics"]
        params = r["student"]["num_parameters"]
        print(f"| {name} | {params:,} | {m['top1']:.2f} | {m['top5']:.2f} | {r['wall_time_s']:.0f} s |")
    export = root / cfg.method.replace("+", "_") / EXPORT_DIRNAME
    print(f"\nThe distilled student is in {export} (save_pretrained format).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
