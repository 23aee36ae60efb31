"""Model cards for exported runs: ``huggingface_hub.ModelCardData`` metadata plus a Jinja2 body.

The metadata (YAML header) is built with ``ModelCardData`` and ``EvalResult`` so that it is exactly what the
Hub's own parser (``ModelCard.load(...).data.eval_results``) reads back. The body comes from
``icd_hf/hub/templates/student_card.md`` (a distilled student) or ``teacher_card.md`` (a model trained from
labels alone: a teacher or a vanilla baseline). Everything the card states comes from ``results.json``, the
published tables (``icd_hf.paper``), the loss classes (each method's description and BibTeX) or a latency
measurement made at export; nothing is invented when a figure is unknown: the cell shows "–".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..hub_ids import is_hub_id
from ..losses import get_loss_class
from ..losses.presets import method_display_name
from ..paper import PaperResult, find_paper_result
from ..runs import RunResults, RunResultsError, defines_the_run
from .onnx_export import onnx_card_section

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
STUDENT_TEMPLATE = TEMPLATES_DIR / "student_card.md"
TEACHER_TEMPLATE = TEMPLATES_DIR / "teacher_card.md"
DEFAULT_LICENSE = "apache-2.0"
LOCAL_REPO_REF = "path/to/this/folder"


@dataclass(frozen=True)
class LatencyReport:
    """CPU latency of one forward pass (batch 1), measured at export; ``teacher_ms`` is ``None`` if not measured."""

    student_ms: float
    teacher_ms: float | None
    runs: int
    image_size: int
    threads: int
    device: str
    torch_version: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dataset_hub_id(dataset: Mapping[str, Any]) -> str | None:
    """The dataset's Hub id: ``hub_id`` if recorded, else ``source`` when it names a Hub dataset (not a local
    ``layout:path``), else the Hub id of a known dataset of that name."""
    for ref in (dataset.get("hub_id"), dataset.get("source")):
        if isinstance(ref, str) and is_hub_id(ref):
            return ref
    # Read from a local copy (e.g. the CIFAR-100 pickles): still the dataset the Hub id names.
    from ..data.info import KNOWN_DATASETS, canonical_dataset_name

    known = canonical_dataset_name(str(dataset.get("name") or ""))
    return KNOWN_DATASETS[known].hub_id if known else None


def _known_dataset(dataset: Mapping[str, Any]) -> str | None:
    from ..data.info import canonical_dataset_name

    return canonical_dataset_name(str(dataset.get("name") or ""))


def method_description(loss_name: str) -> str:
    """The card's line for one loss term: ``**AT**: match the spatial attention maps...`` (from its loss class)."""
    try:
        loss = get_loss_class(loss_name)
    except KeyError:  # a term of a loss this version does not know: its name alone
        return f"**{loss_name}**"
    expanded = f" ({loss.full_name})" if loss.full_name else ""
    return f"**{loss.paper_name}**{expanded}: {loss.description}"


def citations_for(term_names: list[str]) -> list[str]:
    """BibTeX entries the card cites: ICD and CRD first (the method and the benchmark this project follows), then
    the paper of each loss term."""
    out = [get_loss_class("icd").bibtex, get_loss_class("crd").bibtex]
    for name in term_names:
        try:
            bib = get_loss_class(name).bibtex
        except KeyError:
            continue
        if bib not in out:
            out.append(bib)
    return out


def _pct(value: Any) -> str:
    return f"{float(value):.2f}" if value is not None else "–"


def _human_params(n: int | None) -> str:
    if not n:
        return "–"
    return f"{n / 1e6:.2f}M" if n >= 100_000 else f"{n / 1e3:.1f}K"


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    return str(value)


def _kwargs_text(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"`{k}={_format_value(v)}`" for k, v in sorted(kwargs.items())) or "defaults"


def _card_results(results: RunResults | Mapping[str, Any]) -> RunResults:
    """The record a card is rendered from; a card also needs the dataset's name."""
    record = RunResults.coerce(results)
    if not record.dataset_name:
        raise RunResultsError(f"{record.source or 'results.json'} has no `dataset.name`: the card names the data.")
    return record


def model_name_for(results: RunResults | Mapping[str, Any], hub_model_id: str | None = None) -> str:
    """The ``model-index`` name: the repository name, else ``<student>-<method>-<dataset>``."""
    if hub_model_id:
        return hub_model_id.split("/")[-1]
    record = _card_results(results)
    return f"{record.student.name}-{(record.method or 'vanilla').replace('+', '-')}-{record.dataset_name}"


