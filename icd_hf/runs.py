"""The layout of a run directory and the records written into it, shared by training, export and evaluation.

A run directory (``output_dir`` of a recipe) holds ``student/`` - the trained model in ``save_pretrained``
layout (for a teacher run, the teacher) - and ``results.json``; checkpoints sit next to them. ``results.json`` is
one ``RunResults`` record: this module is the only one that writes or parses it (training writes it, export,
push, the model cards, the results tables and the CPU-budget protocol read it through ``RunResults.read``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

RESULTS_NAME = "results.json"
EXPORT_DIRNAME = "student"


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """Short commit hash of the icd-hf checkout, ``+dirty`` when its tracked files have uncommitted changes, or
    ``"unknown"`` outside a git checkout.

    Cached: the first call names the code this process runs. Entry points call it at start, because a long run's
    checkout can move on while it trains, and the commit read at the end would then name code that never ran.
    """
    package_dir = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=package_dir,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", str(package_dir)],
            capture_output=True, text=True, check=True, cwd=package_dir,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


@functools.lru_cache(maxsize=1)
def cpu_model_name() -> str | None:
    """The CPU's model as the OS names it (``/proc/cpuinfo``'s ``model name``), ``None`` where it does not say.

    Recorded with every run: the same code and seed give different accuracies on CPUs with different kernels
    (AVX2 vs AVX-512/AMX), so a number without its CPU cannot be reproduced.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:  # not Linux
        pass
    return platform.processor() or None


def device_name(device: torch.device | str | None = None) -> str:
    """Human-readable name of ``device`` (default: CUDA when available, else the CPU), for a CPU with its model."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = cpu_model_name()
    return f"cpu ({f'{model}, ' if model else ''}{platform.machine()}, {os.cpu_count()} cores)"


def available_cpus() -> int:
    """CPUs this process may use (its affinity set where the OS has one), the figure DataLoader warns against."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def effective_num_workers(requested: int) -> int:
    """``dataloader_num_workers`` capped at the machine's CPUs: more workers than cores only slow a run down and
    make torch warn on every DataLoader it builds (three times per epoch)."""
    return max(0, min(int(requested), available_cpus()))


# ----------------------------------------------------------------------------------------------- results.json

RESULTS_VERSION = 2
"""Version of the ``results.json`` layout. 0: files from before it was versioned (no ``version`` key), which read
the same way; 1: ``version`` recorded; 2: ``teachers`` (each teacher of an ensemble) may be present."""


