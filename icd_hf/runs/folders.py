"""Run folders: their default names, their checkpoints, the run record (``icd_run.json``) and their clean-up."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .record import EXPORT_DIRNAME, RESULTS_NAME

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

