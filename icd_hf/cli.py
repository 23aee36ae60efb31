"""The ``icd-hf`` command line: one argparse sub-command per task.

    icd-hf train-teacher --config recipes/configs/teachers/wrn_40_2.yaml [--field value ...]
    icd-hf distill --config recipes/configs/pairs/wrn_40_2__wrn_16_2.yaml --method icd+kd [--field value ...]
    icd-hf sweep --config ... --methods kd,crd+kd,icd+kd
    icd-hf launch --num_processes 2 --multi_gpu distill --config ... (validated here, then accelerate launch)
    icd-hf export RUN_DIR --out DIR [--hub_model_id org/name] [--onnx [--int8]]
    icd-hf push RUN_DIR --hub_model_id org/name [--private] [--dry_run]
    icd-hf convert FILE.pth --out DIR [--model NAME]   (RepDistiller/mdistiller teachers -> save_pretrained folder)

A sub-command is a function that configures its parser and returns the function that runs it; adding one is
decorating such a function with ``@subcommand("name", help=...)`` in this module.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

Runner = Callable[[argparse.Namespace], int]
_SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], Runner]]] = {}


def subcommand(name: str, help: str) -> Callable:
    """Register ``configure(parser) -> runner`` as the sub-command ``name``; ``runner(args)`` returns an exit code."""

    def decorator(configure: Callable[[argparse.ArgumentParser], Runner]) -> Callable:
        if name in _SUBCOMMANDS:
            raise ValueError(f"icd-hf sub-command {name!r} is defined twice")
        _SUBCOMMANDS[name] = (help, configure)
        return configure

    return decorator


def _add_export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--paper_dir", default=None,
                        help="folder with the paper's CSV tables (default: <repo>/../shared/paper when present)")
    parser.add_argument("--teacher_hub_id", default=None,
                        help="the teacher's Hub id for the card's base_model, if results.json has a local path")
    parser.add_argument("--no_latency", action="store_true",
                        help="do not time the student/teacher (nor the ONNX models) on this CPU for the card")
    parser.add_argument("--onnx", action="store_true",
                        help="also write model.onnx, checked against PyTorch and measured on the run's evaluation set")
    parser.add_argument("--int8", action="store_true",
                        help="with --onnx: also write model_int8.onnx (static int8, calibrated on training images)")
    parser.add_argument("--data_dir", default=None,
                        help="where the run's data is, for --onnx, when not where results.json says")


@subcommand("export", help="write a run as a Hub-ready folder (weights, code, processor, card)")
def _configure_export(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("run_dir", type=Path, help="run directory with student/ and results.json")
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    parser.add_argument("--hub_model_id", default=None, help="org/name the card's usage snippet loads from")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export at --out")
    _add_export_options(parser)

    def run(args: argparse.Namespace) -> int:
        from .hub import export_for_hub

        out = export_for_hub(
            args.run_dir, args.out, hub_model_id=args.hub_model_id, paper_dir=args.paper_dir,
            teacher_hub_id=args.teacher_hub_id, measure_latency=not args.no_latency, overwrite=args.overwrite,
            onnx=args.onnx, int8=args.int8, data_dir=args.data_dir,
        )
        print(f"Exported {args.run_dir} to {out}")
        return 0

    return run


@subcommand("push", help="export a run (or push an exported folder) to the Hugging Face Hub")
def _configure_push(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("run_dir", type=Path, help="run directory, or a folder written by `icd-hf export`")
    parser.add_argument("--hub_model_id", required=True, help="target model repository, org/name")
    parser.add_argument("--out", type=Path, default=None, help="export folder (default RUN_DIR/hub_export)")
    parser.add_argument("--token", default=None, help="Hub token (default: `hf auth login` / HF_TOKEN)")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--commit_message", default=None)
    parser.add_argument("--dry_run", action="store_true", help="export and list what would be uploaded; no network")
    _add_export_options(parser)

    def run(args: argparse.Namespace) -> int:
        from .hub import prepare_export, push_to_hub, validate_hub_model_id

        validate_hub_model_id(args.hub_model_id)
        common = dict(out_dir=args.out, paper_dir=args.paper_dir, teacher_hub_id=args.teacher_hub_id,
                      measure_latency=not args.no_latency, onnx=args.onnx, int8=args.int8, data_dir=args.data_dir)
        if args.dry_run:
            folder = prepare_export(args.run_dir, args.hub_model_id, **common)
            print(f"Dry run: would upload {folder} to https://huggingface.co/{args.hub_model_id}:")
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                print(f"  {path.relative_to(folder)}  ({path.stat().st_size} bytes)")
            return 0
        url = push_to_hub(args.run_dir, args.hub_model_id, token=args.token, private=args.private,
                          commit_message=args.commit_message, **common)
        print(f"Pushed to {url}")
        return 0

    return run


@subcommand("convert", help="turn a .pth checkpoint (RepDistiller's ckpt_epoch_240.pth) into a Hub-ready folder")
def _configure_convert(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("file", type=Path, help="{'model': state_dict, 'epoch', 'accuracy', ...} (RepDistiller, "
                        "mdistiller, the ICD/DCD code) or a bare state dict")
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    parser.add_argument("--model", default=None, help="zoo architecture the file holds (default: recognised)")
    parser.add_argument("--dataset", default="cifar100",
                        help="what it was trained on: normalisation and class names (default cifar100)")
    parser.add_argument("--image_size", type=int, default=None, help="input side (default: the dataset's)")
    parser.add_argument("--mean", type=float, nargs=3, default=None, help="normalisation mean (default: the dataset's)")
    parser.add_argument("--std", type=float, nargs=3, default=None, help="normalisation std (default: the dataset's)")
    parser.add_argument("--hub_model_id", default=None, help="org/name the card's usage snippet loads from")
    parser.add_argument("--license", default="other", help="license id of the weights (default: other)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export at --out")

    def run(args: argparse.Namespace) -> int:
        from .hub.convert import convert_checkpoint

        out = convert_checkpoint(
            args.file, args.out, architecture=args.model, dataset=args.dataset, image_size=args.image_size,
            mean=args.mean, std=args.std, hub_model_id=args.hub_model_id, license=args.license,
            overwrite=args.overwrite, command=_convert_command(args),
        )
        from .runs import RunResults

        record = RunResults.read(out)
        source = (record.hub_export or {}).get("converted_from") or {}
        print(f"Converted {args.file} ({record.student.name}, epoch {source.get('epoch', '?')}, recorded top-1 "
              f"{source.get('accuracy', '?')}) to {out}; publish it with `icd-hf push {out} --hub_model_id org/name`")
        return 0

    return run


def _convert_command(args: argparse.Namespace) -> str:
    """The convert command for the card, with file names only: a local path names nothing on the Hub."""
    parts = ["icd-hf convert", args.file.name, "--out", args.out.name]
    parts += ["--model", args.model] if args.model else []
    parts += ["--dataset", args.dataset] if args.dataset != "cifar100" else []
    return " ".join(parts)


def _run_recipe(argv: list[str], prog: str, force_method: str | None = None) -> int:
    from .cli_utils import run_from_argv

    text = _RECIPES[prog.split()[-1]][0]
    return run_from_argv(argv, prog=prog, force_method=force_method, description=text[0].upper() + text[1:] + ".")


def _run_sweep(argv: list[str]) -> int:
    from .sweep import sweep_from_argv

    return sweep_from_argv(argv, prog="icd-hf sweep")


# Config-driven commands take `--config FILE` plus free-form `--field value` overrides, which argparse cannot
# declare up front: they get the raw arguments (same as recipes/distill.py, train_teacher.py, sweep.py).
_RECIPES: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "train-teacher": ("train a teacher from a YAML config (recipes/train_teacher.py)",
                      lambda argv: _run_recipe(argv, "icd-hf train-teacher", force_method="vanilla")),
    "distill": ("distil a student from a YAML config (recipes/distill.py)",
                lambda argv: _run_recipe(argv, "icd-hf distill")),
    "sweep": ("run several methods on one pair and tabulate them (recipes/sweep.py)", _run_sweep),
}


LAUNCH_USAGE = """usage: icd-hf launch [ACCELERATE_LAUNCH_OPTIONS ...] {train-teacher,distill,sweep} [--config FILE]
                     [--FIELD VALUE ...]

