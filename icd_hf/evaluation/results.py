"""Results tables in the paper's layout, from our runs' ``results.json`` files and from the published CSVs.

Layout (paper tables 1-2, as in CRD): one column per teacher→student pair, a *Teacher* and a *Vanilla student*
row, then one row per distillation method; arrows mark whether a method beats KD on that pair (↑) or not (↓).

The summary statistic is CRD's *average relative improvement* over KD (Tian et al., "Contrastive Representation
Distillation", ICLR 2020, section 4.1): for each pair, how much of KD's own gain over the vanilla student the
method adds on top of KD, averaged over pairs::

    rel_impr(method) = mean_over_pairs( (acc_method - acc_KD) / (acc_KD - acc_vanilla) )

It is returned as a fraction (0.57) and printed as a percentage (57.0%).
"""

from __future__ import annotations

import logging
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..losses.presets import method_sort_key
from ..paper import (
    TEACHER_ACC_ROW,
    VANILLA_ACC_ROW,
    default_paper_dir,
    find_paper_table,
    method_display_name,
    parse_cell,
    parse_pair_table,
    read_paper_csv,
)
from ..paper import normalise_name as _normalise
from ..paper import paper_model_name as model_display_name
from ..runs import RESULTS_NAME, RunResults

logger = logging.getLogger(__name__)

__all__ = [
    "TEACHER_ROW",
    "VANILLA_ROW",
    "Column",
    "ResultsTable",
    "average_relative_improvement",
    "build_results_table",
    "default_paper_dir",
    "find_paper_table",
    "format_markdown",
    "load_paper_table",
    "load_run_results",
    "method_display_name",
    "model_display_name",
    "plot_results",
    "relative_improvement",
    "table_to_dict",
]

TEACHER_ROW = "Teacher"
VANILLA_ROW = "Vanilla student"
_VANILLA_METHODS = {"vanilla", "ce", "baseline", "teacher"}
# Spellings (`model_display_name`, `method_display_name`), `default_paper_dir`, `find_paper_table` and the CSV
# reader are `icd_hf.paper`'s, shared with the model cards; they are re-exported here for this module's users.
# Method rows follow the loss classes' `table_order` (`method_sort_key`).


@dataclass(frozen=True)
class Column:
    """One column of a results table: a teacher→student pair, or a named setting (a transfer task of table 3)."""

    teacher: str | None
    student: str | None
    name: str | None = None

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return f"{self.teacher}→{self.student}" if self.teacher else str(self.student)

    @property
    def key(self) -> str:
        """Spelling-insensitive identity used to match our columns with the paper's."""
        if self.teacher and self.student:
            return f"{_normalise(self.teacher)}>{_normalise(self.student)}"
        return _normalise(self.label)


@dataclass
class ResultsTable:
    """Accuracies (%) by row and column; ``None`` where there is no number (the paper's ``n/a``, a missing run).

    Attributes:
        columns: the table's columns, in display order.
        teacher: teacher accuracy per column.
        vanilla: vanilla (no distillation) student accuracy per column.
        methods: ``{method row label: accuracy per column}`` in display order.
        stds: sample std over runs where a cell averages several runs (``None`` otherwise).
        counts: number of runs averaged per cell (paper tables: 1).
        source: where the numbers come from (``"ours"``, ``"paper table1"``).
    """

    columns: list[Column]
    teacher: list[float | None]
    vanilla: list[float | None]
    methods: dict[str, list[float | None]]
    stds: dict[str, list[float | None]] = field(default_factory=dict)
    counts: dict[str, list[int]] = field(default_factory=dict)
    source: str = "ours"

    def value(self, row: str, column: Column) -> float | None:
        """Accuracy of ``row`` (a method label, ``TEACHER_ROW``, ``VANILLA_ROW``) in the column matching ``column``."""
        index = self.column_index(column)
        if index is None:
            return None
        return self.row(row)[index]

    def row(self, row: str) -> list[float | None]:
        if row == TEACHER_ROW:
            return self.teacher
        if row == VANILLA_ROW:
            return self.vanilla
        if row not in self.methods:
            raise KeyError(f"No row {row!r} in the {self.source} table (rows: {', '.join(self.methods)}).")
        return self.methods[row]

    def column_index(self, column: Column) -> int | None:
        for i, candidate in enumerate(self.columns):
            if candidate.key == column.key:
                return i
        return None