class RunResultsError(KeyError, ValueError):
    """A ``results.json`` that lacks a field every run has (or is no results file at all). Both a ``KeyError`` (a
    field is missing) and a ``ValueError`` (bad input), for the callers that catch either."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise RunResultsError(f"{path} is not valid JSON ({err}): not a results.json written by icd-hf.") from None
    if not isinstance(data, dict):
        raise RunResultsError(f"{path} does not hold a JSON object: it is not a results.json written by icd-hf.")
    return data


@dataclass
class ModelRecord:
    """A model of the run: its zoo/timm name (or checkpoint) and size."""

    name: str
    num_parameters: int | None = None


@dataclass
class TeacherRecord(ModelRecord):
    """The teacher, with where its weights came from and its own accuracy when its run recorded one."""

    path_or_hub_id: str | None = None
    top1: float | None = None


@dataclass
class RunMetrics:
    """Evaluation accuracies (%): after the last epoch (what the papers report) and the best one seen."""

    top1: float
    top5: float | None = None
    best_top1: float | None = None
    best_epoch: int | None = None


def _record_field(data: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(data, Mapping) or key not in data:
        raise RunResultsError(
            f"{where} has no `{key}`: it is not a results.json written by icd-hf (see icd_hf.runs.RunResults); "
            f"re-run the experiment or add the field by hand."
        )
    return data[key]


def _sub_record(cls: type, data: Any, prefix: str, where: str) -> Any:
    """``cls`` from a JSON object: its required fields must be there; keys it does not know are dropped."""
    for f in fields(cls):
        if f.default is MISSING and (not isinstance(data, Mapping) or f.name not in data):
            raise RunResultsError(
                f"{where} has no `{prefix}.{f.name}`: it is not a results.json written by icd-hf (see "
                f"icd_hf.runs.RunResults); re-run the experiment or add the field by hand."
            )
    return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class RunResults:
    """One run's ``results.json``: what was trained, on what, how, how well, and where it came from.

    Written once by ``icd_hf.experiment`` at the end of training (``write``) and read by everything after it
    (``read``): export and push, the model cards, the results tables, the sweep, the CPU-budget protocol. The
    JSON keeps the layout of the files written before the record was versioned, so those files still load (they
    are version 0) and external readers of the keys keep working.

    Attributes:
        method: the method string (``"icd+kd"``; ``"vanilla"`` for a model trained from labels alone).
        student: the trained model; for a teacher run, the teacher itself.
        metrics: its accuracies.
        teacher: the teacher it was distilled from (``None`` without one); for an ensemble, the ensemble as one
            record (its name ``a+b``, the parameters of all teachers together).
        teachers: each teacher of an ensemble, in order (empty for one teacher or none).
        dataset: ``ImageDatasetInfo.to_dict()`` of the data (name, classes, mean/std, sizes, splits, source).
        loss: the resolved method: ``{"ce_weight": w, "terms": [{"name", "weight", "kwargs"}]}``.
        training: the training arguments (the recipe's, then the config's).
        baselines: known accuracies for the card (``vanilla_top1``, ``kd_top1``).
        config: the ``ExperimentConfig`` as a dict.
        command, git_commit, device, wall_time_s, resumed_from: provenance.
        precision: the numeric mode training ran in (``"bf16"``, ``"fp16"`` or ``"fp32"``; ``None`` in files written
            before it was recorded).
        fingerprint: what defines the run (``run_fingerprint``): a resume or a sweep compares it.
        hub_url: the upload commit, when the run was pushed at the end of training (not written to the file).
        hub_export: in an exported folder, what its card was rendered with (``icd_hf.hub.export``).
        extra: keys this version does not know, kept so that a read-write round trip loses nothing.
        version: ``RESULTS_VERSION`` when written; what the file said when read (0 when it said nothing).
        source: the file it was read from (not written).
    """

    method: str
    student: ModelRecord
    metrics: RunMetrics
    teacher: TeacherRecord | None = None
    teachers: list[TeacherRecord] = field(default_factory=list)
    dataset: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    git_commit: str | None = None
    wall_time_s: float | None = None
    resumed_from: str | None = None
    device: str | None = None
    precision: str | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)
    hub_url: str | None = None
    hub_export: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = RESULTS_VERSION
    source: str | None = None

    # The JSON layout: these keys in this order (as before the record was versioned), then the optional ones.
    _LAYOUT = ("method", "teacher", "student", "dataset", "loss", "training", "metrics", "baselines", "config",
               "command", "git_commit", "wall_time_s", "resumed_from", "device", "precision", "fingerprint")
    _OPTIONAL = ("hub_export",)

    # ---- the image size, the one fallback every reader needs
    @property
    def image_size(self) -> int | None:
        """The side the model was trained at: the experiment's ``image_size`` override, else the data's (its
        resize, else its stored size); ``None`` when nothing says."""
        size = self.config.get("image_size") or self.dataset.get("image_size") or self.dataset.get("native_image_size")
        return int(size) if size else None

    @property
    def dataset_name(self) -> str:
        return str(self.dataset.get("name") or "")

    @property
    def term_names(self) -> list[str]:
        """The loss terms of the method, in order (``["icd", "kd"]``)."""
        return [str(t["name"]) for t in self.loss.get("terms", [])]

    # ---- JSON
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | os.PathLike[str] | None = None) -> RunResults:
        """The record of a parsed ``results.json`` (any version up to ``RESULTS_VERSION``)."""
        where = str(source) if source is not None else "results.json"
        if not isinstance(data, Mapping):
            raise RunResultsError(f"{where} does not hold a JSON object: it is not a results.json written by icd-hf.")
        version = int(data.get("version") or 0)
        if version > RESULTS_VERSION:
            raise RunResultsError(
                f"{where} is a version {version} results.json; this icd-hf reads up to version {RESULTS_VERSION}: "
                f"upgrade icd-hf."
            )
        teacher = data.get("teacher")
        known = {f.name for f in fields(cls)}
        return cls(
            method=str(_record_field(data, "method", where)),
            student=_sub_record(ModelRecord, _record_field(data, "student", where), "student", where),
            metrics=_sub_record(RunMetrics, _record_field(data, "metrics", where), "metrics", where),
            teacher=_sub_record(TeacherRecord, teacher, "teacher", where) if teacher else None,
            teachers=[_sub_record(TeacherRecord, t, f"teachers[{i}]", where) for i, t in enumerate(
                data.get("teachers") or [])],
            **{k: data[k] for k in known - {"method", "student", "metrics", "teacher", "teachers", "extra", "version",
                                             "source"}
               if data.get(k) is not None},
            extra={k: v for k, v in data.items() if k not in known},
            version=version,
            source=str(source) if source is not None else None,
        )

    @classmethod
    def coerce(cls, results: RunResults | Mapping[str, Any]) -> RunResults:
        """``results`` as a record (a parsed ``results.json`` dict is converted)."""
        return results if isinstance(results, RunResults) else cls.from_dict(results)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``results.json`` (``source`` and ``hub_url`` are not part of it)."""
        data: dict[str, Any] = {}
        for key in self._LAYOUT:
            value = getattr(self, key)
            data[key] = asdict(value) if isinstance(value, ModelRecord | RunMetrics) else value
            if key == "teacher" and self.teachers:
                data["teachers"] = [asdict(t) for t in self.teachers]
        data.update({key: getattr(self, key) for key in self._OPTIONAL if getattr(self, key) is not None})
        data.update(self.extra)
        data["version"] = RESULTS_VERSION
        return data

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> RunResults:
        """Read ``results.json``: ``path`` is the file or the run (or exported) folder holding it."""
        path = Path(path)
        file = path / RESULTS_NAME if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(
                f"No {RESULTS_NAME} in {path}: expected a run directory written by recipes/distill.py or "
                f"recipes/train_teacher.py (it holds {EXPORT_DIRNAME}/ and {RESULTS_NAME}), or a folder written by "
                f"`icd-hf export`."
            )
        return cls.from_dict(_read_json_object(file), source=file)

    def write(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``results.json`` into ``folder`` atomically (a crash never leaves half a file); returns its path."""
        path = Path(folder) / RESULTS_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{RESULTS_NAME}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    def with_export(self, record: Mapping[str, Any] | None) -> RunResults:
        """A copy carrying (or, with ``None``, without) an export record."""
        return replace(self, hub_export=dict(record) if record is not None else None)


def resolve_model_dir(name_or_path: str | os.PathLike[str]) -> str:
    """A run directory (``results.json`` + ``student/``) becomes its ``student/`` folder; anything else (a
    ``save_pretrained`` folder, an exported Hub folder, a Hub id, a zoo name) is returned unchanged."""
    path = Path(name_or_path)
    if path.is_dir() and not (path / "config.json").is_file() and (path / EXPORT_DIRNAME / "config.json").is_file():
        return str(path / EXPORT_DIRNAME)
    return os.fspath(name_or_path)


def find_run_results(folder: str | os.PathLike[str]) -> RunResults | None:
    """The record of the run a model folder belongs to: ``folder/results.json`` or, for a run's ``student/``, the
    one next to it; ``None`` when neither exists."""
    for candidate in (Path(folder) / RESULTS_NAME, Path(folder).parent / RESULTS_NAME):
        if candidate.is_file():
            return RunResults.read(candidate)
    return None


# ----------------------------------------------------------------------------------------------- run folders

RUNS_ROOT = "runs"
TEACHERS_DIRNAME = "teachers"


def _slug(name: str) -> str:
    """A model name or path as one path component (``timm/resnet18`` -> ``timm-resnet18``)."""
    return re.sub(r"[^\w.+-]+", "-", name.strip().strip("/")) or "model"


def method_dirname(method: str, tag: str | None = None) -> str:
    """The folder name of one method's run: ``icd+kd`` -> ``icd_kd``, with ``-<tag>`` when tagged."""
    name = method.strip().lower().replace("+", "_")
    return f"{name}-{_slug(tag)}" if tag else name


def pair_dirname(teacher: str, student: str) -> str:
    """``<teacher>__<student>``, the folder of every run of one pair (as the pair configs are named)."""
    return f"{_slug(teacher)}__{_slug(student)}"


def default_output_dir(
    student: str,
    teacher: str | None,
    method: str,
    tag: str | None = None,
    root: str | Path = RUNS_ROOT,
    *,
    needs_teacher: bool = True,
) -> str:
    """Where a run goes when ``output_dir`` is not given, so that two different runs never share a folder.

    ``runs/<teacher>__<student>/<method>[-<tag>]`` for a student (the vanilla baseline of a pair included),
    ``runs/teachers/<student>[-<tag>]`` for a model trained from labels alone without a teacher named (a
    teacher run, where the pair configs' ``teacher_checkpoint: runs/teachers/<name>/student`` looks for it).
    ``needs_teacher`` is the method's ``MethodSpec.needs_teacher`` (the caller resolves it: this module stays
    below the losses).
    """
    if teacher is None and not needs_teacher:
        name = _slug(student) + (f"-{_slug(tag)}" if tag else "")
        return str(Path(root) / TEACHERS_DIRNAME / name)
    return str(Path(root) / pair_dirname(teacher or "none", student) / method_dirname(method, tag))


# ----------------------------------------------------------------------------------------------- checkpoints

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# Written by the experiment into the run folder at the start and into every checkpoint: what defines the run
# (its fingerprint) and the progress that has to survive a resume (elapsed time, best accuracy).
RUN_RECORD_NAME = "icd_run.json"


def find_resumable_checkpoint(output_dir: str | Path) -> str | None:
    """Latest *complete* checkpoint in ``output_dir``.

    The Trainer writes ``trainer_state.json`` last, so a folder without it is a save that a crash or Ctrl-C
    interrupted: skip it and resume from the previous one instead of failing on a truncated file.
    """
    root = Path(output_dir)
    if not root.is_dir():
        return None
    complete = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := CHECKPOINT_RE.match(p.name)) and (p / "trainer_state.json").is_file()
        and (p / "model.safetensors").is_file()
    ]
    return str(max(complete)[1]) if complete else None


