"""Shared command-line entry of the recipes: ``--config FILE`` plus ``--field value`` overrides."""

from __future__ import annotations

import json
import logging
import sys

from .config import ConfigError, load_config, parse_overrides


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
    except (ConfigError, KeyError, FileNotFoundError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    from .experiment import run_experiment

    results = run_experiment(cfg, command=" ".join([prog, *argv]))
    print(json.dumps({"output_dir": cfg.output_dir, "method": cfg.method, **results["metrics"]}, indent=2))
    return 0
