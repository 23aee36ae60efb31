"""Experiment configs: one YAML per experiment, any field overridable from the command line.

A config is a flat mapping of the ``ExperimentConfig`` fields plus a ``training:`` mapping of
``DistillationTrainingArguments`` fields. On the command line, ``--student resnet8`` or
``--training.learning_rate 0.01`` override a field (values are parsed as YAML: ``--training.lr_milestones
[150,180,210]``). Unknown fields are errors that list the valid ones, so a typo never trains the wrong thing.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override that cannot describe a valid experiment."""


@dataclass
class ExperimentConfig:
    """One distillation (or teacher-training) experiment.

    Attributes:
        student: zoo name (``wrn_16_2``), ``timm/<name>``, or a directory/Hub id to start from.
        teacher: zoo name of the teacher architecture (for records and cards); ``None`` for teacher training.
        teacher_checkpoint: directory or Hub id with the trained teacher's weights (``save_pretrained``
            layout, e.g. a ``train_teacher.py`` run's ``student/`` folder). Required by every method but
            ``vanilla``.
        method: ``vanilla``, ``kd``, ``icd``, ``icd+kd``, ``crd+kd``... (see ``icd_hf.losses.presets``).
        loss_overrides: per-term weights/hyper-parameters, e.g. ``{icd: {invariance_weight: 0.3}}``.
        dataset: ``cifar100``, ``digits``, ``stl10``, ``tiny-imagenet``, a Hub id or a local path.
        data_dir: local copy of the dataset (the original CIFAR pickles, an image folder, ``save_to_disk``).
        image_size: resize inputs to this side (``None``: the dataset's native size).
        train_augment: random crop + flip on the training set.
        max_train_samples / max_eval_samples: truncate the splits (smoke tests).
        output_dir: where checkpoints, the exported student and ``results.json`` go.
        resume: ``auto`` (latest complete checkpoint in ``output_dir`` if any), a checkpoint path, or ``None``.
        fast_path: keep the dataset on the accelerator as uint8 and augment there (see ``icd_hf.fast``).
        push_to_hub / hub_model_id / hub_private: publish the student at the end (``icd_hf.hub``).
        baselines: known accuracies for the model card (``vanilla_top1``, ``kd_top1``).
        training: ``DistillationTrainingArguments`` fields.
    """

    student: str = "wrn_16_2"
    teacher: str | None = None
    teacher_checkpoint: str | None = None
    method: str = "icd+kd"
    loss_overrides: dict[str, Any] = field(default_factory=dict)
    dataset: str = "cifar100"
    data_dir: str | None = None
    image_size: int | None = None
    train_augment: bool = True
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    output_dir: str = "runs/experiment"
    resume: str | None = "auto"
    fast_path: bool = False
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private: bool = False
    baselines: dict[str, float] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(ExperimentConfig)}

# The CIFAR-100 recipe of the paper and the CRD benchmark.
PAPER_TRAINING = {
    "num_train_epochs": 240,
    "per_device_train_batch_size": 64,
    "per_device_eval_batch_size": 256,
    "learning_rate": 0.05,
    "lr_milestones": [150, 180, 210],
    "lr_decay_rate": 0.1,
    "weight_decay": 5e-4,
    "optim": "sgd",
    "optim_args": "momentum=0.9",
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "save_total_limit": 2,
    "logging_steps": 50,
    "report_to": "none",
}


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """``["--a", "1", "--training.b=2", "--flag"]`` -> ``{"a": 1, "training.b": 2, "flag": True}``."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise ConfigError(f"Unexpected argument {arg!r}: overrides look like --field value or --field=value.")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            out[key] = _parse_value(value)
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            out[key] = _parse_value(argv[i + 1])
            i += 2
        else:
            out[key] = True
            i += 1
    return out


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    target = data
    for part in parts[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ConfigError(f"Cannot set {key!r}: {part!r} is not a mapping.")
    target[parts[-1]] = value


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Read a YAML config (``_base_: other.yaml`` inherits), apply ``overrides`` and validate."""
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_yaml(Path(path))
    for key, value in (overrides or {}).items():
        key = key.replace("-", "_")
        if key == "config":
            continue
        _set_dotted(data, key, value)
    return config_from_dict(data)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist (see recipes/configs/ for the shipped ones).")
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config fields, got {type(data).__name__}.")
    base = data.pop("_base_", None)
    if base is not None:
        merged = _read_yaml(path.parent / base)
        training = {**merged.get("training", {}), **data.get("training", {})}
        merged.update(data)
        merged["training"] = training
        data = merged
    return data


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        close = {n: difflib.get_close_matches(n, sorted(_FIELDS), n=1) for n in unknown}
        hints = ", ".join(f"{n!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for n, c in close.items())
        raise ConfigError(f"Unknown config field(s) {hints}. Valid fields: {', '.join(sorted(_FIELDS))}.")
    cfg = ExperimentConfig(**data)
    validate_training_fields(cfg.training)
    if cfg.method.lower() != "vanilla" and not cfg.teacher_checkpoint:
        raise ConfigError(
            f"Method {cfg.method!r} needs a trained teacher: set `teacher_checkpoint` to a directory or Hub id "
            f"(train one with recipes/train_teacher.py), or use method 'vanilla'."
        )
    if cfg.push_to_hub and not cfg.hub_model_id:
        raise ConfigError("push_to_hub is set but hub_model_id is not: pass --hub_model_id org/name.")
    return cfg


def validate_training_fields(training: dict[str, Any]) -> None:
    from .trainer import DistillationTrainingArguments

    valid = {f.name for f in dataclasses.fields(DistillationTrainingArguments) if f.init}
    unknown = sorted(set(training) - valid)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(valid), n=3)
            hints.append(f"{name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise ConfigError(
            f"Unknown training field(s) {', '.join(hints)}: `training:` takes DistillationTrainingArguments "
            f"fields (transformers.TrainingArguments plus lr_milestones, lr_decay_rate, init_epochs...)."
        )
