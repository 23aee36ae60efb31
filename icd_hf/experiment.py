"""Run one experiment from an ``ExperimentConfig``: build data, models and trainer, train, export, record.

``recipes/train_teacher.py``, ``recipes/distill.py`` and the sweep are thin command lines over
``run_experiment``; everything is validated before the first step so a bad config fails in seconds.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, TrainerCallback, set_seed

from .config import ExperimentConfig, TeacherSource, resolved_training, training_defaults
from .hub_ids import has_hub_id_form, validate_hub_model_id
from .losses.presets import MethodSpec, resolve_method
from .metrics import count_parameters
from .preflight import preflight
from .runs import (
    EXPORT_DIRNAME,
    ModelRecord,
    ResumePlan,
    RunMetrics,
    RunResults,
    TeacherRecord,
    clear_run_dir,
    device_name,
    effective_num_workers,
    find_resumable_checkpoint,  # noqa: F401  (re-exported: it lived here before the runs package)
    find_run_results,
    git_commit,
    plan_resume,
    run_fingerprint,
    write_run_record,
)
from .trainer import INIT_STAGE_MARKER, DistillationTrainer, DistillationTrainingArguments

logger = logging.getLogger(__name__)


def build_student(cfg: ExperimentConfig, num_classes: int, class_names: list[str] | None = None) -> PreTrainedModel:
    """A fresh zoo/timm model, or the weights of a run folder/directory/Hub id to continue from (with a new head
    when ``cfg.ignore_mismatched_sizes`` and the checkpoint has another number of classes)."""
    from .models import is_model, list_models
    from .models.auto_classifier import load_image_classifier

    name = cfg.student
    if "/" not in name and not Path(name).exists() and not is_model(name):
        close = difflib.get_close_matches(name, list_models(), n=3)
        raise KeyError(
            f"Unknown student {name!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")
            + f". Use a zoo name ({', '.join(list_models())}), timm/<timm name>, a directory or a Hub id 'org/name'."
        )
    return load_image_classifier(
        name, num_labels=num_classes, class_names=class_names, ignore_mismatched_sizes=cfg.ignore_mismatched_sizes
    )


def load_teachers(
    cfg: ExperimentConfig, num_classes: int, class_names: list[str] | None = None
) -> list[PreTrainedModel]:
    """Every teacher of ``cfg`` (``ExperimentConfig.teacher_sources``: one, an ensemble, or none), each checked
    against the architecture its entry names and the dataset's label space."""
    if not cfg.method_spec().needs_teacher:
        return []
    sources = cfg.teacher_sources()
    if not sources:
        raise ValueError(f"Method {cfg.method!r} needs `teacher_checkpoint` (or `teachers` for an ensemble).")
    return [_load_teacher_source(source, num_classes, class_names) for source in sources]


def check_teacher_sources(cfg: ExperimentConfig) -> None:
    """What can be wrong with the teacher entries of ``cfg`` without loading them (run before the data is built):
    a local path that does not exist, a folder without ``config.json`` (its ``.pth`` named when it holds one), a
    checkpoint file named as an architecture the zoo does not have."""
    for source in cfg.teacher_sources():
        _check_teacher_path(source, cfg.dataset)


def _teacher_file(source: TeacherSource) -> bool:
    """Whether the entry is a checkpoint file of its own (a ``.pth``), not a file of a ``save_pretrained`` folder."""
    from .models.torch_checkpoint import saved_model_folder

    return Path(source.checkpoint).is_file() and saved_model_folder(source.checkpoint) is None


def _named_architecture(source: TeacherSource) -> str | None:
    """The architecture an entry names (``teacher:``, ``NAME=FILE``); ``--teacher PATH`` names only the path."""
    return source.name if source.name and source.name != source.checkpoint else None