def read_run_record(folder: str | Path) -> dict[str, Any] | None:
    """The ``icd_run.json`` of a run folder or checkpoint, ``None`` when absent or unreadable (a cut save)."""
    path = Path(folder) / RUN_RECORD_NAME
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_run_record(folder: str | Path, record: Mapping[str, Any]) -> None:
    """Write ``icd_run.json`` atomically (a crash mid-write never leaves a truncated record to be read back)."""
    path = Path(folder) / RUN_RECORD_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------- fingerprint

# Training arguments that change how a run is executed or recorded, not what it learns: a resume may change them.
NON_DEFINING_TRAINING_KEYS = frozenset({
    "output_dir", "logging_dir", "logging_steps", "logging_strategy", "logging_first_step", "report_to",
    "run_name", "save_strategy", "save_steps", "save_total_limit", "save_only_model", "eval_strategy",
    "eval_steps", "eval_delay", "per_device_eval_batch_size", "eval_accumulation_steps", "disable_tqdm",
    "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers",
    "dataloader_prefetch_factor", "push_to_hub", "hub_model_id", "hub_private_repo", "hub_strategy",
    "hub_token", "use_cpu", "log_level", "log_level_replica", "fast_path", "compile_models", "torch_compile",
    "include_num_input_tokens_seen", "restore_callback_states_from_checkpoint", "overwrite_output_dir",
})
_HASH_LIMIT_BYTES = 2 << 30


