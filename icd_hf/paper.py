"""The ICD paper's published tables: model spellings, where the CSVs live, how they are read, and the look-up of
one teacher→student pair's figures.

One source of truth for the results tables (:mod:`icd_hf.evaluation.results`), the model cards
(:mod:`icd_hf.hub.card`) and the CPU-budget protocol, which all set our numbers next to the paper's. A method's
spelling (``method_display_name``) is its loss classes' ``paper_name`` (:mod:`icd_hf.losses.presets`).

The CSVs (``../shared/paper/*.csv`` next to a source checkout) come in two layouts:

- tables 1-2 (*pair* layout): one column per teacher→student pair; rows ``teacher``, ``student``,
  ``teacher_acc``, ``student_vanilla_acc``, then one row per method (``KD``, ``CRD+KD``, ``ICD+KD``...);
- table 3: one row per transfer task, columns ``teacher``, ``student_vanilla`` and one per method.

Cells the paper prints as ``n/a`` (or leaves empty) read as ``None``. The figures are facts to compare against:
a card or a table shows them in their own column, never in place of a measured number.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .losses.presets import method_display_name

__all__ = [
    "PAIR_TABLES",
    "PAPER_NAMES",
    "TEACHER_ACC_ROW",
    "VANILLA_ACC_ROW",
    "PairTable",
    "PaperResult",
    "default_paper_dir",
    "find_paper_result",
    "find_paper_table",
    "method_display_name",
    "normalise_name",
    "paper_model_name",
    "parse_cell",
    "parse_pair_table",
    "read_paper_csv",
]

# Zoo name -> the paper's spelling. Table 2 capitalises some names differently ("ResNet-32x4"), which
# `normalise_name` absorbs; this map documents the correspondence and covers what normalisation cannot.
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

# The CIFAR-100 teacher→student tables (pair layout), in the order a look-up searches them.
PAIR_TABLES = ("table1_cifar100_same_architecture.csv", "table2_cifar100_cross_architecture.csv")
TEACHER_ACC_ROW = "teacher_acc"
VANILLA_ACC_ROW = "student_vanilla_acc"


def normalise_name(name: str) -> str:
    """``ResNet-32x4`` -> ``resnet32x4``: the spelling-insensitive key names and row labels are matched by."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def paper_model_name(zoo_name: str) -> str:
    """``wrn_40_2`` -> ``WRN-40-2``: the paper's spelling of a zoo architecture (other names are unchanged)."""
    return PAPER_NAMES.get(zoo_name, zoo_name)


def default_paper_dir() -> Path:
    """``<repo root>/../shared/paper``: where the published tables sit next to a source checkout."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "paper"


def find_paper_table(name: str, paper_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Path of a published table: ``name`` is a CSV path, or a prefix such as ``table1`` looked up in
    ``paper_dir`` (default :func:`default_paper_dir`). ``None`` when it is not there (e.g. an installed wheel)."""
    candidate = Path(name)
    if candidate.suffix == ".csv":
        return candidate if candidate.is_file() else None
    directory = Path(paper_dir) if paper_dir is not None else default_paper_dir()
    if not directory.is_dir():
        return None
    matches = sorted(p for p in directory.glob("*.csv") if p.stem == name or p.stem.startswith(f"{name}_"))
    return matches[0] if matches else None


def parse_cell(text: str) -> float | None:
    """A table cell as a number; ``None`` for ``n/a``, ``-``, an empty cell or a non-finite value."""
    try:
        value = float(text.strip())
    except ValueError:  # the paper has no number for this cell
        return None
    return value if math.isfinite(value) else None


def read_paper_csv(path: str | os.PathLike[str]) -> list[list[str]]:
    """The rows of a published CSV, every cell stripped, blank rows dropped."""
    with Path(path).open(newline="") as f:
        return [[c.strip() for c in row] for row in csv.reader(f) if row and any(c.strip() for c in row)]