def _check_teacher_path(source: TeacherSource, dataset: str | None = None) -> None:
    from .models import list_models
    from .models.torch_checkpoint import CHECKPOINT_FILE_SUFFIXES, folder_without_config_message

    path = source.checkpoint
    # `org/name` that is not a folder here is a Hub id (tried by load_image_classifier, whose error names both);
    # a name ending in .pth is a file whatever its form.
    looks_local = not path.startswith("timm/") and (not has_hub_id_form(path) or path.endswith(
        CHECKPOINT_FILE_SUFFIXES)) and (os.path.sep in path or path.startswith(".") or Path(path).exists())
    if looks_local and not Path(path).exists():
        raise FileNotFoundError(
            f"Teacher checkpoint {path!r} does not exist. {_train_teacher_hint(_named_architecture(source), dataset)}, "
            f"or point `teacher_checkpoint` at a .pth file (RepDistiller's ckpt_epoch_240.pth), a run or "
            f"save_pretrained folder, or a Hub id."
        )
    name = _named_architecture(source)
    if _teacher_file(source) and name is not None and name not in list_models():
        raise ValueError(
            f"Teacher checkpoint {path!r} is a checkpoint file, so its architecture must be a zoo name, not {name!r}: "
            f"one of {', '.join(list_models())}, or leave the name out to recognise it from the file."
        )
    if Path(path).is_dir():
        from .runs import resolve_model_dir

        folder = Path(resolve_model_dir(path))
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(folder_without_config_message(folder, "teacher"))


def _train_teacher_hint(name: str | None, dataset: str | None) -> str:
    """How to train the missing teacher: its config under recipes/configs/teachers/ only when that file exists."""
    shipped = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "teachers"
    local = Path("recipes") / "configs" / "teachers"
    if name:
        for folder in (local, shipped):
            if (folder / f"{name}.yaml").is_file():
                return f"Train the teacher first: `python recipes/train_teacher.py --config {folder / name}.yaml`"
        return (f"Train the teacher first: `python recipes/train_teacher.py --student {name} --dataset "
                f"{dataset or '<dataset>'}`")
    known = sorted(p.stem for p in shipped.glob("*.yaml")) or sorted(p.stem for p in local.glob("*.yaml"))
    configs = f" (--config recipes/configs/teachers/<name>.yaml for {', '.join(known)})" if known else ""
    return f"Train the teacher first with recipes/train_teacher.py --student <name>{configs}"


def _load_teacher_source(
    source: TeacherSource, num_classes: int, class_names: list[str] | None
) -> PreTrainedModel:
    from .models.auto_classifier import load_image_classifier

    _check_teacher_path(source)
    path = source.checkpoint
    # Run folder, save_pretrained folder, Hub id, timm/<name>.<tag> or a checkpoint file (whose architecture is the
    # entry's name, else recognised from its tensors); its head must already fit the dataset.
    teacher = load_image_classifier(path, num_labels=num_classes, class_names=class_names, role="teacher",
                                    architecture=_named_architecture(source) if _teacher_file(source) else None)
    arch = getattr(teacher.config, "architecture_name", None) or getattr(teacher.config, "model_name", None)
    if source.name and source.name != path and arch and arch != source.name:
        raise ValueError(
            f"Teacher checkpoint {path!r} holds a {arch!r} but the config says teacher: {source.name}. "
            f"Fix `teacher` or `teacher_checkpoint` (for an ensemble, the NAME=CHECKPOINT entry of `teachers`)."
        )
    return teacher


def training_arguments(cfg: ExperimentConfig) -> DistillationTrainingArguments:
    values: dict[str, Any] = resolved_training(cfg)
    values["output_dir"] = cfg.output_dir
    if cfg.fast_path:
        _choose_fast_path_precision(values)
    elif not torch.cuda.is_available():
        values.pop("bf16", None)
        values.pop("fp16", None)
    return DistillationTrainingArguments(**values)


def _choose_fast_path_precision(values: dict[str, Any]) -> None:
    """Set ``bf16`` (and ``use_cpu`` for bf16 on a CPU) in ``values`` as the device supports; log the choice."""
    from .fast import choose_fast_path_precision

    on_cpu = bool(values.get("use_cpu")) or not torch.cuda.is_available()
    requested = values.get("bf16")
    choice = choose_fast_path_precision("cpu" if on_cpu else "cuda", None if requested is None else bool(requested))
    values["bf16"] = choice.bf16
    if on_cpu:
        values.pop("fp16", None)
        # transformers accepts bf16 without a GPU only with use_cpu; accelerate then autocasts on the CPU.
        values["use_cpu"] = True
    logger.info("fast path: %s", choice.describe())


def best_accuracy(log_history: list[dict[str, Any]]) -> tuple[float, int]:
    """Best eval top-1 and its epoch over the whole run: ``log_history`` comes back from the checkpoint on a
    resume, so evaluations made before an interruption count too (a callback's memory would start over)."""
    evals = [e for e in log_history if e.get("eval_top1") is not None]
    if not evals:
        return float("-inf"), -1
    best = max(evals, key=lambda e: e["eval_top1"])  # the first of equal maxima: the earliest epoch
    return best["eval_top1"], round(best.get("epoch") or 0)