def build_card_data(
    results: RunResults | Mapping[str, Any],
    *,
    hub_model_id: str | None = None,
    teacher_hub_id: str | None = None,
    license: str = DEFAULT_LICENSE,
) -> ModelCardData:
    """The YAML metadata of the card: ``model-index`` (top-1 as ``accuracy``, top-5 as ``top_5_accuracy``, in %),
    tags, license, dataset and, when the teacher is on the Hub, ``base_model``."""
    record = _card_results(results)
    metrics = record.metrics
    hub_id = dataset_hub_id(record.dataset)
    common = dict(
        task_type="image-classification",
        task_name="Image Classification",
        dataset_type=hub_id or record.dataset_name,
        dataset_name=record.dataset_name,
        dataset_split=record.dataset.get("eval_split") or "test",
    )
    eval_results = [EvalResult(metric_type="accuracy", metric_name="Top-1 accuracy (%)",
                               metric_value=round(float(metrics.top1), 4), **common)]
    if metrics.top5 is not None:
        eval_results.append(EvalResult(metric_type="top_5_accuracy", metric_name="Top-5 accuracy (%)",
                                       metric_value=round(float(metrics.top5), 4), **common))
    method = record.method or "vanilla"
    tags = ["knowledge-distillation", "icd-hf", "image-classification", method]
    tags += [t for t in record.term_names if t not in tags]
    tags.append(record.student.name)
    base_model: str | list[str] | None = teacher_hub_id
    if base_model is None and record.teachers:  # an ensemble: every teacher that is on the Hub
        base_model = [t.path_or_hub_id for t in record.teachers if is_hub_id(t.path_or_hub_id)] or None
    elif base_model is None and record.teacher:
        ref = record.teacher.path_or_hub_id
        base_model = ref if is_hub_id(ref) else None
    return ModelCardData(
        model_name=model_name_for(record, hub_model_id),
        library_name="transformers",
        pipeline_tag="image-classification",
        license=license,
        tags=tags,
        datasets=[hub_id] if hub_id else None,
        base_model=base_model,
        metrics=["accuracy", "top_5_accuracy"] if metrics.top5 is not None else ["accuracy"],
        eval_results=eval_results,
    )


def _row(label: str, top1: str, params: int | None, paper: float | None, top5: str = "–") -> dict[str, str]:
    return {"label": label, "top1": top1, "top5": top5, "paper": _pct(paper), "params": _human_params(params)}


def _accuracy_rows(record: RunResults, paper: PaperResult | None) -> list[dict[str, str]]:
    metrics, student, teacher = record.metrics, record.student, record.teacher
    this_top1, this_top5 = f"**{_pct(metrics.top1)}**", _pct(metrics.top5)
    if teacher is None:
        teacher_paper = paper.teacher_top1 if paper else None
        return [_row(f"**{student.name} (this model)**", this_top1, student.num_parameters, teacher_paper, this_top5)]
    method = record.method or "vanilla"
    rows = [
        _row(f"**{student.name} + {method_display_name(method)} (this model)**", this_top1, student.num_parameters,
             paper.method_top1 if paper else None, this_top5),
        *([_row(f"{t.name} (teacher)", _pct(t.top1), t.num_parameters, None) for t in record.teachers] or [
            _row(f"{teacher.name} (teacher)", _pct(teacher.top1), teacher.num_parameters,
                 paper.teacher_top1 if paper else None)]),
        _row(f"{student.name} (vanilla, no teacher)", _pct(record.baselines.get("vanilla_top1")),
             student.num_parameters, paper.vanilla_top1 if paper else None),
    ]
    if method.lower() != "kd":
        rows.append(_row(f"{student.name} + KD", _pct(record.baselines.get("kd_top1")), student.num_parameters,
                         paper.kd_top1 if paper else None))
    return rows


def _training_items(record: RunResults) -> list[tuple[str, str]]:
    return [(k, _format_value(v)) for k, v in record.training.items() if defines_the_run(k) and v is not None]


def _provenance(record: RunResults) -> str:
    parts = []
    if record.git_commit:
        parts.append(f"icd-hf commit `{record.git_commit}`")
    if record.device:
        parts.append(f"on {record.device}")
    if record.wall_time_s is not None:
        parts.append(f"{float(record.wall_time_s) / 3600:.2f} h wall time")
    return ", ".join(parts)


