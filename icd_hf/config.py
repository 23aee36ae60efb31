"""Experiment configs: one YAML per experiment, any field overridable from the command line, every value typed.

A config is a flat mapping of the ``ExperimentConfig`` fields plus a ``training:`` mapping of
``DistillationTrainingArguments`` fields. On the command line, ``--student resnet8`` or
``--training.learning_rate 1e-3`` override a field. Every value - from the YAML file, the command line or
Python - is converted and checked against the field's declared type (``1e-3`` and YAML's ``5e-4`` become
floats, ``--max_train_samples abc`` is an error naming the field), and out-of-range values (a batch size of 0)
are refused, all before anything is loaded. Unknown fields are errors that suggest the closest valid name, so a
typo never trains the wrong thing. ``--help`` lists every field with its type, default and help: the
help comes from the dataclasses' ``metadata["help"]``, as ``transformers.HfArgumentParser`` reads it.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import functools
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

import yaml

from .hub_ids import has_hub_id_form
from .runs import EXPORT_DIRNAME, default_output_dir, method_dirname, resolve_model_dir

if TYPE_CHECKING:
    from .losses.presets import MethodSpec


class ConfigError(ValueError):
    """A config file or override that cannot describe a valid experiment."""


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class ExperimentConfig:
    """One distillation (or teacher-training) experiment. Each field's ``metadata["help"]`` documents it."""

    student: str = field(default="wrn_16_2", metadata=_help(
        "Zoo name (wrn_16_2), timm/<name>, or a directory/Hub id to start from."))
    teacher: str | None = field(default=None, metadata=_help(
        "Zoo name of the teacher architecture (checked against the checkpoint; used for records and cards); "
        "null for teacher training."))
    teacher_checkpoint: str | None = field(default=None, metadata=_help(
        "Directory or Hub id (org/name) with the trained teacher's weights (save_pretrained layout, e.g. a "
        "train_teacher.py run's student/ folder), or a .pth file (RepDistiller/mdistiller's ckpt_epoch_240.pth; "
        "its architecture is `teacher`, else recognised from the file). Required by every method but vanilla."))
    teachers: list[str] = field(default_factory=list, metadata={**_help(
        "Ensemble distillation: two or more teachers instead of teacher/teacher_checkpoint, each a checkpoint "
        "(run folder, save_pretrained folder, Hub id, timm/<name>.<tag>, .pth file) or NAME=CHECKPOINT to check the "
        "checkpoint's architecture; architectures may differ. On the command line: --teacher A --teacher B."),
        "collects": "teacher"})
    teacher_weighting: Literal["uniform", "confidence"] = field(default="uniform", metadata=_help(
        "How an ensemble's teachers are weighted in every loss: uniform, or confidence (CA-MKD, Zhang et al., "
        "ICASSP 2022: a teacher weighs more on a sample the lower its cross-entropy on the true label)."))
    method: str = field(default="icd+kd", metadata=_help(
        "vanilla, kd, icd, icd+kd, crd+kd, ... (a loss name, name+kd, or vanilla; see icd_hf.losses.presets)."))
    loss_overrides: dict[str, Any] = field(default_factory=dict, metadata=_help(
        "Per-term weights/hyper-parameters as a YAML mapping, e.g. '{icd: {invariance_weight: 0.3}}'."))
    dataset: str = field(default="cifar100", metadata=_help(
        "cifar100, digits, stl10, tiny-imagenet, a Hub dataset id or a local path."))
    data_dir: str | None = field(default=None, metadata=_help(
        "Local copy of the dataset (the original CIFAR pickles, an image folder, a save_to_disk folder)."))
    image_size: int | None = field(default=None, metadata=_help(
        "Resize inputs to this side (null: the dataset's native size)."))
    image_column: str | None = field(default=None, metadata=_help(
        "Dataset column holding the images (null: detected, the first datasets.Image() column)."))
    label_column: str | None = field(default=None, metadata=_help(
        "Dataset column holding the labels (null: detected: fine_label, label, labels, or a ClassLabel column)."))
    validation_split: str | None = field(default=None, metadata=_help(
        "Split to evaluate on (null: test, else validation/valid/val/eval, whichever the dataset has)."))
    validation_size: float | None = field(default=0.1, metadata=_help(
        "When the dataset has no evaluation split, split this fraction (or number of rows) off train, with a "
        "fixed seed so a teacher and its students share it; null: such a dataset is an error."))
    ignore_mismatched_sizes: bool = field(default=False, metadata=_help(
        "Give a student checkpoint with another number of classes a new head (fine-tuning a pretrained model, "
        "e.g. train_teacher.py from microsoft/resnet-50). Never for the teacher."))
    teacher_image_size: int | None = field(default=None, metadata=_help(
        "Input side of the teacher (null: its image processor's, else the batch's); each model gets the same "
        "augmented batch resized and renormalised to what it expects."))
    student_image_size: int | None = field(default=None, metadata=_help(
        "Input side of the student (null: its image processor's, else the batch's)."))
    train_augment: bool = field(default=True, metadata=_help("Random crop + horizontal flip on the training set."))
    max_train_samples: int | None = field(default=None, metadata=_help(
        "Keep only the first N training images (smoke runs)."))
    max_eval_samples: int | None = field(default=None, metadata=_help(
        "Keep only the first N evaluation images (smoke runs)."))
    output_dir: str | None = field(default=None, metadata=_help(
        "Run folder (checkpoints, student/, results.json). Default: runs/<teacher>__<student>/<method>[-<tag>], "
        "or runs/teachers/<student>[-<tag>] for a teacher, so that different runs never share a folder."))
    tag: str | None = field(default=None, metadata=_help(
        "Suffix of the run folder, to keep variants of one method apart: runs/<pair>/<method>-<tag> by default, "
        "<output_dir>-<tag> when output_dir is set (by the config or --output_dir)."))
    resume: str | None = field(default="auto", metadata=_help(
        "auto (the latest complete checkpoint of output_dir, if it belongs to this same run), never, or a "
        "checkpoint path."))
    overwrite_output_dir: bool = field(default=False, metadata=_help(
        "Delete the run already in output_dir (checkpoints, student/, results.json) before training."))
    fast_path: bool = field(default=False, metadata=_help(
        "Keep the dataset on the accelerator as uint8 and augment there (see icd_hf.fast)."))
    teacher_cache: str | None = field(default=None, metadata=_help(
        "Folder of cached teacher outputs (fast path; methods whose losses read only the teacher's logits and "
        "pooled feature): each training view's outputs are read from it when present, else computed and written, "
        "so a sweep runs its teacher once. Keyed by the teacher, data, views, seed and precision "
        "(icd_hf.teacher_cache)."))
    push_to_hub: bool = field(default=False, metadata=_help("Publish the student at the end (icd_hf.hub)."))
    hub_model_id: str | None = field(default=None, metadata=_help("org/name of the model repository to push to."))
    hub_private: bool = field(default=False, metadata=_help("Create the Hub repository private."))
    onnx: bool = field(default=False, metadata=_help(
        "At the end, export the student with model.onnx (checked against PyTorch, measured on the evaluation set) "
        "to <output_dir>/hub_export, the folder push_to_hub uploads (icd-hf export --onnx)."))
    int8: bool = field(default=False, metadata=_help(
        "With onnx: also write model_int8.onnx (static int8 quantization, calibrated on training images)."))
    baselines: dict[str, float] = field(default_factory=dict, metadata=_help(
        "Known accuracies for the model card, e.g. '{vanilla_top1: 73.3, kd_top1: 74.9}'."))
    training: dict[str, Any] = field(default_factory=dict, metadata=_help(
        "DistillationTrainingArguments fields (transformers.TrainingArguments plus the recipe's); on the command "
        "line --training.<field> VALUE."))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def teacher_sources(self) -> list[TeacherSource]:
        """The teachers the method distils from, in order: the ``teachers`` of an ensemble, else the one
        ``teacher_checkpoint``; empty when the method needs no teacher."""
        if not self.method_spec().needs_teacher:
            return []
        if self.teachers:
            return [parse_teacher_source(entry) for entry in self.teachers]
        return [TeacherSource(self.teacher, self.teacher_checkpoint)] if self.teacher_checkpoint else []

    @property
    def teacher_label(self) -> str | None:
        """The teacher's name in run folders and records: ``teacher``, or ``a+b`` for an ensemble."""
        if self.teachers:  # also for a method without a teacher: a sweep's vanilla run sits with the ensemble's
            return "+".join(parse_teacher_source(entry).label for entry in self.teachers)
        return self.teacher

    def method_spec(self) -> MethodSpec:
        """The resolved method (``icd_hf.losses.presets``): its terms, weights, and whether it needs a teacher."""
        from .losses.presets import resolve_method

        return resolve_method(self.method, self.loss_overrides)


