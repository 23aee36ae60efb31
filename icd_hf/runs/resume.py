"""Whether a run folder may be resumed: the fingerprint of what defines a run, its comparison, the resume plan."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .folders import RUN_RECORD_NAME, find_resumable_checkpoint, read_run_record
from .policy import defines_the_run
from .record import RESULTS_NAME, _read_json_object

logger = logging.getLogger(__name__)

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
        {f"training.{k}": v for k, v in sorted(training.items()) if defines_the_run(k)}
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