# --------------------------------------------------------------------------------------------- relative improvement


def relative_improvement(method_acc: float | None, kd_acc: float | None, vanilla_acc: float | None) -> float | None:
    """``(method - KD) / (KD - vanilla)`` for one pair, or ``None`` when a number is missing or KD gains nothing.

    With ``KD == vanilla`` the ratio is undefined (KD's gain is the yardstick), so the pair is left out.
    """
    if method_acc is None or kd_acc is None or vanilla_acc is None:
        return None
    gain = kd_acc - vanilla_acc
    if abs(gain) < 1e-12:
        return None
    return (method_acc - kd_acc) / gain


def average_relative_improvement(
    table: ResultsTable, method: str, baseline: str = "KD", columns: Sequence[Column] | None = None
) -> float | None:
    """CRD's average relative improvement of ``method`` over ``baseline`` (a fraction), over the pairs where the
    method, the baseline and the vanilla student all have a number; ``None`` if there is no such pair.

    Args:
        table: the table to read.
        method: row label (``"ICD+KD"``).
        baseline: the reference method row (``"KD"``).
        columns: restrict to these columns (matched by pair), e.g. the pairs we also ran.
    """
    if method not in table.methods or baseline not in table.methods:
        return None
    indices = range(len(table.columns)) if columns is None else [
        i for i in (table.column_index(c) for c in columns) if i is not None
    ]
    values = [
        r for i in indices
        if (r := relative_improvement(table.methods[method][i], table.methods[baseline][i], table.vanilla[i]))
        is not None
    ]
    return sum(values) / len(values) if values else None


# ------------------------------------------------------------------------------------------------------- our runs


