"""Shared command-line entry of the recipes: ``--config FILE`` plus ``--field value`` overrides."""

from __future__ import annotations

import json
import logging
import sys

from .config import ConfigError, load_config, parse_overrides

# Bad names, paths, shapes or values in a config: reported as one line, exit status 2.
BAD_INPUT_ERRORS = (ConfigError, KeyError, ValueError, TypeError, FileNotFoundError, ConnectionError, OSError)


def error_message(err: BaseException) -> str:
    # KeyError's str() wraps its message in quotes.
    return err.args[0] if isinstance(err, KeyError) and err.args else str(err)


def run_from_argv(argv: list[str], prog: str, force_method: str | None = None) -> int:
    """Parse ``argv``, run the experiment, print the headline metrics. Returns a process exit code."""
    if not argv or argv[0] in {"-h", "--help"}:
        module = sys.modules.get("__main__")
        print((module.__doc__ if module else None) or f"usage: {prog} --config FILE [--field value ...]")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
        print(f"{prog}: error: {error_message(err)}", file=sys.stderr)
        return 2
    from .experiment import execute_experiment

    results = execute_experiment(experiment, command=" ".join([prog, *argv]))
    print(json.dumps({"output_dir": cfg.output_dir, "method": cfg.method, **results["metrics"]}, indent=2))
    return 0