def render_model_card(
    results: RunResults | Mapping[str, Any],
    *,
    hub_model_id: str | None = None,
    teacher_hub_id: str | None = None,
    paper_dir: str | Path | None = None,
    latency: LatencyReport | Mapping[str, Any] | None = None,
    license: str = DEFAULT_LICENSE,
    onnx: Mapping[str, Any] | None = None,
) -> ModelCard:
    """Render the card of a run from its ``results.json`` record.

    Args:
        results: the run's ``RunResults`` (or the parsed ``results.json``).
        hub_model_id: the repository the card will live in; the usage snippet loads from it (from
            ``path/to/this/folder`` when ``None``).
        teacher_hub_id: the teacher's Hub id for ``base_model``, when the record's ``teacher.path_or_hub_id`` is a
            local path.
        paper_dir: folder with the paper's CSV tables (default ``<repo>/../shared/paper``; absent = no paper
            column).
        latency: CPU latency measured at export (``LatencyReport`` or its dict), shown in the efficiency section.
        license: SPDX-style license id of the weights.
        onnx: what the ONNX export measured (``hub_export.onnx``, ``icd_hf.hub.onnx_export``): the card's "ONNX and
            int8" section with its format · top-1 · top-5 · size · latency table.
    """
    record = _card_results(results)
    teacher, student, dataset, metrics = record.teacher, record.student, record.dataset, record.metrics
    method = record.method or "vanilla"
    if isinstance(latency, LatencyReport):
        latency = latency.to_dict()
    terms = list(record.loss.get("terms", []))
    paper = find_paper_result(teacher.name if teacher else None, student.name, method, paper_dir)
    if _known_dataset(dataset) not in (None, "cifar100"):
        paper = None  # the paper's figures are CIFAR-100 ones: no comparison for a digits or STL-10 model
    context: dict[str, Any] = dict(
        student_name=student.name,
        student_params_h=_human_params(student.num_parameters),
        dataset_name=record.dataset_name,
        dataset_hub_id=dataset_hub_id(dataset),
        eval_split=dataset.get("eval_split") or "test",
        image_size=record.image_size or "native",
        mean=_format_value(dataset.get("mean")),
        std=_format_value(dataset.get("std")),
        paper=paper,
        accuracy_rows=_accuracy_rows(record, paper),
        best_top1=_pct(metrics.best_top1) if metrics.best_top1 is not None and metrics.best_top1 != metrics.top1
        else None,
        best_epoch=metrics.best_epoch,
        repo_ref=hub_model_id or LOCAL_REPO_REF,
        training_items=_training_items(record),
        command=record.command,
        provenance=_provenance(record),
        citations=citations_for(record.term_names),
        onnx_section=onnx_card_section(onnx) if onnx else None,
    )
    if teacher is None:
        context["title"] = f"{student.name} on {record.dataset_name}"
        context["latency"] = dict(latency, student_ms=f"{latency['student_ms']:.2f}") if latency else None
        template = TEACHER_TEMPLATE
    else:
        t_params, s_params = teacher.num_parameters, student.num_parameters
        lat = dict(latency) if latency else None
        if lat:
            # The teacher is only timed when its weights are local; the student's figure stands on its own.
            teacher_ms = lat.get("teacher_ms")
            lat["speedup"] = f"{teacher_ms / lat['student_ms']:.1f}×" if teacher_ms else "–"
            lat["teacher_ms"] = f"{teacher_ms:.2f}" if teacher_ms else "–"
            lat["student_ms"] = f"{lat['student_ms']:.2f}"
        ce_weight = record.loss.get("ce_weight")
        context.update(
            title=f"{student.name} distilled from {teacher.name} with {method_display_name(method)} "
            f"on {record.dataset_name}",
            teacher_name=teacher.name,
            teacher_params_h=_human_params(t_params),
            # A Hub id names the teacher for every reader; a local path of the training machine names nothing.
            teacher_ref=teacher_hub_id or (teacher.path_or_hub_id if is_hub_id(teacher.path_or_hub_id) else None),
            params_ratio=f"{t_params / s_params:.1f}×" if t_params and s_params else "–",
            latency=lat,
            method_label=method_display_name(method),
            method_description="\n".join(f"- {method_description(t['name'])}" for t in terms) or f"Method `{method}`.",
            ce_weight=_format_value(ce_weight) if ce_weight else None,
            terms=[{"name": t["name"], "weight": _format_value(t.get("weight")), "kwargs": _kwargs_text(
                t.get("kwargs") or {})} for t in terms],
            ensemble=[{"name": t.name, "top1": _pct(t.top1), "params": _human_params(t.num_parameters),
                       "ref": t.path_or_hub_id if is_hub_id(t.path_or_hub_id) else None} for t in record.teachers],
            teacher_weighting="by confidence (CA-MKD)" if record.config.get("teacher_weighting") == "confidence"
            else "uniformly",
        )
        template = STUDENT_TEMPLATE
    card_data = build_card_data(record, hub_model_id=hub_model_id, teacher_hub_id=teacher_hub_id, license=license)
    return ModelCard.from_template(card_data, template_path=str(template), **context)