def load_run_results(paths: Iterable[str | os.PathLike[str]]) -> list[RunResults]:
    """Read ``results.json`` files: each path is such a file, a run directory holding one, or a folder searched
    recursively. Each record's ``source`` says where it was read from.

    Raises:
        FileNotFoundError: a path does not exist or holds no ``results.json``.
        ValueError: a file is not a ``results.json`` written by icd-hf.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            files.append(path)
        elif (path / RESULTS_NAME).is_file():
            files.append(path / RESULTS_NAME)
        elif path.is_dir():
            found = sorted(path.rglob(RESULTS_NAME))
            if not found:
                raise FileNotFoundError(f"No {RESULTS_NAME} under {path}: pass run directories written by the trainer.")
            files.extend(found)
        else:
            raise FileNotFoundError(f"{path} does not exist; pass results.json files or run directories.")
    # The same file reached twice (a run dir and its parent) counts once.
    return [RunResults.read(file) for file in dict.fromkeys(files)]


def _metric(result: RunResults, metric: str) -> float:
    value = getattr(result.metrics, metric, None)
    if value is None:
        raise KeyError(f"{result.source or 'a results.json'} has no metrics.{metric}.")
    return float(value)


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def build_results_table(
    results: Sequence[RunResults | Mapping[str, Any]],
    *,
    metric: str = "top1",
    dataset: str | None = None,
    columns: Sequence[Column] | None = None,
) -> ResultsTable:
    """Arrange run results into the paper's layout; several runs of one cell (seeds) are averaged.

    A run whose ``teacher`` is ``null`` (method ``vanilla``) is a plain training of its ``student`` architecture:
    it gives the *Vanilla student* entry of every pair with that student and the *Teacher* entry of every pair
    with that teacher. Without such a run, the *Teacher* entry falls back to the ``teacher.top1`` the
    distillation runs recorded.

    Args:
        results: run records (:func:`load_run_results`) or parsed ``results.json`` dicts.
        metric: ``metrics`` key to tabulate: ``top1`` (last epoch, as the paper reports) or ``best_top1``.
        dataset: keep runs on this dataset only; required when the runs cover several.
        columns: column order (e.g. the paper's); columns of ours not listed are appended in order of appearance.
    """
    results = [RunResults.coerce(r) for r in results]
    names = sorted({str(r.dataset.get("name")) for r in results})
    if dataset is not None:
        results = [r for r in results if str(r.dataset.get("name")) == dataset]
        if not results:
            raise ValueError(f"No run on dataset {dataset!r} (runs are on: {', '.join(names)}).")
    elif len(names) > 1:
        raise ValueError(f"The runs cover several datasets ({', '.join(names)}); pick one with dataset=<name>.")

    vanilla_runs: dict[str, list[float]] = {}
    teacher_reported: dict[str, dict[str, float]] = {}
    cells: dict[str, dict[str, list[float]]] = {}
    found_columns: dict[str, Column] = {}
    for r in results:
        student = model_display_name(r.student.name)
        teacher = r.teacher
        if not teacher or r.method.lower() in _VANILLA_METHODS:
            vanilla_runs.setdefault(_normalise(student), []).append(_metric(r, metric))
            continue
        column = Column(model_display_name(teacher.name), student)
        found_columns.setdefault(column.key, column)
        cells.setdefault(method_display_name(r.method), {}).setdefault(column.key, []).append(_metric(r, metric))
        if teacher.top1 is not None:
            checkpoint = str(teacher.path_or_hub_id or teacher.name)
            teacher_reported.setdefault(_normalise(column.teacher), {})[checkpoint] = float(teacher.top1)

    ordered: list[Column] = []
    for column in columns or ():
        if column.key in found_columns and column.key not in {c.key for c in ordered}:
            ordered.append(found_columns[column.key])
    ordered += [c for c in found_columns.values() if c.key not in {o.key for o in ordered}]

    def teacher_acc(column: Column) -> float | None:
        own = vanilla_runs.get(_normalise(column.teacher))
        if own:
            return statistics.fmean(own)
        reported = teacher_reported.get(_normalise(column.teacher))
        return statistics.fmean(reported.values()) if reported else None

    methods: dict[str, list[float | None]] = {}
    stds: dict[str, list[float | None]] = {}
    counts: dict[str, list[int]] = {}
    for label in sorted(cells, key=method_sort_key):
        stats = [_mean_std(cells[label].get(c.key, [])) for c in ordered]
        methods[label] = [m for m, _ in stats]
        stds[label] = [s for _, s in stats]
        counts[label] = [len(cells[label].get(c.key, [])) for c in ordered]
    vanilla_stats = [_mean_std(vanilla_runs.get(_normalise(c.student), [])) for c in ordered]
    stds[VANILLA_ROW] = [s for _, s in vanilla_stats]
    counts[VANILLA_ROW] = [len(vanilla_runs.get(_normalise(c.student), [])) for c in ordered]
    return ResultsTable(
        columns=ordered,
        teacher=[teacher_acc(c) for c in ordered],
        vanilla=[m for m, _ in vanilla_stats],
        methods=methods,
        stds=stds,
        counts=counts,
        source="ours",
    )


# ---------------------------------------------------------------------------------------------- published tables


def load_paper_table(name: str = "table1", paper_dir: str | os.PathLike[str] | None = None) -> ResultsTable:
    """Parse a published table into a :class:`ResultsTable`.

    Two layouts are read: tables 1-2 (rows ``teacher``, ``student``, ``teacher_acc``, ``student_vanilla_acc``,
    then one row per method; one column per pair) and table 3 (one row per transfer task; columns
    ``teacher``, ``student_vanilla`` and one per method), which is transposed into the same shape.

    Raises:
        FileNotFoundError: no such table (see :func:`find_paper_table` to test for it first).
    """
    path = find_paper_table(name, paper_dir)
    if path is None:
        where = paper_dir if paper_dir is not None else default_paper_dir()
        raise FileNotFoundError(
            f"No published table {name!r} in {where}: pass --paper-dir pointing at the folder with the paper's "
            f"CSVs (shared/paper), or a path to the .csv."
        )
    rows = read_paper_csv(path)
    header = rows[0]
    source = f"paper {path.stem.split('_')[0]}"
    if header[0].lower() == "teacher":
        pairs = parse_pair_table(rows, path)
        columns = [Column(t, s) for t, s in zip(pairs.teachers, pairs.students)]
        missing = [None] * (len(header) - 1)
        methods = {label: v for label, v in pairs.rows.items() if label not in {TEACHER_ACC_ROW, VANILLA_ACC_ROW}}
        return ResultsTable(
            columns,
            pairs.rows.get(TEACHER_ACC_ROW, missing),
            pairs.rows.get(VANILLA_ACC_ROW, list(missing)),
            methods,
            source=source,
        )
    # Table 3 layout: rows are settings, columns are teacher / vanilla / methods.
    labels = header[1:]
    body = rows[1:]
    columns = [Column(None, None, name=row[0]) for row in body]

    def column_values(label: str) -> list[float | None]:
        i = labels.index(label) + 1
        return [parse_cell(row[i]) if i < len(row) else None for row in body]

    lowered = [label.lower() for label in labels]
    if "teacher" not in lowered or "student_vanilla" not in lowered:
        raise ValueError(f"{path}: expected columns 'teacher' and 'student_vanilla' in the header {header}.")
    teacher_label = labels[lowered.index("teacher")]
    vanilla_label = labels[lowered.index("student_vanilla")]
    methods = {label: column_values(label) for label in labels if label not in {teacher_label, vanilla_label}}
    return ResultsTable(columns, column_values(teacher_label), column_values(vanilla_label), methods, source=source)


# -------------------------------------------------------------------------------------------------------- output


def _arrow(value: float | None, reference: float | None) -> str:
    if value is None or reference is None:
        return ""
    if value > reference:
        return " ↑"
    if value < reference:
        return " ↓"
    return " ="


def _fmt(value: float | None, digits: int, std: float | None = None, arrow: str = "") -> str:
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    if std is not None:
        text += f" ± {std:.{digits}f}"
    return text + arrow


def _fmt_rel(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.1f}%"


def _markdown_rows(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _single_markdown(table: ResultsTable, baseline: str, digits: int) -> str:
    rel_header = f"Avg. rel. impr. over {baseline}"
    header = ["Method", *[c.label for c in table.columns], rel_header]
    rows = [
        [TEACHER_ROW, *[_fmt(v, digits) for v in table.teacher], ""],
        [VANILLA_ROW, *[_fmt(v, digits, s) for v, s in zip(table.vanilla, _stds(table, VANILLA_ROW))], ""],
    ]
    reference = table.methods.get(baseline)
    for label, values in table.methods.items():
        cells = []
        for i, (v, s) in enumerate(zip(values, _stds(table, label))):
            arrow = "" if label == baseline or reference is None else _arrow(v, reference[i])
            cells.append(_fmt(v, digits, s, arrow))
        rel = "" if label == baseline else _fmt_rel(average_relative_improvement(table, label, baseline))
        rows.append([label, *cells, rel])
    return _markdown_rows(header, rows)


def _stds(table: ResultsTable, row: str) -> list[float | None]:
    return table.stds.get(row) or [None] * len(table.columns)


def _paired_markdown(ours: ResultsTable, paper: ResultsTable, baseline: str, digits: int) -> str:
    header = ["Method"]
    for column in ours.columns:
        header += [f"{column.label} ours", "paper"]
    header += [f"Avg. rel. impr. over {baseline} ours", "paper (same pairs)"]
    paper_index = [paper.column_index(c) for c in ours.columns]

    def paper_cell(row: str, j: int | None, arrow_reference: list[float | None] | None) -> str:
        if j is None or (row not in (TEACHER_ROW, VANILLA_ROW) and row not in paper.methods):
            return "–"
        value = paper.row(row)[j]
        arrow = "" if arrow_reference is None else _arrow(value, arrow_reference[j])
        return _fmt(value, digits, arrow=arrow)

    rows = []
    ours_kd = ours.methods.get(baseline)
    paper_kd = paper.methods.get(baseline)
    for row in [TEACHER_ROW, VANILLA_ROW, *ours.methods]:
        is_method = row not in (TEACHER_ROW, VANILLA_ROW)
        ours_values = ours.row(row)
        ours_std = _stds(ours, row)
        cells = [row]
        for i, j in enumerate(paper_index):
            arrow = ""
            if is_method and row != baseline and ours_kd is not None:
                arrow = _arrow(ours_values[i], ours_kd[i])
            cells.append(_fmt(ours_values[i], digits, ours_std[i], arrow))
            cells.append(paper_cell(row, j, paper_kd if is_method and row != baseline else None))
        if is_method and row != baseline:
            cells.append(_fmt_rel(average_relative_improvement(ours, row, baseline)))
            cells.append(_fmt_rel(average_relative_improvement(paper, row, baseline, columns=ours.columns)))
        else:
            cells += ["", ""]
        rows.append(cells)
    return _markdown_rows(header, rows)


def format_markdown(
    table: ResultsTable, *, paper: ResultsTable | None = None, baseline: str = "KD", digits: int = 2
) -> str:
    """The table as GitHub markdown: Teacher / Vanilla student / method rows, ↑/↓ against ``baseline`` per pair,
    and a last column with the average relative improvement over ``baseline``.

    With ``paper``, every column of ``table`` is followed by the paper's number for the same pair (and the
    paper's relative improvement over those same pairs); the full published table can be printed with
    ``format_markdown(paper)``.
    """
    if paper is None:
        return _single_markdown(table, baseline, digits)
    return _paired_markdown(table, paper, baseline, digits)


def table_to_dict(table: ResultsTable, *, baseline: str = "KD") -> dict[str, Any]:
    """JSON-ready form: columns, every row's numbers, and each method's relative improvement (fraction)."""
    return {
        "source": table.source,
        "baseline": baseline,
        "columns": [{"label": c.label, "teacher": c.teacher, "student": c.student} for c in table.columns],
        "teacher": table.teacher,
        "vanilla": table.vanilla,
        "methods": table.methods,
        "stds": table.stds,
        "counts": table.counts,
        "avg_relative_improvement": {
            label: average_relative_improvement(table, label, baseline) for label in table.methods if label != baseline
        },
    }


def plot_results(
    table: ResultsTable,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    include_vanilla: bool = True,
    dpi: int = 150,
) -> Path:
    """Grouped bar chart: one group per pair, one bar per method (plus the vanilla student), teacher as a marker.

    The y-axis starts a little below the lowest bar: the differences between methods are a few points, which a
    zero-based axis would hide. Drawn on a bare ``Figure`` (Agg), so it works headless without ``pyplot``.

    Returns:
        The path written.
    """
    import matplotlib
    from matplotlib.figure import Figure

    rows: dict[str, list[float | None]] = {}
    if include_vanilla:
        rows[VANILLA_ROW] = table.vanilla
    rows.update(table.methods)
    rows = {label: values for label, values in rows.items() if any(v is not None for v in values)}
    if not rows or not table.columns:
        raise ValueError("The table has no numbers to plot.")
    numbers = [v for values in rows.values() for v in values if v is not None]
    numbers += [v for v in table.teacher if v is not None]
    n_cols, n_rows = len(table.columns), len(rows)
    width = 0.8 / n_rows
    fig_width = min(18.0, max(6.0, 1.5 + n_cols * (0.12 * n_rows + 0.4)))
    fig = Figure(figsize=(fig_width, 4.8), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["tab20"]
    for k, (label, values) in enumerate(rows.items()):
        xs = [i - 0.4 + width * (k + 0.5) for i, v in enumerate(values) if v is not None]
        ys = [v for v in values if v is not None]
        ax.bar(xs, ys, width=width * 0.95, label=label, color=cmap(k % 20),
               hatch="//" if label == VANILLA_ROW else None, edgecolor="white" if label != VANILLA_ROW else "grey")
    teacher_x = [i for i, v in enumerate(table.teacher) if v is not None]
    if teacher_x:
        ax.hlines([table.teacher[i] for i in teacher_x], [i - 0.42 for i in teacher_x], [i + 0.42 for i in teacher_x],
                  colors="black", linewidth=1.5, zorder=3, label=TEACHER_ROW)
    low, high = min(numbers), max(numbers)
    ax.set_ylim(max(0.0, low - 2.0), min(100.0, high + 1.5) if high < 100 else high + 0.5)
    ax.set_xticks(range(n_cols), [c.label.replace("→", "\n→ ") for c in table.columns], fontsize=8)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    # Below the axes: inside, the legend would hide the bars it labels.
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, ncols=min(9, n_rows + 1), loc="outside lower center")
    if title:
        ax.set_title(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
