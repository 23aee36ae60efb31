"""Look up the ICD paper's published CIFAR-100 figures for a teacher/student pair, to print next to ours.

The tables (``table1_cifar100_same_architecture.csv``, ``table2_cifar100_cross_architecture.csv``) have one
column per teacher→student pair, with rows ``teacher``, ``student``, ``teacher_acc``, ``student_vanilla_acc``
and one row per method (``KD``, ``CRD+KD``, ``ICD+KD``...). They are facts to compare against: a card shows
them in their own column, never in place of a measured number.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

# Zoo name -> the paper's column name. Table 2 capitalises some names differently ("ResNet-32x4"), which
# `_normalise` absorbs; this map documents the correspondence and covers names normalisation cannot.
PAPER_NAMES: dict[str, str] = {
    "wrn_40_2": "WRN-40-2",
    "wrn_16_2": "WRN-16-2",
    "wrn_40_1": "WRN-40-1",
    "resnet20": "resnet-20",
    "resnet32": "resnet-32",
    "resnet56": "resnet-56",
    "resnet110": "resnet-110",
    "resnet8x4": "resnet-8x4",
    "resnet32x4": "resnet-32x4",
    "resnet50": "ResNet-50",
    "vgg8": "VGG-8",
    "vgg13": "VGG-13",
    "mobilenetv2": "MobileNet-v2",
    "shufflenetv1": "ShuffleNet-v1",
    "shufflenetv2": "ShuffleNet-v2",
}

PAPER_TABLES = ("table1_cifar100_same_architecture.csv", "table2_cifar100_cross_architecture.csv")


@dataclass(frozen=True)
class PaperResult:
    """The paper's CIFAR-100 top-1 (%) for one teacher→student column; ``None`` where it prints ``n/a``."""

    table: str
    teacher: str
    student: str
    teacher_top1: float | None
    vanilla_top1: float | None
    kd_top1: float | None
    method: str | None
    method_top1: float | None


def default_paper_dir() -> Path:
    """``<repo root>/../shared/paper``: where the published tables sit next to a source checkout."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "paper"


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def paper_name(zoo_name: str) -> str:
    """The paper's column name for a zoo model name (unknown names are returned unchanged)."""
    return PAPER_NAMES.get(zoo_name, zoo_name)


def _to_float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:  # "n/a": the paper has no figure for this cell
        return None


def paper_method_name(method: str) -> str:
    """``icd+kd`` -> ``ICD+KD``: the row label a method has in the paper's tables."""
    known = {"fitnet": "FitNet"}
    return "+".join(known.get(part, part.upper()) for part in method.lower().split("+"))


def find_paper_result(
    teacher: str | None, student: str, method: str | None = None, paper_dir: str | Path | None = None
) -> PaperResult | None:
    """The paper's figures for ``teacher``→``student`` (zoo or paper names), or ``None`` if it has no such pair.

    Teacher-only look-ups (``teacher=None``) are done with ``student`` as the architecture: the result then
    carries that architecture's accuracy as a *teacher* in ``teacher_top1`` (first column where it is one).
    A missing ``paper_dir`` (e.g. an installed wheel without the shared folder) is not an error: ``None``.
    """
    directory = Path(paper_dir) if paper_dir is not None else default_paper_dir()
    for table in PAPER_TABLES:
        path = directory / table
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            rows = {row[0].strip(): [c.strip() for c in row[1:]] for row in csv.reader(f) if row}
        if "teacher" not in rows or "student" not in rows:
            continue
        for col, (t, s) in enumerate(zip(rows["teacher"], rows["student"])):
            if teacher is None:
                if _normalise(t) != _normalise(paper_name(student)):
                    continue
            elif _normalise(t) != _normalise(paper_name(teacher)) or _normalise(s) != _normalise(paper_name(student)):
                continue
            row_by_key = {_normalise(k): v for k, v in rows.items()}

            def cell(label: str, row_by_key: dict[str, list[str]] = row_by_key, col: int = col) -> float | None:
                values = row_by_key.get(_normalise(label))
                return _to_float(values[col]) if values and col < len(values) else None

            method_row = paper_method_name(method) if method and teacher is not None else None
            return PaperResult(
                table=table,
                teacher=t,
                student=s,
                teacher_top1=cell("teacher_acc"),
                vanilla_top1=cell("student_vanilla_acc") if teacher is not None else None,
                kd_top1=cell("KD") if teacher is not None else None,
                method=method_row,
                method_top1=cell(method_row) if method_row else None,
            )
    return None
