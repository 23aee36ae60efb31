#!/usr/bin/env python
"""Quick start: train a teacher, a vanilla student and an ICD+KD student on a small offline dataset.

    python recipes/quickstart.py [--output_dir runs/quickstart] [--teacher_epochs 15] [--training.num_train_epochs 15]
    python recipes/quickstart.py --write_results   # also record the numbers and re-render the docs from them

Runs offline on a CPU (scikit-learn's digits, upscaled to 32x32; a few minutes on an idle recent CPU, up to an
hour on a small shared one) and prints the teacher, vanilla-student and distilled-student accuracies. Any config
field can be overridden as in distill.py. A stage whose folder already holds its finished run (the same
fingerprint) is reused, not trained again: a second run of the same command only prints the table;
``--overwrite_output_dir`` trains every stage again.
``--write_results`` writes ``benchmarks/results/quickstart.json`` (the three runs' results and their logit
correlation with the teacher) and renders README.md's quick-start block and ``model_cards/examples/`` from it
(the ``quickstart`` report of ``benchmarks/report.py``): the only way those numbers change.
"""

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from icd_hf.cli_utils import (
    BAD_INPUT_ERRORS,
    command_line,
    configure_logging,
    print_help,
    report_error,
    run_training,
)
from icd_hf.config import ExperimentConfig, load_config, parse_overrides
from icd_hf.evaluation.reports import collect, discover
from icd_hf.experiment import finished_run, run_experiment
from icd_hf.preflight import check_output_dir
from icd_hf.runs import EXPORT_DIRNAME, RunResults, git_commit, method_dirname

CONFIG = Path(__file__).parent / "configs" / "quickstart.yaml"
# The report that renders the quick start's numbers into the README and model_cards/examples/.
QUICKSTART = discover(Path(__file__).resolve().parents[1] / "benchmarks" / "reports")["quickstart"]
RESULTS_FILE = QUICKSTART.path(QUICKSTART.summary_file)
OPTIONS = {
    "teacher_epochs": (int, 15, "epochs of the teacher (its LR steps at 2/3 and 5/6 of them)"),
    "write_results": (bool, False, f"write {RESULTS_FILE.relative_to(RESULTS_FILE.parents[2])} and re-render the "
                                   "README block and model_cards/examples/ from it"),
}


def logit_correlation(teacher_dir: Path, student_dirs: dict[str, Path], dataset: str) -> dict[str, dict]:
    """Mean |corr(student) - corr(teacher)| of the class logits on the test set (``recipes/correlation.py``)."""
    from icd_hf.evaluation import correlation_difference, extract_outputs
    from icd_hf.evaluation.loading import load_eval_datasets, load_eval_model

    _, eval_ds, info = load_eval_datasets(dataset, max_train_samples=1)

    def logits(folder: Path):  # noqa: ANN202
        model = load_eval_model(str(folder), num_classes=info.num_classes)
        return extract_outputs(model, eval_ds, keys=("logits",), device="cpu", cache_path=None, progress=False)[
            "logits"]

    teacher = logits(teacher_dir)
    out = {}
    for key, folder in student_dirs.items():
        result = correlation_difference(teacher, logits(folder))
        out[key] = {k: round(result[k], 6) for k in ("mean_abs_diff", "mean_abs_diff_offdiag", "max_abs_diff")}
    return out


def run_stage(name: str, cfg: ExperimentConfig, command: str) -> tuple[RunResults | None, int, bool]:
    """``(results, exit status, reused)`` of one stage: its finished run when ``cfg.output_dir`` holds it (said
    in one line), else a new training (Ctrl-C and a non-finite loss are one line each, as in distill.py)."""
    done = finished_run(cfg)
    if done is not None:
        print(f"quickstart.py: the {name} in {cfg.output_dir} is finished (same run): reusing it; "
              f"--overwrite_output_dir trains it again.", flush=True)
        return done, 0, True
    results, code = run_training("quickstart.py", cfg, lambda: run_experiment(cfg, command=command))
    return results, code, False


def main(argv: list[str]) -> int:
    if any(a in {"-h", "--help"} for a in argv):
        print_help("quickstart.py", argv, extra=OPTIONS)
        return 0
    configure_logging()
    start = time.time()
    commit = git_commit()  # the code this process runs (cached: every run records the same)
    # Train times mean little without knowing what else ran: record the load the quick start started under.
    load_at_start = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    try:
        overrides = parse_overrides(argv, extra={name: hint for name, (hint, _, _) in OPTIONS.items()})
        root = Path(overrides.pop("output_dir", "runs/quickstart"))
        teacher_epochs = overrides.pop("teacher_epochs", 15)
        write_results = overrides.pop("write_results", False)
        cfg = load_config(overrides.pop("config", CONFIG), overrides)
        if teacher_epochs < 1:
            raise ValueError(f"--teacher_epochs must be at least 1, got {teacher_epochs}.")
        check_output_dir(root)
    except BAD_INPUT_ERRORS as err:
        report_error("quickstart.py", err)
        return 2
    command = command_line("quickstart.py", argv)
    # The teacher may train for a different number of epochs; its LR steps sit at 2/3 and 5/6 of them.
    teacher_training = {
        **cfg.training,
        "num_train_epochs": teacher_epochs,
        "lr_milestones": [round(teacher_epochs * 2 / 3), round(teacher_epochs * 5 / 6)],
    }
    teacher_cfg = replace(
        cfg, student=cfg.teacher, teacher=None, teacher_checkpoint=None, method="vanilla",
        output_dir=str(root / "teacher"), training=teacher_training,
    )
    teacher, code, teacher_reused = run_stage("teacher", teacher_cfg, command)
    if code:
        return code
    vanilla_cfg = replace(cfg, method="vanilla", output_dir=str(root / "vanilla"))
    vanilla, code, vanilla_reused = run_stage("vanilla student", vanilla_cfg, command)
    if code:
        return code
    distilled_dir = root / method_dirname(cfg.method)
    distilled_cfg = replace(
        cfg,
        teacher_checkpoint=str(root / "teacher" / EXPORT_DIRNAME),
        output_dir=str(distilled_dir),
        baselines={"vanilla_top1": vanilla.metrics.top1},
    )
    distilled, code, distilled_reused = run_stage(f"{cfg.method} student", distilled_cfg, command)
    if code:
        return code
    # A reused stage's training time is its record's, not this process's.
    reused_s = sum(r.wall_time_s or 0.0 for r, reused in ((teacher, teacher_reused), (vanilla, vanilla_reused),
                                                        (distilled, distilled_reused)) if reused)
    summary = {
        "command": command,
        "git_commit": commit,
        "device": teacher.device,
        "total_wall_time_s": round(time.time() - start + reused_s, 1),
        "load_average_at_start": load_at_start,
        "runs": {"teacher": teacher.to_dict(), "vanilla": vanilla.to_dict(), "distilled": distilled.to_dict()},
    }
    print("\n" + QUICKSTART.printed_table(summary))
    print(f"\nThe distilled student is in {distilled_dir / EXPORT_DIRNAME} (save_pretrained format).")
    if write_results:
        summary["correlation"] = logit_correlation(
            root / "teacher" / EXPORT_DIRNAME,
            {"vanilla": root / "vanilla" / EXPORT_DIRNAME, "distilled": distilled_dir / EXPORT_DIRNAME},
            cfg.dataset,
        )
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_FILE.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {RESULTS_FILE}")
        for path in collect(QUICKSTART):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