Validate a recipe's arguments here (types, fields, method, a different run in output_dir), then run it under
`accelerate launch` with the given options (e.g. --num_processes 2 --multi_gpu, --cpu, --mixed_precision bf16).
A bad config fails before anything is launched; an error inside the launched run is printed again after the
launcher's own report, so the project's one-line error is the last line either way."""


def _launch(argv: list[str]) -> int:
    import os
    import subprocess
    import tempfile

    from .cli_utils import BAD_INPUT_ERRORS, ERROR_FILE_ENV, report_error, validate_recipe_argv, wants_help

    split = next((i for i, a in enumerate(argv) if a in _RECIPES), None)
    if split is None:
        print(LAUNCH_USAGE, file=sys.stdout if wants_help(argv) else sys.stderr)
        return 0 if wants_help(argv) else 2
    launcher_args, recipe, recipe_argv = argv[:split], argv[split], argv[split + 1:]
    if wants_help(recipe_argv):
        return _RECIPES[recipe][1](recipe_argv)
    prog = f"icd-hf launch {recipe}"
    try:
        if recipe == "sweep":
            from .sweep import SWEEP_OPTIONS, validate_sweep_argv

            validate_sweep_argv(recipe_argv, extra={k: v[0] for k, v in SWEEP_OPTIONS.items()})
        else:
            validate_recipe_argv(recipe_argv, force_method="vanilla" if recipe == "train-teacher" else None)
    except BAD_INPUT_ERRORS as err:
        report_error(prog, err)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        error_file = os.path.join(tmp, "error.txt")
        command = [sys.executable, "-m", "accelerate.commands.launch", *launcher_args, "-m", "icd_hf.cli", recipe,
                   *recipe_argv]
        code = subprocess.run(command, env={**os.environ, ERROR_FILE_ENV: error_file}).returncode
        if code != 0 and os.path.isfile(error_file):
            sys.stdout.flush()
            print(open(error_file).read().strip(), file=sys.stderr, flush=True)
            recipe_code = f"{error_file}.code"
            return int(open(recipe_code).read()) if os.path.isfile(recipe_code) else 2
    return 0 if code == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    """The ``icd-hf`` parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="icd-hf", description="icd-hf: knowledge distillation, the Hugging Face way.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, _) in _RECIPES.items():
        # Only listed here: `icd-hf NAME --help` is answered by the recipe itself, with every config field.
        subparsers.add_parser(name, help=help_text, description=f"{help_text}; takes --config FILE --field value ...")
    subparsers.add_parser("launch", help="validate a recipe's config, then run it under `accelerate launch`")
    for name, (help_text, configure) in _SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(run=configure(sub))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``icd-hf`` console script. Exit codes: 0 done, 1 failed, 2 bad arguments/input, 130
    interrupted."""
    from .cli_utils import ERROR_FILE_ENV, configure_logging
    from .hub import HubPublishError

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in _RECIPES:
        code = _RECIPES[argv[0]][1](argv[1:])
        error_file = os.environ.get(ERROR_FILE_ENV)
        if code and error_file and os.path.isfile(error_file):
            # Under `icd-hf launch`: the launcher exits with the recipe's own code (2 bad input, 130 Ctrl-C, 1 a
            # failed run), which accelerate's launcher does not pass on.
            with open(f"{error_file}.code", "w") as f:
                f.write(str(code))
        return code
    if argv and argv[0] == "launch":
        return _launch(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(logging.INFO if args.verbose else logging.WARNING)
    try:
        return args.run(args)
    except HubPublishError as err:
        print(f"icd-hf {args.command}: error: {err}", file=sys.stderr)
        return 1
    except (ValueError, KeyError, FileNotFoundError, FileExistsError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"icd-hf {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
