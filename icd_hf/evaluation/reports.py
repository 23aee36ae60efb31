"""One mechanism for every generated report: kept results in, a summary file and README blocks out, drift caught.

A report is a declaration (a ``Report`` subclass in ``benchmarks/reports/``): where its kept results are, how they
become a summary (``summarise``), and how the summary becomes a README block (``render``) and any other generated
file (``extra_outputs``). This module does the rest, the same way for every report:

- ``generated(report)``: every file the report owns, as the text it should have now;
- ``collect(report)``: write them;
- ``stale(report)``: the files whose text differs (a kept run added without ``collect``, a hand edit), which one
  parametrised test checks for every discovered report;
- ``splice``: the one function that puts a block between a README's markers.

``python benchmarks/report.py collect|check [NAME ...]`` is the command line. Numbers in the docs therefore come
from committed results files only, through code, never typed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True)
class PlannedRun:
    """One run a report declares: the Python script that trains it with its arguments, its folder, and where its
    record is kept (``result``: the file of ``output_dir`` that is copied there; empty when the command writes
    ``kept`` itself)."""

    key: str
    command: list[str]
    output_dir: str
    kept: str
    result: str = "results.json"


class Report:
    """A generated report. Subclasses set the class attributes and implement ``summarise`` / ``render``.

    Attributes:
        name: its name on the command line (``cpu_budget``).
        root: the checkout the paths are relative to (the drift test points it at a copy).
        summary_file: the summary JSON ``collect`` writes from ``summarise()``; for a report whose summary is a
            measurement written by its own script (``summarise`` returns ``None``), the file ``render`` reads.
        readme: the README holding the block; ``begin`` / ``end`` are its markers (``None``: no README block).
    """

    name: ClassVar[str]
    summary_file: ClassVar[str]
    readme: ClassVar[str] = "README.md"
    begin: ClassVar[str | None] = None
    end: ClassVar[str | None] = None

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, relative: str | Path) -> Path:
        return self.root / relative

    def planned_runs(self, data_dir: str) -> list[PlannedRun]:
        """The runs that produce the kept results, in the order ``benchmarks/report.py run`` runs them."""
        return []

    def summarise(self) -> dict[str, Any] | None:
        """The summary from the kept results, or ``None`` when the summary file is itself the measurement."""
        return None

    def render(self, summary: dict[str, Any]) -> str:
        """The README block's body (between the markers)."""
        raise NotImplementedError

    def extra_outputs(self, summary: dict[str, Any]) -> dict[Path, str]:
        """Other files generated from the summary (``{path: text}``), e.g. example model cards."""
        return {}

    def comparable(self, summary: dict[str, Any]) -> dict[str, Any]:
        """What a drift check compares of a summary (default: all of it). A report whose summary carries figures
        read from outside the checkout (``../shared/paper``) drops them here."""
        return summary


def splice(text: str, begin: str, end: str, body: str) -> str:
    """``text`` with what lies between the markers ``begin`` and ``end`` replaced by ``body`` (markers kept)."""
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"no {begin} ... {end} block to fill")
    return text[:start] + f"{begin}\n{body}\n{end}" + text[stop + len(end):]


def _json_text(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


def _summary_and_text(report: Report) -> tuple[dict[str, Any], str | None]:
    """The summary the outputs are rendered from and, when the report summarises kept results, the summary
    file's text; a report without kept results of its own renders its committed measurement file."""
    summary = report.summarise()
    if summary is not None:
        text = _json_text(summary)
        return json.loads(text), text  # what the file holds: tuples as lists, keys as strings
    path = report.path(report.summary_file)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the benchmark that writes it first.")
    return json.loads(path.read_text()), None


def generated(report: Report) -> dict[Path, str]:
    """Every file ``report`` owns, with the text it should have now."""
    summary, summary_text = _summary_and_text(report)
    out: dict[Path, str] = {}
    if summary_text is not None:
        out[report.path(report.summary_file)] = summary_text
    if report.begin is not None and report.end is not None:
        readme = report.path(report.readme)
        out[readme] = splice(readme.read_text(), report.begin, report.end, report.render(summary))
    out.update(report.extra_outputs(summary))
    return out


def collect(report: Report) -> list[Path]:
    """Write every file of ``report`` that is out of date; returns those written."""
    written = []
    for path, text in generated(report).items():
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    return written


def stale(report: Report) -> list[str]:
    """The files of ``report`` that differ from what its kept results give (empty: no drift)."""
    out = []
    for path, text in generated(report).items():
        if not path.is_file():
            out.append(f"{path} is missing")
        elif path.suffix == ".json" and path == report.path(report.summary_file):
            if report.comparable(json.loads(path.read_text())) != report.comparable(json.loads(text)):
                out.append(f"{path} is not what the kept results give")
        elif path.read_text() != text:
            out.append(f"{path} is not what {report.summary_file} gives")
    return out


def discover(folder: Path, root: Path | None = None) -> dict[str, Report]:
    """``{name: report}`` for every ``Report`` subclass defined in the ``*.py`` files of ``folder`` (the
    declarations), each bound to ``root`` (default: the folder's checkout, two levels up)."""
    root = Path(root) if root is not None else Path(folder).resolve().parents[1]
    reports: dict[str, Report] = {}
    for path in sorted(Path(folder).glob("*.py")):
        if path.name.startswith("_"):
            continue
        module_name = f"icd_hf_reports.{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Report) and value is not Report and \
                    value.__module__ == module_name and "name" in vars(value):
                reports[value.name] = value(root)
    return reports


def select(reports: dict[str, Report], names: Iterable[str]) -> list[Report]:
    names = list(names)
    unknown = [n for n in names if n not in reports]
    if unknown:
        raise ValueError(f"unknown report {', '.join(unknown)}: choose from {', '.join(sorted(reports))}.")
    return [reports[n] for n in names] if names else list(reports.values())
