"""``results.json``: one ``RunResults`` record per run, serialised from its own fields.

A run directory (``output_dir`` of a recipe) holds ``student/`` - the trained model in ``save_pretrained``
layout (for a teacher run, the teacher) - and ``results.json``; checkpoints sit next to them. This module is the
only one that writes or parses ``results.json`` (training writes it; export, push, the model cards, the results
tables and the benchmarks' reports read it through ``RunResults.read``). Secrets never reach it: every record is
masked by ``policy.mask_secrets`` when it is built.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .policy import mask_command, mask_secrets

RESULTS_NAME = "results.json"
EXPORT_DIRNAME = "student"
# Field metadata of RunResults: when a field is written to results.json ("always" unless it says otherwise).
_WRITE = "results_json"

# ----------------------------------------------------------------------------------------------- results.json

RESULTS_VERSION = 3
"""Version of the ``results.json`` layout. 0: files from before it was versioned (no ``version`` key), which read
the same way; 1: ``version`` recorded; 2: ``teachers`` (each teacher of an ensemble) may be present; 3: ``precision``
recorded, secrets masked."""


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
    """The teacher, with where its weights came from and its own accuracy when its run recorded one.

    ``checkpoint_file``: for a teacher read from a ``.pth`` file (RepDistiller, mdistiller), what the file says
    of itself (file name, SHA-256, ``epoch``, ``accuracy``); written only then.
    """

    path_or_hub_id: str | None = None
    top1: float | None = None
    checkpoint_file: dict[str, Any] | None = field(default=None, metadata={_WRITE: "when_set"})


@dataclass
class RunMetrics:
    """Evaluation accuracies (%): after the last epoch (what the papers report) and the best one seen."""

    top1: float
    top5: float | None = None
    best_top1: float | None = None
    best_epoch: int | None = None


def _jsonable(value: Any) -> Any:
    """A record field as JSON: the nested model and metrics records as objects, lists of them as lists."""
    if isinstance(value, ModelRecord | RunMetrics):
        return {f.name: getattr(value, f.name) for f in fields(value)
                if getattr(value, f.name) is not None or f.metadata.get(_WRITE, "always") == "always"}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


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


@dataclass(kw_only=True)
class RunResults:
    """One run's ``results.json``: what was trained, on what, how, how well, and where it came from.

    Written once by ``icd_hf.experiment`` at the end of training (``write``) and read by everything after it
    (``read``): export and push, the model cards, the results tables, the sweep, the benchmarks' reports. The JSON
    is the fields in declaration order (a field's metadata says when it is left out), so a new field is one line
    here; that order is the layout of the files written before the record was versioned, so those files still load
    (they are version 0) and external readers of the keys keep working.

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
        teacher_cache: when the run's teacher outputs came through a cache (``icd_hf.teacher_cache``): its folder,
            precision, size per epoch and how many batches this run read from it or computed (``None``: live).
        hub_url: the upload commit, when the run was pushed at the end of training (not written to the file).
        hub_export: in an exported folder, what its card was rendered with (``icd_hf.hub.export``).
        extra: keys this version does not know, kept so that a read-write round trip loses nothing.
        version: ``RESULTS_VERSION`` when written; what the file said when read (0 when it said nothing).
        source: the file it was read from (not written).
    """

    method: str
    teacher: TeacherRecord | None = None
    teachers: list[TeacherRecord] = field(default_factory=list, metadata={_WRITE: "when_set"})
    student: ModelRecord
    dataset: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: RunMetrics
    baselines: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    git_commit: str | None = None
    wall_time_s: float | None = None
    resumed_from: str | None = None
    device: str | None = None
    precision: str | None = field(default=None, metadata={_WRITE: "when_set"})
    fingerprint: dict[str, Any] = field(default_factory=dict)
    teacher_cache: dict[str, Any] | None = field(default=None, metadata={_WRITE: "when_set"})
    hub_export: dict[str, Any] | None = field(default=None, metadata={_WRITE: "when_set"})
    hub_url: str | None = field(default=None, metadata={_WRITE: "never"})
    extra: dict[str, Any] = field(default_factory=dict, metadata={_WRITE: "never"})
    version: int = field(default=RESULTS_VERSION, metadata={_WRITE: "never"})
    source: str | None = field(default=None, metadata={_WRITE: "never"})

    def __post_init__(self) -> None:
        # Secrets never enter a record, so nothing built from one (results.json, a card, an export) can leak them,
        # whether the record comes from training or from an old file written before masking.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict | list):
                setattr(self, f.name, mask_secrets(value))
        self.command = mask_command(self.command)

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
        """The JSON object of ``results.json``: every field in declaration order (``teachers`` and ``hub_export``
        only when set; ``hub_url`` and ``source`` never), then the unknown keys read from the file, then the
        version this code writes."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            write = f.metadata.get(_WRITE, "always")
            if write == "never" or (write == "when_set" and not value and value != 0):
                continue
            data[f.name] = _jsonable(value)
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

