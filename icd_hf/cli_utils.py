"""Shared command-line entry of the recipes: ``--config FILE`` plus typed ``--field value`` overrides.

Library code never touches the root logger: the command lines attach one handler to the ``icd_hf`` logger
(``configure_logging``), so other libraries' records (the Hub client's retries...) are printed once, by their own
handlers. Under ``accelerate launch`` / ``torchrun`` only the main process prints the error line and the final
JSON, so N processes do not print N copies.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

from .config import ConfigError, config_help, load_config, parse_overrides
from .runs import git_commit

if TYPE_CHECKING:
    from .config import ExperimentConfig

# Bad names, paths, shapes or values in a config: reported as one line, exit status 2. Only around validation and
# preparation (config, data, models, trainer): once training starts, an exception is a failure or a bug, and keeps
# its traceback (``run_training``).
BAD_INPUT_ERRORS = (ConfigError, KeyError, ValueError, TypeError, FileNotFoundError, ConnectionError, OSError)
# The exit status of a command stopped by Ctrl-C, as shells report one killed by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130
T = TypeVar("T")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def error_message(err: BaseException) -> str:
    # KeyError's str() wraps its message in quotes.
    return err.args[0] if isinstance(err, KeyError) and err.args else str(err)


def is_main_process() -> bool:
    """Rank 0 (or no launcher): the environment says so before any process group exists."""
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) == "0"


def configure_logging(level: int = logging.INFO) -> None:
    """Show icd-hf's own INFO records (what a run resumes from, fast-path choices) on stderr, once.

    A handler on the ``icd_hf`` logger, not ``logging.basicConfig``: a root handler would print every other
    library's records a second time next to their own handlers.
    """
    package_logger = logging.getLogger("icd_hf")
    package_logger.setLevel(level)
    if not any(getattr(h, "_icd_hf", False) for h in package_logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._icd_hf = True  # type: ignore[attr-defined]
        package_logger.addHandler(handler)


# Set by `icd-hf launch`: the launched recipe also writes its error line there, so that the launching process can
# print it again after accelerate's / torchrun's own failure report, as the last line.
ERROR_FILE_ENV = "ICD_HF_ERROR_FILE"


def report_error(prog: str, err: BaseException | str, label: str = "error") -> None:
    """Print ``prog: error: message`` (``label`` instead of ``error``) on stderr, from the main process only, as
    the last thing written."""
    if is_main_process():
        sys.stdout.flush()
        message = error_message(err) if isinstance(err, BaseException) else err
        line = f"{prog}: {label}: {' '.join(str(message).split())}"
        print(line, file=sys.stderr, flush=True)
        if os.environ.get(ERROR_FILE_ENV):
            with open(os.environ[ERROR_FILE_ENV], "w") as f:
                f.write(line + "\n")


def validate_recipe_argv(argv: list[str], force_method: str | None = None,
                         extra: Mapping[str, Any] | None = None) -> Any:
    """Everything about a recipe's arguments that can be checked without loading data or models: the config and
    its types, the method, and whether ``output_dir`` holds another run. Returns the config."""
    from .experiment import experiment_fingerprint
    from .losses.presets import resolve_method
    from .runs import plan_resume

    overrides = parse_overrides(argv, extra=extra)
    for name in extra or {}:
        overrides.pop(name, None)
    if force_method is not None:
        if overrides.get("method", force_method) != force_method:
            raise ConfigError(f"this recipe trains with method {force_method!r}; use distill for distillation.")
        overrides["method"] = force_method
    cfg = load_config(overrides.get("config"), overrides)
    method = resolve_method(cfg.method, cfg.loss_overrides)
    from .config import training_defaults
    from .preflight import preflight

    preflight(cfg)
    plan_resume(cfg.output_dir, cfg.resume, experiment_fingerprint(cfg, method), overwrite=cfg.overwrite_output_dir,
                defaults=training_defaults())
    return cfg


def interrupted_message(cfg: ExperimentConfig) -> str:
    """What a Ctrl-C left behind and how to go on: the last complete checkpoint of ``cfg.output_dir`` and the
    command that resumes it (the same one, unless it says ``--resume never`` or ``--overwrite_output_dir``)."""
    from .runs import find_resumable_checkpoint, normalise_resume

    checkpoint = find_resumable_checkpoint(cfg.output_dir)
    if checkpoint is None:
        return f"Training was interrupted before a checkpoint was saved in {cfg.output_dir}; the same command starts " \
               f"it again."
    changes = []
    if cfg.overwrite_output_dir:
        changes.append("without --overwrite_output_dir")
    if normalise_resume(cfg.resume) != "auto":
        changes.append("with --resume auto")
    how = "the same command" + (f" {' and '.join(changes)}" if changes else "")
    return f"Training was interrupted; the last checkpoint is {checkpoint}: {how} resumes from it."


def run_training(prog: str, cfg: ExperimentConfig, train: Callable[[], T]) -> tuple[T | None, int]:
    """``(train(), 0)``, or ``(None, exit status)`` for the two ways a training is stopped on purpose, each
    reported as one line: Ctrl-C (130, with where to resume from) and a non-finite loss (1, with its step and
    terms). Any other exception propagates with its traceback: during training it is no bad input but a failure
    (a full disk) or a bug, and a one-line ``error:`` with exit status 2 would hide it."""
    from .trainer import NonFiniteLossError

    try:
        return train(), 0
    except KeyboardInterrupt:
        report_error(prog, interrupted_message(cfg), label="interrupted")
        return None, EXIT_INTERRUPTED
    except NonFiniteLossError as err:
        report_error(prog, err)
        return None, 1


def _config_arg(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def wants_help(argv: list[str]) -> bool:
    """``-h``/``--help`` anywhere, or no arguments at all."""
    return not argv or any(a in {"-h", "--help"} for a in argv)


def print_help(
    prog: str, argv: list[str], extra: Mapping[str, tuple[Any, Any, str]] | None = None, description: str | None = None
) -> None:
    """Every field with its type, default (from ``--config`` when given) and help, after the script's docstring."""
    main = sys.modules.get("__main__")
    if description is None and os.path.basename(getattr(main, "__file__", None) or "") == prog:
        description = main.__doc__  # the recipe script's docstring: its usage examples
    print(config_help(prog, description=description, config_path=_config_arg(argv), extra=extra))


