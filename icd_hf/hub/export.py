"""Turn a run directory into a folder that is a complete Hub model repository.

A run directory (written by ``icd_hf.experiment.run_experiment``) holds ``student/`` (``save_pretrained``
output: safetensors weights, ``config.json`` with ``auto_map`` and the copied modeling code) and
``results.json``. ``export_for_hub`` adds what the Hub copy needs to be usable with plain ``transformers``:
``preprocessor_config.json`` (a ``ViTImageProcessor`` with the training resolution and normalisation, so
``AutoImageProcessor.from_pretrained`` works), the model card ``README.md`` and the results.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForImageClassification, PreTrainedModel, ViTImageProcessor
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

from ..hub_ids import validate_hub_model_id
from ..input_spec import build_image_processor as processor_for_spec
from ..input_spec import spec_from_results
from ..runs import EXPORT_DIRNAME, RESULTS_NAME, RunResults, device_name
from ..version import __version__
from .card import DEFAULT_LICENSE, LatencyReport, render_model_card
from .onnx_export import check_onnx_options, export_onnx_files

logger = logging.getLogger(__name__)

CARD_NAME = "README.md"
PROCESSOR_NAME = "preprocessor_config.json"
# Training artefacts that may sit next to the weights but have no place in a model repository.
_SKIPPED_FILES = {"training_args.bin", "trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth"}
_LABEL_NAME_KEYS = ("class_names", "label_names", "labels")


read_results = RunResults.read  # the run's (or exported folder's) results.json


def is_exported_folder(path: str | Path) -> bool:
    """Whether ``path`` is the output of ``export_for_hub`` (rather than a run directory)."""
    path = Path(path)
    if not all((path / name).is_file() for name in (CARD_NAME, "config.json", RESULTS_NAME)):
        return False
    return RunResults.read(path).hub_export is not None


def image_size_of(results: RunResults | Mapping[str, Any]) -> int:
    """The resolution the model was trained at: the experiment's ``image_size`` override, else the dataset's."""
    size = RunResults.coerce(results).image_size
    if not size:
        raise KeyError("results.json gives no image size: set dataset.image_size (e.g. 32 for CIFAR).")
    return size


def build_image_processor(results: RunResults | Mapping[str, Any]) -> ViTImageProcessor:
    """A processor ``transformers`` knows without icd-hf: resize to the training size, rescale to [0, 1],
    normalise with the dataset's mean/std (``input_spec.build_image_processor``, as training saves it)."""
    return processor_for_spec(spec_from_results(RunResults.coerce(results)))


def _check_student_dir(student_dir: Path) -> dict[str, Any]:
    config_path = student_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{student_dir} has no config.json: the run did not finish exporting its student "
            f"(DistillationTrainer.save_student writes it at the end of training)."
        )
    weights = ("model.safetensors", "model.safetensors.index.json")
    if not any((student_dir / name).is_file() for name in weights):
        raise FileNotFoundError(
            f"{student_dir} has no model.safetensors: re-save the student with `save_pretrained` "
            f"(safe_serialization is the default) before exporting."
        )
    config = json.loads(config_path.read_text())
    auto_map = config.get("auto_map")
    if not auto_map and config.get("model_type") in CONFIG_MAPPING_NAMES:
        return config  # a transformers architecture (a distilled MobileNetV2...): no remote code to ship
    if not auto_map:
        raise ValueError(
            f"{config_path} has no `auto_map`, so the Hub copy could not be loaded with trust_remote_code. The model "
            f"class must call `register_for_auto_class('AutoModelForImageClassification')` (icd_hf.models does) "
            f"before `save_pretrained`."
        )
    for auto_class, ref in auto_map.items():
        module = (ref[0] if isinstance(ref, (list, tuple)) else ref).split("--")[-1].rsplit(".", 1)[0]
        if not (student_dir / f"{module}.py").is_file():
            raise FileNotFoundError(
                f"{config_path} maps {auto_class} to {ref!r} but {module}.py is not in {student_dir}: "
                f"save_pretrained did not copy the modeling code (is the class defined in an importable module?)."
            )
    return config


def _label_names(dataset: Mapping[str, Any], num_labels: int) -> list[str] | None:
    for key in _LABEL_NAME_KEYS:
        names = dataset.get(key)
        if isinstance(names, list) and len(names) == num_labels and all(isinstance(n, str) for n in names):
            return names
    return None


