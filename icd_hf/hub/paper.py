"""Look up the ICD paper's published CIFAR-100 figures for a teacher/student pair, to print next to ours.

The tables (``table1_cifar100_same_architecture.csv``, ``table2_cifar100_cross_architecture.csv``) have one
column per teacher→student pair, with rows ``teacher``, ``student``, ``teacher_acc``, ``student_vanilla_acc``
and one row per method (``KD``, ``CRD+KD``, ``ICD+KD``...). They are facts to compare against: a card shows
them in their own column, never in place of a measured number. Names, spellings and the CSV reader are
:mod:`icd_hf.paper`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..paper import (
    PAIR_TABLES,
    PAPER_NAMES,
    TEACHER_ACC_ROW,
    VANILLA_ACC_ROW,
    PairTable,
    default_paper_dir,
    method_display_name,
    normalise_name,
    paper_model_name,
    parse_pair_table,
    read_paper_csv,
)

__all__ = [
    "PAPER_NAMES",
    "PAPER_TABLES",
    "PaperResult",
    "default_paper_dir",
    "find_paper_result",
    "paper_method_name",
    "paper_name",
]

PAPER_TABLES = PAIR_TABLES
paper_name = paper_model_name


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


def paper_method_name(method: str) -> str:
    """``icd+kd`` -> ``ICD+KD``: the row label a method has in the paper's tables (components in the run's order)."""
    return method_display_name(method, kd_last=True)


def find_paper_result(
    teacher: str | None, student: str, method: str | None = None, paper_dir: str | Path | None = None
) -> PaperResult | None:
    """The paper's figures for ``teacher``→``student`` (zoo or paper names), or ``None`` if it has no such pair.

    Teacher-only look-ups (``teacher=None``) are done with ``student`` as the architecture: the result then
    carries that architecture's accuracy as a *teacher* in ``teacher_top1`` (first column where it is one).
    A missing ``paper_dir`` (e.g. an installed wheel without the shared folder) is not an error: ``None``.
    """
    directory = Path(paper_dir) if paper_dir is not None else default_paper_dir()
    want_teacher = normalise_name(paper_name(teacher)) if teacher is not None else None
    want_student = normalise_name(paper_name(student))
    for table_name in PAPER_TABLES:
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

            method_row = paper_method_name(method) if method and teacher is not None else None
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