_FIELDS = {f.name: f for f in dataclasses.fields(ExperimentConfig)}
# A flag given more than once that collects into a list field: --teacher a --teacher b -> teachers: [a, b].
_COLLECTED = {f.metadata["collects"]: name for name, f in _FIELDS.items() if "collects" in f.metadata}


@dataclass(frozen=True)
class TeacherSource:
    """One teacher of a config: its weights (``checkpoint``) and, when given, the architecture they must hold."""

    name: str | None
    checkpoint: str

    @property
    def label(self) -> str:
        """Its name for run folders and logs: ``name``, else the architecture its folder records, else the
        folder's (a run folder's, for its ``student/``) or the Hub repository's name."""
        return self.name or checkpoint_label(self.checkpoint)


def parse_teacher_source(entry: str) -> TeacherSource:
    """``"runs/x/student"`` or ``"resnet56=runs/x/student"`` (a zoo name checked against the checkpoint).

    Raises:
        ConfigError: an empty name or checkpoint around ``=``.
    """
    name, eq, checkpoint = entry.partition("=")
    if not eq:
        return TeacherSource(None, entry.strip())
    if not name.strip() or not checkpoint.strip():
        raise ConfigError(f"Teacher {entry!r}: write CHECKPOINT or NAME=CHECKPOINT (e.g. resnet56=runs/x/student).")
    return TeacherSource(name.strip(), checkpoint.strip())