class _RunRecorder(TrainerCallback):
    """Write the run record (fingerprint, training time so far) into each checkpoint as it is saved, so that a
    resume refuses a different run and ``wall_time_s`` counts the time spent before an interruption."""

    def __init__(self, fingerprint: dict[str, Any], prior_elapsed_s: float, start: float) -> None:
        self.fingerprint = fingerprint
        self.prior_elapsed_s = prior_elapsed_s
        self.start = start

    def elapsed_s(self) -> float:
        return self.prior_elapsed_s + time.time() - self.start

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            write_run_record(folder, {"fingerprint": self.fingerprint, "elapsed_s": round(self.elapsed_s(), 1)})


def experiment_fingerprint(cfg: ExperimentConfig, method: MethodSpec) -> dict[str, Any]:
    """What defines the run of ``cfg`` (see ``icd_hf.runs.run_fingerprint``); the teacher only when used."""
    checkpoints = [s.checkpoint for s in cfg.teacher_sources()]  # none when the method needs no teacher
    ensemble = len(checkpoints) > 1
    return run_fingerprint(
        student=cfg.student,
        teacher=cfg.teacher_label if method.needs_teacher else None,
        teacher_checkpoint=checkpoints if ensemble else (checkpoints[0] if checkpoints else None),
        teacher_weighting=cfg.teacher_weighting if ensemble else None,
        method=cfg.method,
        loss=_loss_record(method),
        data={
            "dataset": cfg.dataset,
            "data_dir": str(Path(cfg.data_dir).expanduser().resolve()) if cfg.data_dir else None,
            "image_size": cfg.image_size,
            "train_augment": cfg.train_augment,
            "max_train_samples": cfg.max_train_samples,
            "max_eval_samples": cfg.max_eval_samples,
        },
        training=resolved_training(cfg),
    )


def _loss_record(method: MethodSpec) -> dict[str, Any]:
    return {
        "ce_weight": method.ce_weight,
        "terms": [{"name": t.name, "weight": t.weight, "kwargs": dict(t.kwargs)} for t in method.terms],
    }


def finished_run(cfg: ExperimentConfig) -> RunResults | None:
    """The record of ``cfg``'s run when ``output_dir`` already holds it, finished: a ``results.json`` whose
    fingerprint is this run's. ``None`` otherwise, and always with ``overwrite_output_dir`` (train it again).

    A sweep and the quick start reuse such a run instead of training it a second time.
    """
    from .runs import RESULTS_NAME, fingerprint_diff

    if cfg.overwrite_output_dir or not (Path(cfg.output_dir) / RESULTS_NAME).is_file():
        return None
    done = RunResults.read(cfg.output_dir)
    fingerprint = experiment_fingerprint(cfg, resolve_method(cfg.method, cfg.loss_overrides))
    if not done.fingerprint or fingerprint_diff(done.fingerprint, fingerprint, training_defaults()):
        return None  # a different run: prepare_experiment refuses (or resumes) it with its own message
    return done


@dataclass
class Experiment:
    """Everything built from a config, validated, before the first training step."""

    cfg: ExperimentConfig
    method: MethodSpec
    trainer: DistillationTrainer
    info: Any
    student: PreTrainedModel
    teachers: list[PreTrainedModel]
    fingerprint: dict[str, Any] = field(default_factory=dict)
    resume_plan: ResumePlan = field(default_factory=ResumePlan)