@functools.lru_cache(maxsize=32)
def _hash_files(paths: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for path, _, _ in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]


def weights_identity(ref: str | None) -> str | None:
    """What identifies a model's weights: the content hash of a local folder's weight files (so a moved or
    re-copied teacher is still the same teacher), size and mtime beyond 2 GiB, else the Hub id itself."""
    if not ref:
        return None
    path = Path(ref).expanduser()
    if not path.is_dir():
        return ref
    files = sorted(p for p in path.iterdir() if p.suffix in {".safetensors", ".bin"} and p.is_file())
    if not files:
        return f"dir:{path.resolve()}"
    stats = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if sum(s for _, s, _ in stats) > _HASH_LIMIT_BYTES:
        return "stat:" + ",".join(f"{Path(p).name}:{s}:{m}" for p, s, m in stats)
    return _hash_files(stats)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def run_fingerprint(
    *,
    student: str,
    teacher: str | None,
    teacher_checkpoint: str | Sequence[str] | None,
    method: str,
    loss: Mapping[str, Any],
    data: Mapping[str, Any],
    training: Mapping[str, Any],
    teacher_weighting: str | None = None,
) -> dict[str, Any]:
    """Everything that defines a run, flat (``training.learning_rate``), so that two runs compare field by field.

    An ensemble gives every teacher checkpoint (``teacher_checkpoint`` a list) and its ``teacher_weighting``;
    a single-teacher run records neither list nor weighting, as before ensembles existed.

    ``loss`` is the resolved method (CE weight, terms with their weights and hyper-parameters: loss overrides
    included); ``training`` the explicitly set training arguments (defaults are filled in when comparing).
    """
    fingerprint: dict[str, Any] = {
        "student": student,
        "student_weights": weights_identity(student) if Path(student).expanduser().is_dir() else None,
        "teacher": teacher,
        "teacher_weights": weights_identity(teacher_checkpoint) if isinstance(teacher_checkpoint, str | None)
        else [weights_identity(c) for c in teacher_checkpoint],
        "method": method.strip().lower(),
        "loss": loss,
    }
    if teacher_weighting is not None:
        fingerprint["teacher_weighting"] = teacher_weighting
    fingerprint.update({f"data.{k}": v for k, v in data.items()})
    fingerprint.update(
        {f"training.{k}": v for k, v in sorted(training.items()) if k not in NON_DEFINING_TRAINING_KEYS}
    )
    return _jsonable(fingerprint)