def checkpoint_label(checkpoint: str) -> str:
    """A teacher's name read from its checkpoint without loading it (see ``TeacherSource.label``)."""
    import json

    path = Path(checkpoint).expanduser()
    if path.is_file() and not (path.parent / "config.json").is_file():
        # A checkpoint file; RepDistiller and mdistiller keep them as save/models/<model>_vanilla/ckpt_epoch_240.pth.
        return path.parent.name.removesuffix("_vanilla") if path.parent.name.endswith("_vanilla") else path.stem
    for folder in (path, path / EXPORT_DIRNAME, *((path.parent,) if path.is_file() else ())):
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            continue
        name = config.get("architecture_name") or config.get("model_name") if isinstance(config, dict) else None
        if name:
            return str(name)
    if path.name == EXPORT_DIRNAME:
        path = path.parent
    return path.name or checkpoint

PAPER_SCHEDULE_FILE = Path(__file__).resolve().parent / "configs" / "cifar100_schedule.yaml"
# The CIFAR-100 schedule of the paper and the CRD benchmark, read from its one copy (PAPER_SCHEDULE_FILE): the
# default of every training field it sets.
PAPER_TRAINING: dict[str, Any] = yaml.safe_load(PAPER_SCHEDULE_FILE.read_text())["training"]


def resolved_training(cfg: ExperimentConfig) -> dict[str, Any]:
    """The training arguments a run of ``cfg`` uses: the paper's schedule, then the config's own values."""
    return {**PAPER_TRAINING, **cfg.training}


# ------------------------------------------------------------------------------------------------ types

@functools.cache
def experiment_hints() -> dict[str, Any]:
    """Declared types of the ``ExperimentConfig`` fields."""
    return typing.get_type_hints(ExperimentConfig)


@functools.cache
def training_fields() -> dict[str, dataclasses.Field]:
    """The settable ``DistillationTrainingArguments`` fields by name."""
    from .trainer import DistillationTrainingArguments

    return {f.name: f for f in dataclasses.fields(DistillationTrainingArguments) if f.init}


@functools.cache
def training_hints() -> dict[str, Any]:
    """Declared types of the ``DistillationTrainingArguments`` fields."""
    from .trainer import DistillationTrainingArguments

    return typing.get_type_hints(DistillationTrainingArguments)


def training_defaults() -> dict[str, Any]:
    """Each training field's default (what an unset field means)."""
    out = {}
    for name, f in training_fields().items():
        if f.default is not dataclasses.MISSING:
            out[name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[name] = f.default_factory()
    return out


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType)


def _members(hint: Any) -> tuple[Any, ...]:
    members = typing.get_args(hint) if _is_union(hint) else (hint,)
    if str in members and any(_is_enum(m) for m in members):
        # TrainingArguments' `IntervalStrategy | str`: the str is the enum's value spelled out, not free text.
        members = tuple(m for m in members if m is not str)
    return members


def _accepts_none(hint: Any) -> bool:
    return hint is Any or type(None) in _members(hint)


def _is_enum(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, enum.Enum)


def _is_list(hint: Any) -> bool:
    return hint is list or typing.get_origin(hint) is list


def _is_dict(hint: Any) -> bool:
    return hint is dict or typing.get_origin(hint) is dict


def accepts_bool(hint: Any) -> bool:
    """Whether a bare ``--flag`` (meaning ``true``) makes sense for the type."""
    return any(m is bool or (typing.get_origin(m) is Literal and any(isinstance(a, bool) for a in
                                                                      typing.get_args(m))) for m in _members(hint))