def _maybe_add_label_names(config_path: Path, dataset: Mapping[str, Any]) -> None:
    """Give the config the dataset's class names when it still has the ``LABEL_i`` defaults."""
    config = json.loads(config_path.read_text())
    id2label = config.get("id2label") or {}
    num_labels = len(id2label) or int(config.get("num_labels") or config.get("num_classes") or 0)
    names = _label_names(dataset, num_labels)
    if not names or any(v != f"LABEL_{k}" for k, v in id2label.items()):
        return
    config["id2label"] = {str(i): n for i, n in enumerate(names)}
    config["label2id"] = {n: i for i, n in enumerate(names)}
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


@torch.no_grad()
def measure_cpu_latency(
    model: torch.nn.Module, image_size: int, *, runs: int = 20, warmup: int = 3, threads: int = 1
) -> float:
    """Median milliseconds of one forward pass of a single ``image_size``² image on the CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = model.eval().to("cpu")
        x = torch.randn(1, 3, image_size, image_size)
        for _ in range(warmup):
            model(pixel_values=x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(pixel_values=x)
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)
    finally:
        torch.set_num_threads(previous)


def _load_local(path: Path) -> PreTrainedModel:
    # Local folders written by our own save_pretrained: running their modeling code is running icd-hf's. In float32,
    # as a model runs on a CPU: a teacher published in fp16 (benchmarks/teachers/*) would not run on float inputs.
    return AutoModelForImageClassification.from_pretrained(str(path), trust_remote_code=True, dtype=torch.float32)


def _resolve_local(ref: str | None, run_dir: Path) -> Path | None:
    if not ref:
        return None
    for base in (Path("."), run_dir, *run_dir.resolve().parents):
        candidate = (base / ref) if not Path(ref).is_absolute() else Path(ref)
        if (candidate / "config.json").is_file():
            return candidate
    return None


def _processor_side(model_dir: Path) -> int | None:
    path = model_dir / PROCESSOR_NAME
    size = json.loads(path.read_text()).get("size") if path.is_file() else None
    if isinstance(size, dict) and size.get("height"):
        return int(size["height"])
    return None


def measure_latency_report(
    student_dir: Path, teacher_dir: Path | None, image_size: int, *, runs: int = 20, threads: int = 1
) -> LatencyReport:
    """Latency of the exported student and, when its weights are local, of the teacher, on this CPU.

    Each model is timed at the input side its ``preprocessor_config.json`` names (``image_size`` otherwise): a
    224-pixel teacher distilled into a 64-pixel student is deployed at those sizes, and that is the speed-up.
    """
    image_size = _processor_side(student_dir) or image_size
    student_ms = measure_cpu_latency(_load_local(student_dir), image_size, runs=runs, threads=threads)
    teacher_ms = None
    if teacher_dir is not None:
        teacher_size = _processor_side(teacher_dir) or image_size
        teacher_ms = measure_cpu_latency(_load_local(teacher_dir), teacher_size, runs=runs, threads=threads)
    return LatencyReport(
        student_ms=round(student_ms, 3),
        teacher_ms=None if teacher_ms is None else round(teacher_ms, 3),
        runs=runs,
        image_size=image_size,
        threads=threads,
        device=device_name("cpu"),
        torch_version=torch.__version__.split("+")[0],
    )


def _write_card(
    folder: Path,
    results: RunResults,
    *,
    hub_model_id: str | None,
    teacher_hub_id: str | None,
    paper_dir: str | Path | None,
    latency: Mapping[str, Any] | None,
    license: str,
    onnx: Mapping[str, Any] | None = None,
) -> None:
    card = render_model_card(
        results, hub_model_id=hub_model_id, teacher_hub_id=teacher_hub_id, paper_dir=paper_dir, latency=latency,
        license=license, onnx=onnx,
    )
    card.save(folder / CARD_NAME)
    # What the card was rendered with, so `icd-hf push` of an exported folder can re-render it for another
    # repository id without the run directory.
    record = {
        "hub_model_id": hub_model_id,
        "teacher_hub_id": teacher_hub_id,
        "license": license,
        "latency": dict(latency) if latency else None,
        "icd_hf_version": __version__,
    }
    if onnx:  # what model.onnx / model_int8.onnx measured (icd_hf.hub.onnx_export)
        record["onnx"] = dict(onnx)
    results.with_export(record).write(folder)


def refresh_card(
    export_dir: str | Path, *, hub_model_id: str | None, paper_dir: str | Path | None = None
) -> None:
    """Re-render an exported folder's card for another repository id (the weights and code stay as they are)."""
    export_dir = Path(export_dir)
    results = RunResults.read(export_dir)
    record = results.hub_export or {}
    _write_card(
        export_dir, results.with_export(None), hub_model_id=hub_model_id, teacher_hub_id=record.get("teacher_hub_id"),
        paper_dir=paper_dir, latency=record.get("latency"), license=record.get("license") or DEFAULT_LICENSE,
        onnx=record.get("onnx"),
    )


