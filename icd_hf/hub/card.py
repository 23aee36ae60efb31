"""Model cards for exported runs: ``huggingface_hub.ModelCardData`` metadata plus a Jinja2 body.

The metadata (YAML header) is built with ``ModelCardData`` and ``EvalResult`` so that it is exactly what the
Hub's own parser (``ModelCard.load(...).data.eval_results``) reads back. The body comes from
``icd_hf/hub/templates/student_card.md`` (a distilled student) or ``teacher_card.md`` (a model trained from
labels alone: a teacher or a vanilla baseline). Everything the card states comes from ``results.json``, the
published tables (``icd_hf.paper``), the loss classes (each method's description and BibTeX) or a latency
measurement made at export; nothing is invented when a figure is unknown: the cell shows "–".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..losses import get_loss_class
from ..losses.presets import method_display_name
from ..paper import PaperResult, find_paper_result

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
STUDENT_TEMPLATE = TEMPLATES_DIR / "student_card.md"
TEACHER_TEMPLATE = TEMPLATES_DIR / "teacher_card.md"
DEFAULT_LICENSE = "apache-2.0"
LOCAL_REPO_REF = "path/to/this/folder"

# Training-argument keys that describe bookkeeping, not the recipe: left out of the card's training list.
_BOOKKEEPING_KEYS = {
    "output_dir", "logging_dir", "logging_steps", "report_to", "save_strategy", "save_steps", "save_total_limit",
    "eval_strategy", "eval_steps", "per_device_eval_batch_size", "disable_tqdm", "dataloader_num_workers",
    "overwrite_output_dir", "use_cpu", "push_to_hub", "hub_model_id", "run_name", "logging_strategy",
}
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


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


def looks_like_hub_id(ref: str | None, search_dirs: tuple[Path, ...] = ()) -> bool:
    """``org/name`` that is not a local directory (relative to the cwd or any of ``search_dirs``)."""
    if not ref or not _HUB_ID_RE.match(ref):
        return False
    return not any((base / ref).exists() for base in (Path("."), *search_dirs))


def dataset_hub_id(dataset: Mapping[str, Any]) -> str | None:
    """The dataset's Hub id: ``hub_id`` if recorded, else ``source`` when it names a Hub dataset (not a local
    ``layout:path``), else the Hub id of a known dataset of that name."""
    for ref in (dataset.get("hub_id"), dataset.get("source")):
        if isinstance(ref, str) and _HUB_ID_RE.match(ref) and ":" not in ref and not Path(ref).exists():
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


def _require(results: Mapping[str, Any], *path: str) -> Any:
    node: Any = results
    for i, key in enumerate(path):
        if not isinstance(node, Mapping) or key not in node:
            raise KeyError(
                f"results.json has no `{'.'.join(path[: i + 1])}`; it must follow the DistillationTrainer schema "
                f"(see icd_hf.experiment.run_experiment). Re-run the experiment or add the field by hand."
            )
        node = node[key]
    return node


def model_name_for(results: Mapping[str, Any], hub_model_id: str | None = None) -> str:
    """The ``model-index`` name: the repository name, else ``<student>-<method>-<dataset>``."""
    if hub_model_id:
        return hub_model_id.split("/")[-1]
    method = str(results.get("method") or "vanilla").replace("+", "-")
    return f"{_require(results, 'student', 'name')}-{method}-{_require(results, 'dataset', 'name')}"


def build_card_data(
    results: Mapping[str, Any],
    *,
    hub_model_id: str | None = None,
    teacher_hub_id: str | None = None,
    license: str = DEFAULT_LICENSE,
) -> ModelCardData:
    """The YAML metadata of the card: ``model-index`` (top-1 as ``accuracy``, top-5 as ``top_5_accuracy``, in %),
    tags, license, dataset and, when the teacher is on the Hub, ``base_model``."""
    dataset = _require(results, "dataset")
    metrics = _require(results, "metrics")
    dataset_name = _require(results, "dataset", "name")
    hub_id = dataset_hub_id(dataset)
    common = dict(
        task_type="image-classification",
        task_name="Image Classification",
        dataset_type=hub_id or dataset_name,
        dataset_name=dataset_name,
        dataset_split=dataset.get("eval_split") or "test",
    )
    eval_results = [EvalResult(metric_type="accuracy", metric_name="Top-1 accuracy (%)",
                               metric_value=round(float(_require(results, "metrics", "top1")), 4), **common)]
    if metrics.get("top5") is not None:
        eval_results.append(EvalResult(metric_type="top_5_accuracy", metric_name="Top-5 accuracy (%)",
                                       metric_value=round(float(metrics["top5"]), 4), **common))
    method = str(results.get("method") or "vanilla")
    terms = [t["name"] for t in (results.get("loss") or {}).get("terms", [])]
    tags = ["knowledge-distillation", "icd-hf", "image-classification", method]
    tags += [t for t in terms if t not in tags]
    tags.append(_require(results, "student", "name"))
    teacher = results.get("teacher")
    base_model = teacher_hub_id
    if base_model is None and teacher:
        ref = teacher.get("path_or_hub_id")
        base_model = ref if looks_like_hub_id(ref) else None
    return ModelCardData(
        model_name=model_name_for(results, hub_model_id),
        library_name="transformers",
        pipeline_tag="image-classification",
        license=license,
        tags=tags,
        datasets=[hub_id] if hub_id else None,
        base_model=base_model,
        metrics=["accuracy", "top_5_accuracy"] if metrics.get("top5") is not None else ["accuracy"],
        eval_results=eval_results,
    )


def _accuracy_rows(results: Mapping[str, Any], paper: PaperResult | None) -> list[dict[str, str]]:
    metrics = results["metrics"]
    student = results["student"]
    teacher = results.get("teacher")
    baselines = results.get("baselines") or {}
    method = str(results.get("method") or "vanilla")
    if teacher is None:
        return [{
            "label": f"**{student['name']} (this model)**",
            "top1": f"**{_pct(metrics['top1'])}**",
            "top5": _pct(metrics.get("top5")),
            "paper": _pct(paper.teacher_top1 if paper else None),
            "params": _human_params(student.get("num_parameters")),
        }]
    rows = [{
        "label": f"**{student['name']} + {method_display_name(method)} (this model)**",
        "top1": f"**{_pct(metrics['top1'])}**",
        "top5": _pct(metrics.get("top5")),
        "paper": _pct(paper.method_top1 if paper else None),
        "params": _human_params(student.get("num_parameters")),
    }, {
        "label": f"{teacher['name']} (teacher)",
        "top1": _pct(teacher.get("top1")),
        "top5": "–",
        "paper": _pct(paper.teacher_top1 if paper else None),
        "params": _human_params(teacher.get("num_parameters")),
    }, {
        "label": f"{student['name']} (vanilla, no teacher)",
        "top1": _pct(baselines.get("vanilla_top1")),
        "top5": "–",
        "paper": _pct(paper.vanilla_top1 if paper else None),
        "params": _human_params(student.get("num_parameters")),
    }]
    if method.lower() != "kd":
        rows.append({
            "label": f"{student['name']} + KD",
            "top1": _pct(baselines.get("kd_top1")),
            "top5": "–",
            "paper": _pct(paper.kd_top1 if paper else None),
            "params": _human_params(student.get("num_parameters")),
        })
    return rows


def _training_items(results: Mapping[str, Any]) -> list[tuple[str, str]]:
    training = results.get("training") or {}
    return [(k, _format_value(v)) for k, v in training.items() if k not in _BOOKKEEPING_KEYS and v is not None]


def _provenance(results: Mapping[str, Any]) -> str:
    parts = []
    if results.get("git_commit"):
        parts.append(f"icd-hf commit `{results['git_commit']}`")
    if results.get("device"):
        parts.append(f"on {results['device']}")
    if results.get("wall_time_s") is not None:
        parts.append(f"{float(results['wall_time_s']) / 3600:.2f} h wall time")
    return ", ".join(parts)


def render_model_card(
    results: Mapping[str, Any],
    *,
    hub_model_id: str | None = None,
    teacher_hub_id: str | None = None,
    paper_dir: str | Path | None = None,
    latency: LatencyReport | Mapping[str, Any] | None = None,
    license: str = DEFAULT_LICENSE,
) -> ModelCard:
    """Render the card of a run from its ``results.json`` (already parsed).

    Args:
        results: the run's results (``DistillationTrainer`` schema).
        hub_model_id: the repository the card will live in; the usage snippet loads from it (from
            ``path/to/this/folder`` when ``None``).
        teacher_hub_id: the teacher's Hub id for ``base_model``, when ``results["teacher"]["path_or_hub_id"]``
            is a local path.
        paper_dir: folder with the paper's CSV tables (default ``<repo>/../shared/paper``; absent = no paper
            column).
        latency: CPU latency measured at export (``LatencyReport`` or its dict), shown in the efficiency section.
        license: SPDX-style license id of the weights.
    """
    for path in (("student", "name"), ("dataset", "name"), ("metrics", "top1")):
        _require(results, *path)
    teacher = results.get("teacher")
    student, dataset, metrics = results["student"], results["dataset"], results["metrics"]
    method = str(results.get("method") or "vanilla")
    if isinstance(latency, LatencyReport):
        latency = latency.to_dict()
    terms = list((results.get("loss") or {}).get("terms", []))
    paper = find_paper_result(teacher["name"] if teacher else None, student["name"], method, paper_dir)
    if _known_dataset(dataset) not in (None, "cifar100"):
        paper = None  # the paper's figures are CIFAR-100 ones: no comparison for a digits or STL-10 model
    image_size = (results.get("config") or {}).get("image_size") or dataset.get("image_size") or dataset.get(
        "native_image_size") or "native"
    context: dict[str, Any] = dict(
        student_name=student["name"],
        student_params_h=_human_params(student.get("num_parameters")),
        dataset_name=dataset["name"],
        dataset_hub_id=dataset_hub_id(dataset),
        eval_split=dataset.get("eval_split") or "test",
        image_size=image_size,
        mean=_format_value(dataset.get("mean")),
        std=_format_value(dataset.get("std")),
        paper=paper,
        accuracy_rows=_accuracy_rows(results, paper),
        best_top1=_pct(metrics["best_top1"]) if metrics.get("best_top1") is not None
        and metrics["best_top1"] != metrics["top1"] else None,
        best_epoch=metrics.get("best_epoch"),
        repo_ref=hub_model_id or LOCAL_REPO_REF,
        training_items=_training_items(results),
        command=results.get("command"),
        provenance=_provenance(results),
        citations=citations_for([t["name"] for t in terms]),
    )
    if teacher is None:
        context["title"] = f"{student['name']} on {dataset['name']}"
        context["latency"] = dict(latency, student_ms=f"{latency['student_ms']:.2f}") if latency else None
        template = TEACHER_TEMPLATE
    else:
        t_params, s_params = teacher.get("num_parameters"), student.get("num_parameters")
        lat = dict(latency) if latency else None
        if lat:
            # The teacher is only timed when its weights are local; the student's figure stands on its own.
            teacher_ms = lat.get("teacher_ms")
            lat["speedup"] = f"{teacher_ms / lat['student_ms']:.1f}×" if teacher_ms else "–"
            lat["teacher_ms"] = f"{teacher_ms:.2f}" if teacher_ms else "–"
            lat["student_ms"] = f"{lat['student_ms']:.2f}"
        context.update(
            title=f"{student['name']} distilled from {teacher['name']} with {method_display_name(method)} "
            f"on {dataset['name']}",
            teacher_name=teacher["name"],
            teacher_params_h=_human_params(t_params),
            # A Hub id names the teacher for every reader; a local path of the training machine names nothing.
            teacher_ref=teacher_hub_id or (teacher.get("path_or_hub_id") if looks_like_hub_id(
                teacher.get("path_or_hub_id")) else None),
            params_ratio=f"{t_params / s_params:.1f}×" if t_params and s_params else "–",
            latency=lat,
            method_label=method_display_name(method),
            method_description="\n".join(f"- {method_description(t['name'])}" for t in terms) or f"Method `{method}`.",
            ce_weight=_format_value(results["loss"].get("ce_weight")) if results.get("loss", {}).get("ce_weight")
            else None,
            terms=[{"name": t["name"], "weight": _format_value(t.get("weight")), "kwargs": _kwargs_text(
                t.get("kwargs") or {})} for t in terms],
        )
        template = STUDENT_TEMPLATE
    card_data = build_card_data(results, hub_model_id=hub_model_id, teacher_hub_id=teacher_hub_id, license=license)
    return ModelCard.from_template(card_data, template_path=str(template), **context)