def accepts_list(hint: Any) -> bool:
    """Whether several command-line words after the flag make one value (``--lr_milestones 150 180 210``)."""
    return any(_is_list(m) for m in _members(hint))


def type_name(hint: Any) -> str:
    """A short human name of a declared type: ``float``, ``int or null``, ``list[float]``, ``{no,steps,epoch}``."""
    if hint is Any:
        return "any"
    if _is_union(hint):
        names = [type_name(m) for m in _members(hint) if m is not type(None)]
        return " or ".join(dict.fromkeys(names)) + (" or null" if _accepts_none(hint) else "")
    if _is_enum(hint):
        return "{" + ",".join(str(m.value) for m in hint) + "}"
    if typing.get_origin(hint) is Literal:
        return "{" + ",".join(str(a).lower() if isinstance(a, bool) else str(a) for a in typing.get_args(hint)) + "}"
    if _is_list(hint):
        args = typing.get_args(hint)
        return f"list[{type_name(args[0])}]" if args else "list"
    if _is_dict(hint):
        return "mapping"
    return getattr(hint, "__name__", str(hint))


_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0"}


class _Mismatch(Exception):
    """A value does not fit one member of a declared type (internal: the caller tries the next member)."""


def _yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise _Mismatch(f"not valid YAML ({str(err).splitlines()[0]})") from None


def _coerce_one(value: Any, hint: Any, name: str) -> Any:
    """Convert ``value`` to the single (non-union) type ``hint`` or raise ``_Mismatch``; ``name`` is the field's,
    for the items of a list or mapping."""
    if hint is Any or hint is object:
        return _yaml(value) if isinstance(value, str) else value
    if hint is type(None):
        if value is None or (isinstance(value, str) and value.strip().lower() in {"null", "~"}):
            return None
        raise _Mismatch
    if _is_enum(hint):
        if isinstance(value, hint):
            return value.value
        choices = [m.value for m in hint]
        if isinstance(value, bool) and ("no" in choices or "yes" in choices):
            value = "yes" if value else "no"  # YAML reads an unquoted `no` as false
        if isinstance(value, str) and value in choices:
            return value
        raise _Mismatch
    if typing.get_origin(hint) is Literal:
        for choice in typing.get_args(hint):
            if value == choice and type(value) is type(choice):
                return choice
            if isinstance(value, str) and isinstance(choice, bool) and value.strip().lower() in (
                    _TRUE if choice else _FALSE):
                return choice
            if isinstance(value, str) and not isinstance(choice, bool) and value == str(choice):
                return choice
        raise _Mismatch
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise _Mismatch
    if hint is int:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                try:
                    number = float(value)
                except ValueError:
                    raise _Mismatch from None
                if number.is_integer():
                    return int(number)
        raise _Mismatch
    if hint is float:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise _Mismatch from None
        else:
            raise _Mismatch
        if not math.isfinite(number):
            # A nan learning rate (or weight) trains to nan weights and still writes results.json: refused here.
            raise _Mismatch("not a finite number")
        return number
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise _Mismatch
    if _is_list(hint):
        args = typing.get_args(hint)
        if isinstance(value, str):
            text = value.strip()
            value = _yaml(text) if text.startswith("[") else [v for v in text.split(",") if v.strip()] \
                if "," in text else [text]
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise _Mismatch
        # Items are named by position (`--training.lr_milestones[1]`), so a bad one names its field.
        return [coerce(v, args[0], f"{name}[{i}]") for i, v in enumerate(value)] if args else value
    if _is_dict(hint):
        if isinstance(value, str):
            value = _yaml(value) if value.strip() else {}
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise _Mismatch
        args = typing.get_args(hint)
        if len(args) == 2:
            return {coerce(k, args[0], f"a key of {name}"): coerce(v, args[1], f"{name}.{k}") for k, v in value.items()}
        return dict(value)
    if isinstance(hint, type) and isinstance(value, hint):
        return value
    raise _Mismatch


def _member_order(hint: Any) -> int:
    # Most specific first: a string that spells a choice, a bool or a number is that, not free text.
    if _is_enum(hint) or typing.get_origin(hint) is Literal:
        return 0
    # A single word for `str | list[str]` stays a string; several words make the list.
    return {bool: 1, int: 2, float: 3, str: 5}.get(hint, 6 if _is_list(hint) else 4)