def export_for_hub(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    hub_model_id: str | None = None,
    paper_dir: str | Path | None = None,
    teacher_hub_id: str | None = None,
    measure_latency: bool = True,
    overwrite: bool = False,
    license: str = DEFAULT_LICENSE,
    onnx: bool = False,
    int8: bool = False,
    data_dir: str | Path | None = None,
    onnx_options: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``out_dir`` as a ready-to-upload model repository from the run in ``run_dir``.

    The folder holds ``model.safetensors``, ``config.json`` (with ``auto_map``), the modeling code for
    ``trust_remote_code``, ``preprocessor_config.json``, ``README.md`` (the model card) and ``results.json``.
    It is assembled next to ``out_dir`` and moved into place at the end, so an error never leaves half an export.

    Args:
        run_dir: a run directory (``student/`` + ``results.json``).
        out_dir: where to write; must be empty/absent, or a previous export with ``overwrite=True``.
        hub_model_id: the repository the card's usage snippet names (validated, ``org/name``).
        paper_dir: the paper's CSV tables (default ``<repo>/../shared/paper``; missing = no paper column).
        teacher_hub_id: the teacher's Hub id for the card's ``base_model`` if results.json records a local path.
        measure_latency: time the student (and the teacher, when its weights are local) on this CPU for the card.
        overwrite: replace an earlier export at ``out_dir``.
        license: license id written in the card metadata.
        onnx: also write ``model.onnx``, verified against PyTorch and measured with it on the run's evaluation set
            (``icd_hf.hub.onnx_export``); the card gets the table.
        int8: also write ``model_int8.onnx`` (needs ``onnx``).
        data_dir: where the run's data is, for the ONNX evaluation, when not where ``results.json`` says.
        onnx_options: further keyword arguments of ``onnx_export.export_onnx_files`` (``calibration_images``,
            ``latency_runs``...).

    Returns:
        ``out_dir`` as a ``Path``.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if hub_model_id is not None:
        validate_hub_model_id(hub_model_id)
    check_onnx_options(onnx, int8)
    results = RunResults.read(run_dir).with_export(None)
    student_dir = run_dir / EXPORT_DIRNAME
    if not student_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} has no {EXPORT_DIRNAME}/ folder with the trained weights to export.")
    _check_student_dir(student_dir)
    resolved_out = out_dir.resolve()
    if resolved_out in (run_dir.resolve(), student_dir.resolve()) or run_dir.resolve().is_relative_to(resolved_out):
        raise ValueError(f"Export folder {out_dir} would overwrite the run itself; pick a folder outside {run_dir}.")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out_dir} is not empty; pass overwrite=True (--overwrite) or pick another folder.")
        if not is_exported_folder(out_dir):
            raise FileExistsError(
                f"{out_dir} is not empty and is not an earlier icd-hf export; refusing to replace it. Pick another "
                f"folder."
            )

    staging = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for item in sorted(student_dir.iterdir()):
            if item.is_file() and item.name not in _SKIPPED_FILES and not item.name.endswith(".tmp"):
                shutil.copy2(item, staging / item.name)
        _maybe_add_label_names(staging / "config.json", results.dataset)
        if not (staging / PROCESSOR_NAME).is_file():
            build_image_processor(results).save_pretrained(staging)
        latency = None
        if measure_latency:
            teacher = results.teacher
            teacher_dir = _resolve_local(teacher.path_or_hub_id, run_dir) if teacher else None
            try:
                latency = measure_latency_report(staging, teacher_dir, image_size_of(results)).to_dict()
            except (OSError, ValueError, RuntimeError, KeyError) as err:
                # The card is still right without it; say so instead of failing the export.
                logger.warning("Latency not measured (%s: %s); the card will omit it.", type(err).__name__, err)
        onnx_record = export_onnx_files(
            staging, results, _load_local(staging), int8=int8, data_dir=None if data_dir is None else str(data_dir),
            measure_latency=measure_latency, **(onnx_options or {}),
        ) if onnx else None
        _write_card(
            staging, results, hub_model_id=hub_model_id, teacher_hub_id=teacher_hub_id, paper_dir=paper_dir,
            latency=latency, license=license, onnx=onnx_record,
        )
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Exported %s to %s", run_dir, out_dir)
    return out_dir