def command_line(prog: str, argv: list[str]) -> str:
    """The command as typed, for the record and the model card: ``python recipes/distill.py --config ...``
    (``accelerate launch ...`` under a launcher), or ``icd-hf distill ...`` for the console script."""
    if prog.endswith(".py") and sys.argv and sys.argv[0].endswith(".py"):
        script = os.path.relpath(sys.argv[0]) if os.path.isabs(sys.argv[0]) else sys.argv[0]
        launcher = "accelerate launch" if "ACCELERATE_MIXED_PRECISION" in os.environ else "python"
        return shlex.join([*launcher.split(), script, *argv])
    return shlex.join([*prog.split(), *argv])


def run_from_argv(argv: list[str], prog: str, force_method: str | None = None, description: str | None = None) -> int:
    """Parse ``argv``, run the experiment, print the headline metrics. Returns a process exit code."""
    if wants_help(argv):
        print_help(prog, argv, description=description)
        return 0
    configure_logging()
    git_commit()  # cached now: results.json names the code that runs, even if the checkout moves on meanwhile
    try:
        overrides = parse_overrides(argv)
        if force_method is not None:
            if overrides.get("method", force_method) != force_method:
                raise ConfigError(f"{prog} trains with method {force_method!r}; use distill.py for distillation.")
            overrides["method"] = force_method
        cfg = load_config(overrides.get("config"), overrides)
        from .experiment import prepare_experiment

        # Everything that can be wrong with the inputs fails here, before the first training step.
        experiment = prepare_experiment(cfg)
    except BAD_INPUT_ERRORS as err:
        report_error(prog, err)
        return 2
    except KeyboardInterrupt:
        report_error(prog, "Interrupted while loading, before training started.", label="interrupted")
        return EXIT_INTERRUPTED
    from .experiment import execute_experiment

    results, code = run_training(prog, cfg, lambda: execute_experiment(experiment, command=command_line(prog, argv)))
    if code:
        return code
    if experiment.trainer.is_world_process_zero():
        print(json.dumps({"output_dir": cfg.output_dir, "method": cfg.method, **asdict(results.metrics)}, indent=2))
    return 0