def prepare_experiment(cfg: ExperimentConfig) -> Experiment:
    """Build data, models and trainer; every bad input fails here, before any training."""
    from .data import as_uint8_tensor, build_datasets, collate_batch
    from .model_pair import adapt_pair, fallback_image_size

    if cfg.push_to_hub:
        validate_hub_model_id(cfg.hub_model_id)
    if cfg.onnx or cfg.int8:
        from .hub.onnx_export import check_onnx_options

        check_onnx_options(cfg.onnx, cfg.int8)  # a missing package fails now, not after training
    method = resolve_method(cfg.method, cfg.loss_overrides)
    args = training_arguments(cfg)
    args.dataloader_num_workers = effective_num_workers(args.dataloader_num_workers)
    # An output_dir that cannot be written, an unreachable Hub and a different run already in output_dir are
    # refused here, in seconds, before any data or model loads.
    preflight(cfg)
    fingerprint = experiment_fingerprint(cfg, method)
    resume_plan = plan_resume(cfg.output_dir, cfg.resume, fingerprint, overwrite=cfg.overwrite_output_dir,
                              defaults=training_defaults())
    check_teacher_sources(cfg)  # a missing teacher file fails here, before the data is read
    if cfg.teacher_cache:
        from .teacher_cache import prepare_cache_root

        prepare_cache_root(cfg.teacher_cache)  # an unwritable cache folder too
    set_seed(args.seed)
    train_ds, eval_ds, info = build_datasets(
        cfg.dataset,
        data_dir=cfg.data_dir,
        image_size=cfg.image_size,
        train_augment=cfg.train_augment,
        max_train_samples=cfg.max_train_samples,
        max_eval_samples=cfg.max_eval_samples,
        image_column=cfg.image_column,
        label_column=cfg.label_column,
        eval_split=cfg.validation_split or "test",
        validation_size=cfg.validation_size,
        fallback_image_size=fallback_image_size(cfg),
    )
    student = build_student(cfg, info.num_classes, info.class_names)
    if student.config.id2label is None or len(student.config.id2label) != info.num_classes or all(
        v.startswith("LABEL_") for v in student.config.id2label.values()
    ):
        student.config.id2label, student.config.label2id = info.id2label, info.label2id
    teachers = load_teachers(cfg, info.num_classes, info.class_names)
    # Each model gets the batch at its own size and normalisation; transformers models are adapted to the losses.
    pair = adapt_pair(cfg, info, student, teachers)
    trainer = DistillationTrainer(
        model=pair.student,
        teacher=pair.distillation_teacher(cfg.teacher_weighting),
        processing_class=pair.processor,
        method=method,
        image_size=cfg.image_size or info.image_size or 32,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=collate_batch,
    )
    if cfg.fast_path:
        images, labels = as_uint8_tensor(train_ds, image_size=cfg.image_size)
        # Same padding rule as ImageClassificationTransform: a side // 8 border (4 px at 32x32).
        padding = images.shape[1] // 8 if cfg.train_augment else 0
        trainer.enable_fast_path(images, labels, info.mean, info.std, padding=padding, flip=cfg.train_augment)
        if cfg.teacher_cache:
            trainer.enable_teacher_cache(cfg.teacher_cache)
    return Experiment(cfg, method, trainer, info, student, teachers, fingerprint, resume_plan)


def run_experiment(cfg: ExperimentConfig, command: str | None = None) -> RunResults:
    """Train (or distil) as ``cfg`` says; returns the record it writes as ``results.json`` in ``cfg.output_dir``."""
    return execute_experiment(prepare_experiment(cfg), command)