def coerce(value: Any, hint: Any, name: str) -> Any:
    """``value`` (YAML-typed, a command-line string, or a Python object) as the declared type ``hint``.

    Raises:
        ConfigError: naming the field, the type it takes and the value given.
    """
    members = [m for m in _members(hint) if m is not type(None)]
    if value is None:
        if _accepts_none(hint):
            return None
        raise ConfigError(f"{name} takes {type_name(hint)}, not null.")
    if isinstance(value, str) and _accepts_none(hint) and value.strip().lower() in {"null", "~"}:
        return None
    detail = ""
    for member in sorted(members, key=_member_order):
        try:
            return _coerce_one(value, member, name)
        except _Mismatch as err:
            detail = detail or (f" ({err.args[0]})" if err.args else "")
    if isinstance(value, str) and _accepts_none(hint) and value.strip().lower() == "none":
        return None
    raise ConfigError(f"{name} takes {type_name(hint)}, got {value!r}{detail}.")


# ------------------------------------------------------------------------------------------------ fields

def _close(name: str, choices: list[str]) -> list[str]:
    return difflib.get_close_matches(name, choices, n=3)


def field_hint(key: str, extra: Mapping[str, Any] | None = None) -> Any:
    """The declared type of a dotted config key (``method``, ``training.learning_rate``, ``loss_overrides.icd``).

    Raises:
        ConfigError: an unknown field, with the closest valid names.
    """
    extra = dict(extra or {})
    head, _, rest = key.partition(".")
    if not rest:
        if key in extra:
            return extra[key]
        if key == "config":
            return str
        if key in _FIELDS:
            return experiment_hints()[key]
        valid = sorted({*_FIELDS, *extra, "config"})
        close = [f"training.{key}"] if key in training_fields() else _close(key, valid)
        raise ConfigError(
            f"Unknown config field {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            + f". Valid fields: {', '.join(valid)}; training fields as training.<name> (see --help)."
        )
    if head == "training":
        name, _, deeper = rest.partition(".")
        hints = training_hints()
        if name not in training_fields():
            close = _close(name, sorted(training_fields()))
            raise ConfigError(
                f"Unknown training field(s) {name!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")
                + ": `training:` takes DistillationTrainingArguments fields (transformers.TrainingArguments plus "
                "lr_milestones, lr_decay_rate, init_epochs...); --help lists them."
            )
        return Any if deeper else hints[name]
    if head in _FIELDS and _is_dict(experiment_hints()[head]):
        args = typing.get_args(experiment_hints()[head])
        return args[1] if len(args) == 2 and "." not in rest else Any
    # An unknown head raises here; a known scalar one is refused by ``_check_dotted``.
    return field_hint(head, extra)


def _check_dotted(key: str) -> None:
    head, _, rest = key.partition(".")
    if rest and head in _FIELDS and not _is_dict(experiment_hints()[head]):
        raise ConfigError(f"{head!r} is not a mapping, so {key!r} cannot be set; use --{head} VALUE.")


# ------------------------------------------------------------------------------------------------ command line