@dataclass(frozen=True)
class PairTable:
    """A table in the pair layout (tables 1-2).

    Attributes:
        teachers: the paper's teacher name per column.
        students: the paper's student name per column.
        rows: every numeric row by its label as printed (``teacher_acc``, ``student_vanilla_acc``, ``KD``...),
            one value per column (``None`` for ``n/a`` and for cells the row lacks).
    """

    teachers: list[str]
    students: list[str]
    rows: dict[str, list[float | None]]

    def lookup(self, label: str) -> list[float | None] | None:
        """The row whose label matches ``label`` up to spelling (``crd+kd`` finds ``CRD+KD``), or ``None``."""
        by_key = {normalise_name(k): v for k, v in self.rows.items()}
        return by_key.get(normalise_name(label))


def parse_pair_table(rows: list[list[str]], source: str | os.PathLike[str] = "the table") -> PairTable:
    """Read rows from :func:`read_paper_csv` in the pair layout: the first row is ``teacher``, one is ``student``.

    Raises:
        ValueError: the rows are not in the pair layout (``source`` names the file in the message).
    """
    if not rows or rows[0][0].lower() != "teacher":
        raise ValueError(f"{source} is not a teacher→student table: its first row should be 'teacher'.")
    by_label = {row[0]: row[1:] for row in rows}
    if "student" not in by_label:
        raise ValueError(f"{source} has a 'teacher' row but no 'student' row.")
    teacher_label = rows[0][0]
    width = len(rows[0]) - 1
    numbers = {
        label: [parse_cell(raw[i]) if i < len(raw) else None for i in range(width)]
        for label, raw in by_label.items()
        if label not in {teacher_label, "student"}
    }
    return PairTable(teachers=by_label[teacher_label], students=by_label["student"], rows=numbers)


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


def find_paper_result(
    teacher: str | None, student: str, method: str | None = None, paper_dir: str | Path | None = None
) -> PaperResult | None:
    """The paper's figures for ``teacher``→``student`` (zoo or paper names), or ``None`` if it has no such pair.

    Teacher-only look-ups (``teacher=None``) are done with ``student`` as the architecture: the result then
    carries that architecture's accuracy as a *teacher* in ``teacher_top1`` (first column where it is one).
    A missing ``paper_dir`` (e.g. an installed wheel without the shared folder) is not an error: ``None``.
    """
    directory = Path(paper_dir) if paper_dir is not None else default_paper_dir()
    want_teacher = normalise_name(paper_model_name(teacher)) if teacher is not None else None
    want_student = normalise_name(paper_model_name(student))
    for table_name in PAIR_TABLES:
        path = directory / table_name
        if not path.is_file():
            continue
        try:
            table = parse_pair_table(read_paper_csv(path), path)
        except ValueError:  # not a teacher→student table: nothing to look up in it
            continue
        for col, (t, s) in enumerate(zip(table.teachers, table.students)):
            if teacher is None:
                if normalise_name(t) != want_student:
                    continue
            elif normalise_name(t) != want_teacher or normalise_name(s) != want_student:
                continue

            def cell(label: str, table: PairTable = table, col: int = col) -> float | None:
                values = table.lookup(label)
                return values[col] if values is not None else None

            method_row = method_display_name(method) if method and teacher is not None else None
            return PaperResult(
                table=table_name,
                teacher=t,
                student=s,
                teacher_top1=cell(TEACHER_ACC_ROW),
                vanilla_top1=cell(VANILLA_ACC_ROW) if teacher is not None else None,
                kd_top1=cell("KD") if teacher is not None else None,
                method=method_row,
                method_top1=cell(method_row) if method_row else None,
            )
    return None


def find_transfer_results(target: str, paper_dir: str | os.PathLike[str] | None = None) -> dict[str, float] | None:
    """The paper's table 3 (linear probe of the frozen WRN-16-2 student of WRN-40-2, trained on CIFAR-100) for the
    transfer to ``target`` (``"TIN-200"``, ``"STL-10"``): ``{column: top-1}`` with columns ``teacher``,
    ``student_vanilla`` and the methods (``KD``, ``ICD+KD``, ...); ``None`` when the table or the row is absent."""
    path = find_paper_table("table3", paper_dir)
    if path is None:
        return None
    header, *rows = read_paper_csv(path)
    for row in rows:
        if row[0].upper().endswith(target.upper()):
            return {name: value for name, cell in zip(header[1:], row[1:]) if (value := parse_cell(cell)) is not None}
    return None