def fingerprint_diff(
    old: Mapping[str, Any], new: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> list[tuple[str, Any, Any]]:
    """``(field, old, new)`` for every field that differs; a ``training.*`` field one side leaves unset counts
    as its default (``defaults``, keyed without the prefix), so an explicit default is not a difference."""
    defaults = _jsonable(dict(defaults or {}))
    missing = object()
    diffs = []
    for key in sorted(set(old) | set(new)):
        default = defaults.get(key.removeprefix("training."), missing) if key.startswith("training.") else None
        a = old.get(key, default)
        b = new.get(key, default)
        if a is missing or b is missing or a != b:
            diffs.append((key, None if a is missing else a, None if b is missing else b))
    return diffs


class RunMismatchError(ValueError):
    """``output_dir`` holds a run that differs from the one asked for: resuming it would mix the two."""


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def mismatch_message(where: str | Path, diffs: list[tuple[str, Any, Any]], max_fields: int = 4) -> str:
    """One line: which fields differ (there -> here) and the three ways out."""
    shown = "; ".join(f"{k}: {_short(a)} there, {_short(b)} here" for k, a, b in diffs[:max_fields])
    more = f"; and {len(diffs) - max_fields} more" if len(diffs) > max_fields else ""
    return (
        f"{where} holds a different run ({shown}{more}). Give this run its own folder with --output_dir DIR (or "
        f"--tag NAME), train from scratch here with --resume never, or delete the old run with "
        f"--overwrite_output_dir."
    )


def clear_run_dir(output_dir: str | Path, extra_names: tuple[str, ...] = ()) -> list[Path]:
    """Delete what a run writes into ``output_dir`` (checkpoints, ``student/``, results, run record) and nothing
    else, so that ``--overwrite_output_dir`` on a wrong path cannot wipe unrelated files. Returns what went."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    names = {EXPORT_DIRNAME, RESULTS_NAME, RUN_RECORD_NAME, *extra_names}
    removed = []
    for path in sorted(root.iterdir()):
        if path.name in names or CHECKPOINT_RE.match(path.name):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


# ----------------------------------------------------------------------------------------------- resume

_NEVER = {"never", "none", "null", "no", "false", ""}


def normalise_resume(resume: str | bool | None) -> str:
    """``auto``, ``never`` or a checkpoint path (``None``/``false``/``no`` mean ``never``, ``true`` ``auto``)."""
    if resume is None or resume is False:
        return "never"
    if resume is True:
        return "auto"
    text = str(resume).strip()
    if text.lower() in _NEVER:
        return "never"
    return "auto" if text.lower() == "auto" else text


@dataclass
class ResumePlan:
    """What a run starts from: a checkpoint (``None``: from scratch), the time already spent on it, whether the
    old run's files are to be deleted first (``--overwrite_output_dir``) and a line saying so."""

    checkpoint: str | None = None
    prior_elapsed_s: float = 0.0
    clear_first: bool = False
    message: str | None = None


def _legacy_fingerprint(results_file: Path) -> dict[str, Any]:
    """The few defining fields a ``results.json`` from before fingerprints records. Read leniently: whatever
    else such a file lacks, a run folder that names another student, teacher or method must not be resumed."""
    data = _read_json_object(results_file)
    return _jsonable({
        "student": (data.get("student") or {}).get("name"),
        "teacher": (data.get("teacher") or {}).get("name"),
        "method": str(data.get("method") or "").lower(),
    })


def _describe_checkpoint(checkpoint: str, elapsed_s: float) -> str:
    state: dict[str, Any] = {}
    try:
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    except (OSError, ValueError):
        pass
    step, max_steps, epoch = state.get("global_step"), state.get("max_steps"), state.get("epoch")
    parts = [f"step {step}" + (f"/{max_steps}" if max_steps else "")] if step is not None else []
    if epoch is not None:
        parts.append(f"epoch {float(epoch):.2f}")
    if elapsed_s:
        parts.append(f"{elapsed_s / 60:.1f} min of training so far")
    return f"Resuming from {checkpoint}" + (f" ({', '.join(parts)})" if parts else "")


def plan_resume(
    output_dir: str | Path,
    resume: str | bool | None,
    fingerprint: Mapping[str, Any],
    *,
    overwrite: bool = False,
    defaults: Mapping[str, Any] | None = None,
) -> ResumePlan:
    """Decide where a run starts, refusing to continue (or overwrite) a different run in ``output_dir``.

    ``resume: auto`` takes the latest complete checkpoint when its fingerprint matches; ``never`` starts from
    scratch; a path resumes that checkpoint (checked the same way). A mismatch raises ``RunMismatchError`` with
    the differing fields. Folders written before fingerprints existed are compared on what their
    ``results.json`` records (student, teacher, method); a bare old checkpoint is resumed with a warning.
    """
    if overwrite:
        return ResumePlan(clear_first=True, message=f"--overwrite_output_dir: deleting the run in {output_dir} first")
    mode = normalise_resume(resume)
    if mode == "never":
        return ResumePlan()
    if mode == "auto":
        checkpoint = find_resumable_checkpoint(output_dir)
        where: str | Path = output_dir
    else:
        checkpoint, where = mode, mode
        if not (Path(mode) / "trainer_state.json").is_file():
            raise FileNotFoundError(
                f"--resume {mode}: not a complete checkpoint folder (no trainer_state.json). Use --resume auto for "
                f"the latest checkpoint of --output_dir, or --resume never."
            )
    checkpoint_record = read_run_record(checkpoint) if checkpoint else None
    record = checkpoint_record or read_run_record(Path(checkpoint).parent if checkpoint else output_dir)
    results_file = Path(output_dir) / RESULTS_NAME
    if record and isinstance(record.get("fingerprint"), Mapping):
        diffs = fingerprint_diff(record["fingerprint"], fingerprint, defaults)
    elif results_file.is_file():
        try:
            legacy = _legacy_fingerprint(results_file)
        except (OSError, ValueError):
            legacy = {}
        diffs = fingerprint_diff(legacy, {k: fingerprint.get(k) for k in legacy})
    else:
        diffs = []
        if checkpoint:
            logger.warning("%s has no %s (written before run fingerprints): resuming it unchecked.", checkpoint,
                           RUN_RECORD_NAME)
    if diffs:
        raise RunMismatchError(mismatch_message(where, diffs))
    if checkpoint is None:
        return ResumePlan()
    elapsed = float((checkpoint_record or {}).get("elapsed_s") or 0.0)
    return ResumePlan(checkpoint=checkpoint, prior_elapsed_s=elapsed, message=_describe_checkpoint(checkpoint, elapsed))