def parse_overrides(argv: list[str], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Command-line overrides, each converted to its field's type.

    ``["--method", "crd+kd", "--training.lr_milestones", "150", "180", "--fast_path"]`` ->
    ``{"method": "crd+kd", "training.lr_milestones": [150.0, 180.0], "fast_path": True}``. ``--field=value``
    works too; a bare ``--flag`` is ``true`` for boolean fields only; lists take several words or a YAML list
    (``[150,180]``); mappings a YAML mapping. ``extra`` declares a recipe's own options (``{"methods": str}``).

    Raises:
        ConfigError: an unknown field, a missing or unconvertible value, or a stray word.
    """
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"Unexpected argument {arg!r}: overrides look like --field value or --field=value.")
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        hint = field_hint(key, extra)
        _check_dotted(key)
        i += 1
        if not eq:
            words = []
            while i < len(argv) and not argv[i].startswith("--"):
                words.append(argv[i])
                i += 1
            if len(words) > 1 and not accepts_list(hint):
                raise ConfigError(
                    f"--{key} takes one value ({type_name(hint)}) but got {len(words)}: {' '.join(words)!r} "
                    f"(quote a value that has spaces)."
                )
            if not words:
                if not accepts_bool(hint):
                    raise ConfigError(f"--{key} needs a value ({type_name(hint)}), e.g. --{key} VALUE.")
                value = "true"
            else:
                value = words if len(words) > 1 else words[0]
        if key in _COLLECTED and (key in out or _COLLECTED[key] in out):
            target = _COLLECTED[key]
            earlier = [out.pop(key)] if key in out else []
            out[target] = coerce([*out.get(target, []), *earlier, value], field_hint(target), f"--{key}")
            continue
        out[key] = coerce(value, hint, f"--{key}")
    return out


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    target = data
    for part in parts[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ConfigError(f"Cannot set {key!r}: {part!r} is not a mapping.")
    target[parts[-1]] = value


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """Read a YAML config (``_base_: other.yaml`` inherits), apply ``overrides`` and validate."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_config_file(Path(path))
    if (overrides or {}).get("teachers"):
        # An ensemble given on the command line replaces the config file's single teacher.
        for key in ("teacher", "teacher_checkpoint"):
            if key not in overrides:
                data.pop(key, None)
    for key, value in (overrides or {}).items():
        key = key.replace("-", "_")
        if key == "config":
            continue
        field_hint(key)
        _check_dotted(key)
        if key == "training" and isinstance(value, Mapping):
            data["training"] = {**(data.get("training") or {}), **value}
            continue
        _set_dotted(data, key, value)
    return config_from_dict(data)


def read_config_file(path: Path) -> dict[str, Any]:
    """The raw mapping of a YAML config, its ``_base_`` chain merged (``training:`` merged key by key).

    Raises:
        ConfigError: a missing or malformed file, or a ``_base_`` chain that comes back to a file already in it.
    """
    return _read_config_chain(Path(path), ())


def _read_config_chain(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    # `chain`: the files that inherit from this one, outermost first; a file met again there is a cycle, which
    # would otherwise recurse until Python's RecursionError.
    here = path.resolve()
    if here in chain:
        loop = " -> ".join(str(p) for p in (*chain[chain.index(here):], here))
        raise ConfigError(f"{path} inherits from itself through _base_ ({loop}): remove one of these _base_ entries.")
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist (see recipes/configs/ for the shipped ones).")
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config fields, got {type(data).__name__}.")
    bases = data.pop("_base_", None)
    if bases is None:
        return data
    # `_base_: a.yaml` or `_base_: [pair.yaml, protocol.yaml]`: later bases, then this file, win; mappings
    # (training, loss_overrides) merge key by key so a protocol file can add to a pair's settings.
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else list(bases):
        merged = _deep_merge(merged, _read_config_chain(path.parent / base, (*chain, here)))
    return _deep_merge(merged, data)


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


# Range checks that the types cannot express; each fails before anything loads, not at the first step.
_POSITIVE_TRAINING = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps")
_NON_NEGATIVE_TRAINING = ("learning_rate", "weight_decay", "dataloader_num_workers", "warmup_steps")


def _check_ranges(cfg: ExperimentConfig) -> None:
    for name in ("max_train_samples", "max_eval_samples", "image_size"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1 (or null), got {value}.")
    for name in ("student", "method", "dataset"):
        if not str(getattr(cfg, name)).strip():
            raise ConfigError(f"{name} is empty.")
    training = cfg.training
    for name in _POSITIVE_TRAINING:
        if name in training and training[name] < 1:
            raise ConfigError(f"training.{name} must be at least 1, got {training[name]}.")
    for name in _NON_NEGATIVE_TRAINING:
        if isinstance(training.get(name), (int, float)) and training[name] < 0:
            raise ConfigError(f"training.{name} must not be negative, got {training[name]}.")
    if training.get("lr_decay_rate") is not None and training["lr_decay_rate"] <= 0:
        raise ConfigError(f"training.lr_decay_rate must be positive, got {training['lr_decay_rate']}.")
    epochs = training.get("num_train_epochs", PAPER_TRAINING["num_train_epochs"])
    if epochs <= 0 and training.get("max_steps", -1) <= 0:
        raise ConfigError(f"training.num_train_epochs must be positive (or set training.max_steps), got {epochs}.")
    milestones = training.get("lr_milestones") or []
    if any(m < 0 for m in milestones):
        raise ConfigError(f"training.lr_milestones must be epochs >= 0, got {milestones}.")


def config_from_dict(data: Mapping[str, Any]) -> ExperimentConfig:
    """Build, type-convert and validate an ``ExperimentConfig``; ``output_dir`` gets its default run folder."""
    data = dict(data)
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        # A training argument at the top level (`learning_rate: 0.1`) belongs under `training:`.
        close = {n: [f"training.{n}"] if n in training_fields() else difflib.get_close_matches(n, sorted(_FIELDS), n=1)
                 for n in unknown}
        hints = ", ".join(f"{n!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for n, c in close.items())
        raise ConfigError(f"Unknown config field(s) {hints}. Valid fields: {', '.join(sorted(_FIELDS))}.")
    values = {name: coerce(value, experiment_hints()[name], name) for name, value in data.items()
              if name != "training"}
    values["training"] = coerce_training(data.get("training") or {})
    cfg = ExperimentConfig(**values)
    cfg.loss_overrides = _coerce_loss_overrides(cfg.loss_overrides)
    _check_ranges(cfg)
    from .models.auto_classifier import looks_like_checkpoint

    _check_teachers(cfg)
    if not cfg.teacher_checkpoint and looks_like_checkpoint(cfg.teacher):
        # --teacher microsoft/resnet-50, a run folder, timm/<name>.<tag>: the name is the checkpoint.
        cfg.teacher_checkpoint = cfg.teacher
    needs_teacher = cfg.method_spec().needs_teacher
    if needs_teacher and not cfg.teacher_checkpoint and not cfg.teachers:
        raise ConfigError(
            f"Method {cfg.method!r} needs a trained teacher: set `teacher_checkpoint` to a directory or Hub id "
            f"(train one with recipes/train_teacher.py), or use method 'vanilla'."
        )
    if cfg.push_to_hub and not cfg.hub_model_id:
        raise ConfigError("push_to_hub is set but hub_model_id is not: pass --hub_model_id org/name.")
    if cfg.teacher_cache:
        _check_teacher_cache(cfg)
    if cfg.output_dir is None:
        cfg.output_dir = default_output_dir(
            cfg.student, cfg.teacher_label, cfg.method, cfg.tag, needs_teacher=needs_teacher
        )
    elif cfg.tag:
        # A tag suffixes every run folder, a chosen one too (`runs/x` -> `runs/x-<tag>`): `--tag NAME` keeps a
        # variant apart whatever the config says, as the different-run error suggests. method_dirname("", tag)
        # is the tag's `-<tag>` suffix, spelled as default folders spell it.
        cfg.output_dir = str(cfg.output_dir).rstrip("/\\") + method_dirname("", cfg.tag)
    return cfg


def _check_teacher_cache(cfg: ExperimentConfig) -> None:
    """A teacher cache needs the fast path's views and a method whose losses read only what it holds."""
    from .teacher_cache import teacher_cache_refusal

    if not cfg.fast_path:
        raise ConfigError("teacher_cache keys the teacher's outputs by the fast path's views (seed, epoch, sample "
                          "index): add --fast_path, or drop teacher_cache.")
    why = teacher_cache_refusal(cfg.method_spec())
    if why:
        raise ConfigError(f"teacher_cache: {why}.")


def _check_teachers(cfg: ExperimentConfig) -> None:
    """An ensemble (``teachers``) excludes ``teacher``/``teacher_checkpoint``; a one-entry list is one teacher."""
    if not cfg.teachers:
        return
    if cfg.teacher or cfg.teacher_checkpoint:
        raise ConfigError(
            "Set either teacher/teacher_checkpoint (one teacher) or teachers (an ensemble), not both: list every "
            f"teacher under teachers ({cfg.teachers}), or drop it."
        )
    sources = [parse_teacher_source(entry) for entry in cfg.teachers]
    seen: dict[str, str] = {}
    for source in sources:
        identity = _teacher_identity(source.checkpoint)
        if identity in seen:
            same = f"{seen[identity]!r} and {source.checkpoint!r} are" if seen[identity] != source.checkpoint else \
                f"{source.checkpoint!r} is"
            raise ConfigError(
                f"teachers lists the same teacher more than once ({same} {identity}): an ensemble's teachers must "
                f"differ; drop one of them."
            )
        seen[identity] = source.checkpoint
    if len(sources) == 1:
        cfg.teacher, cfg.teacher_checkpoint, cfg.teachers = sources[0].name, sources[0].checkpoint, []


def _coerce_loss_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``loss_overrides`` with every weight and hyper-parameter converted to the type its loss declares (YAML
    reads ``1e-3`` as a string), a value that does not convert named as ``loss_overrides.<loss>.<name>``.

    Unknown keys stay as written: ``resolve_method`` refuses them with the valid names, and checks the ranges
    (``DistillationLoss.hyperparameter_ranges``), before anything loads.
    """
    from .losses import get_loss_class, hyperparameter_types, list_losses

    out: dict[str, Any] = {}
    for key, value in overrides.items():
        name = str(key).lower()
        if name == "ce_weight":
            out[key] = _keep_int(value, coerce(value, float, "loss_overrides.ce_weight"))
            continue
        if name not in list_losses() or not isinstance(value, Mapping):
            out[key] = value
            continue
        hints = {**hyperparameter_types(get_loss_class(name)), "weight": float}
        out[key] = {k: _keep_int(v, coerce(v, hints[k], f"loss_overrides.{name}.{k}")) if k in hints else v
                    for k, v in value.items()}
    return out


def _keep_int(given: Any, converted: Any) -> Any:
    # `beta: 2` stays 2 for a float hyper-parameter: the same number, recorded (results.json, cards) as written.
    keep = isinstance(given, int) and not isinstance(given, bool) and isinstance(converted, float)
    return given if keep and given == converted else converted


def _teacher_identity(checkpoint: str) -> str:
    """What a teacher entry points at, for spotting a teacher listed twice: a local folder's resolved path (so
    ``x``, ``./x/`` and a run folder's ``student/`` are one teacher), else the Hub id or name as written."""
    path = Path(checkpoint).expanduser()
    if path.exists() or not has_hub_id_form(checkpoint):
        return str(Path(resolve_model_dir(path)).resolve())
    return checkpoint


def coerce_training(training: Mapping[str, Any]) -> dict[str, Any]:
    """The ``training:`` mapping with every value converted to its ``DistillationTrainingArguments`` type."""
    if not isinstance(training, Mapping):
        raise ConfigError(f"training must be a mapping of DistillationTrainingArguments fields, got {training!r}.")
    validate_training_fields(training)
    hints = training_hints()
    return {name: coerce(value, hints[name], f"training.{name}") for name, value in training.items()}


def validate_training_fields(training: Mapping[str, Any]) -> None:
    """Refuse unknown ``training:`` keys, with the closest valid names."""
    for name in sorted(set(training) - set(training_fields())):
        field_hint(f"training.{name}")


# ------------------------------------------------------------------------------------------------ help

def _display(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _metavar(hint: Any) -> str:
    member = next((m for m in sorted(_members(hint), key=_member_order) if m is not type(None)), hint)
    if _is_enum(member) or typing.get_origin(member) is Literal:
        return "CHOICE"
    if _is_list(member):
        return "VALUE [VALUE ...]"
    if _is_dict(member):
        return "MAPPING"
    return getattr(member, "__name__", "value").upper() if member is not Any else "VALUE"


def config_help(
    prog: str,
    description: str | None = None,
    config_path: str | Path | None = None,
    extra: Mapping[str, tuple[Any, Any, str]] | None = None,
) -> str:
    """``--help`` text: every experiment and training field with its type, default and help.

    With ``config_path``, defaults are that config's values (so ``--config X --help`` shows what X runs).
    ``extra`` adds a recipe's own options as ``{name: (type, default, help)}``.
    """
    data: dict[str, Any] = {}
    note = ""
    if config_path is not None:
        try:
            data = read_config_file(Path(config_path))
        except ConfigError as err:
            note = f"\n(defaults below are the built-in ones: {err})"
    parser = argparse.ArgumentParser(
        prog=prog, description=(description or "").strip() + note, add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=f"{prog} [--config FILE] [--FIELD VALUE ...] [--training.FIELD VALUE ...]",
    )

    def add(group: Any, name: str, hint: Any, default: Any, text: str) -> None:
        metavar = "" if accepts_bool(hint) and not _is_union(hint) else _metavar(hint)
        text = " ".join(text.split()).replace("%", "%%")
        kwargs: dict[str, Any] = {"metavar": metavar} if metavar else {"nargs": "?", "metavar": "BOOL"}
        group.add_argument(f"--{name}", help=f"{text} [{type_name(hint)}; default: {_display(default)}]", **kwargs)

    group = parser.add_argument_group("options")
    group.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    group.add_argument("--config", metavar="FILE", help="YAML config (recipes/configs/...); fields below override it")
    for name, (hint, default, text) in (extra or {}).items():
        add(group, name, hint, default, text)
    group = parser.add_argument_group(
        "experiment fields" + (f" (defaults from {config_path})" if data else ""))
    for name, f in _FIELDS.items():
        if name == "training":
            continue
        default = data.get(name, f.default if f.default is not dataclasses.MISSING else f.default_factory())
        add(group, name, experiment_hints()[name], default, f.metadata.get("help", ""))
    group = parser.add_argument_group(
        "training fields (DistillationTrainingArguments: transformers.TrainingArguments plus the recipe's; the "
        "defaults are the CIFAR recipe's where it sets them)")
    configured = {**PAPER_TRAINING, **(data.get("training") or {})}
    defaults = training_defaults()
    hints = training_hints()
    for name, f in training_fields().items():
        if name == "output_dir":
            continue  # set by the experiment's output_dir
        default = configured.get(name, defaults.get(name))
        add(group, f"training.{name}", hints[name], default, f.metadata.get("help", ""))
    return parser.format_help()