def execute_experiment(exp: Experiment, command: str | None = None) -> RunResults:
    """Train from the planned checkpoint (or from scratch), evaluate, export the student and write the results.

    ``wall_time_s`` and ``best_top1`` cover the whole run, the part before a resume included.
    """
    start = time.time()
    cfg, trainer, plan = exp.cfg, exp.trainer, exp.resume_plan
    is_main = trainer.is_world_process_zero()
    if plan.clear_first:
        if is_main:
            removed = clear_run_dir(cfg.output_dir, extra_names=(INIT_STAGE_MARKER,))
            logger.info("%s (%d entries)", plan.message, len(removed))
        trainer.accelerator.wait_for_everyone()
    elif plan.message:
        logger.info("%s", plan.message)
    if is_main:
        write_run_record(cfg.output_dir, {"fingerprint": exp.fingerprint})
    recorder = _RunRecorder(exp.fingerprint, plan.prior_elapsed_s, start)
    trainer.add_callback(recorder)
    trainer.train(resume_from_checkpoint=plan.checkpoint)
    metrics = trainer.evaluate()
    best_top1, best_epoch = best_accuracy(trainer.state.log_history)
    if best_top1 < metrics["eval_top1"]:
        best_top1, best_epoch = metrics["eval_top1"], round(trainer.state.epoch or 0)
    student_dir = os.path.join(cfg.output_dir, EXPORT_DIRNAME)
    trainer.save_student(student_dir)
    # A teacher read from a .pth file keeps what the file said of itself (RepDistiller's epoch and accuracy).
    teachers = [
        TeacherRecord(name=source.label if len(exp.teachers) > 1 else cfg.teacher or _architecture_of(model),
                      num_parameters=count_parameters(model), path_or_hub_id=source.checkpoint,
                      top1=_teacher_top1(source.checkpoint, model),
                      checkpoint_file=file if isinstance(file := getattr(model.config, "source_checkpoint", None),
                                                         dict) else None)
        for source, model in zip(cfg.teacher_sources(), exp.teachers, strict=True)
    ]
    teacher = teachers[0] if len(teachers) == 1 else None
    if len(teachers) > 1:
        teacher = TeacherRecord(name=cfg.teacher_label or "ensemble",
                                num_parameters=sum(t.num_parameters or 0 for t in teachers))
    results = RunResults(
        method=cfg.method,
        teacher=teacher,
        teachers=teachers if len(teachers) > 1 else [],
        student=ModelRecord(name=cfg.student, num_parameters=count_parameters(exp.student)),
        dataset=exp.info.to_dict(),
        loss=_loss_record(exp.method),
        training=resolved_training(cfg),
        metrics=RunMetrics(
            top1=metrics["eval_top1"], top5=metrics["eval_top5"], best_top1=best_top1, best_epoch=best_epoch
        ),
        baselines={"vanilla_top1": cfg.baselines.get("vanilla_top1"), "kd_top1": cfg.baselines.get("kd_top1")},
        config=cfg.to_dict(),
        command=command or " ".join([Path(sys.executable).name, *sys.argv]),
        git_commit=git_commit(),
        wall_time_s=round(recorder.elapsed_s(), 1),
        resumed_from=plan.checkpoint,
        device=device_name(),
        precision="bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32",
        fingerprint=exp.fingerprint,
        teacher_cache=trainer.teacher_cache.summary() if trainer.teacher_cache is not None else None,
    )
    if is_main:
        from .hub.export import build_image_processor

        # The exported student/ is pipeline("image-classification", student_dir)-ready on its own. save_student
        # already wrote the student's own processor when it runs at another size/normalisation than the data.
        if not os.path.isfile(os.path.join(student_dir, "preprocessor_config.json")):
            build_image_processor(results).save_pretrained(student_dir)
        results.write(cfg.output_dir)
        if cfg.push_to_hub:
            from .hub import HubPublishError, push_to_hub
            from .hub.onnx_export import OnnxExportError

            try:
                # The token of --training.hub_token (never recorded: the record masks it), else the login's.
                results.hub_url = push_to_hub(cfg.output_dir, cfg.hub_model_id, private=cfg.hub_private,
                                              token=cfg.training.get("hub_token"), onnx=cfg.onnx, int8=cfg.int8)
            except (HubPublishError, OnnxExportError) as err:
                # Training is done and saved; a failed upload must not look like a failed run.
                logger.error("%s", err)
        elif cfg.onnx:
            _export_onnx(cfg)
    return results


def _export_onnx(cfg: ExperimentConfig) -> None:
    """``--onnx`` without ``--push_to_hub``: the folder push would upload, ONNX files included, in the run."""
    from .hub import export_for_hub
    from .hub.push import DEFAULT_EXPORT_DIRNAME

    out = Path(cfg.output_dir) / DEFAULT_EXPORT_DIRNAME
    try:
        export_for_hub(cfg.output_dir, out, onnx=True, int8=cfg.int8, overwrite=True)
        logger.info("Exported the student with model.onnx%s to %s", " and model_int8.onnx" if cfg.int8 else "", out)
    except (ValueError, OSError) as err:  # OnnxExportError, or the data missing for its evaluation
        # As for a failed upload: the trained student is saved, the export can be redone on its own.
        logger.error("ONNX export failed: %s; rerun it with `icd-hf export %s --out %s --onnx%s --overwrite`.", err,
                     cfg.output_dir, out, " --int8" if cfg.int8 else "")


def _teacher_top1(path: str | None, model: PreTrainedModel | None = None) -> float | None:
    """The teacher's accuracy: its run's, when it was trained by train_teacher.py (its results.json sits one level
    up), or the one a checkpoint file recorded (RepDistiller's `accuracy`)."""
    record = find_run_results(path) if path is not None and Path(path).is_dir() else None
    if record is not None:
        return record.metrics.top1
    provenance = getattr(getattr(model, "config", None), "source_checkpoint", None)
    return provenance.get("accuracy") if isinstance(provenance, dict) else None


def _architecture_of(model: PreTrainedModel) -> str | None:
    return getattr(model.config, "architecture_name", None) or getattr(model.config, "model_name", None)
