"""``DistillationTrainer``: a ``transformers.Trainer`` that trains a ``Distiller`` and exports its student."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import safetensors.torch
import torch
import torch.distributed as dist
import transformers.trainer
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from .distiller import TEACHER_PREFIX, Distiller
from .losses import DistillationLoss
from .losses.presets import MethodSpec
from .metrics import accuracy_metrics, topk_predictions
from .teacher_cache import (
    CachedTeacher,
    TeacherCacheFlush,
    TeacherOutputCache,
    teacher_cache_fingerprint,
    teacher_cache_refusal,
)

logger = logging.getLogger(__name__)

INIT_STAGE_MARKER = "init_stage_done.json"


class NonFiniteLossError(RuntimeError):
    """Training gave a nan/inf loss (or weights): stopped before that state was logged, evaluated or saved."""


def _default_file_mode() -> int:
    """``0o666`` less the process's umask: the mode ``open()`` gives a new file (umask is read by setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fix_weight_modes(folder: str) -> None:
    """safetensors (0.8) writes its files ``0600``; give them the mode of their sibling files (``0644`` under the
    usual umask), so a shared or published model folder is readable like the rest of it."""
    mode = _default_file_mode()
    for name in os.listdir(folder):
        if name.endswith(".safetensors"):
            os.chmod(os.path.join(folder, name), mode)


class _FiniteLossGuard(TrainerCallback):
    """Stop training at the first non-finite loss, before the Trainer logs, evaluates or saves that state.

    ``DistillationTrainer.compute_loss`` records, on the device and without a host sync, the first step whose loss
    or any term was not finite; this callback reads that record (one sync) only where the Trainer is about to log,
    evaluate, save or stop, which it does after ``on_step_end`` / ``on_epoch_end``. So a checkpoint never holds a
    broken state, and no step pays a sync of its own. Before a save or an evaluation the weights are checked too
    (a nan gradient can break them while the loss that produced it was finite).
    """

    def __init__(self, trainer: DistillationTrainer) -> None:
        self.trainer = trainer

    def _check(self, control: Any) -> None:
        if control.should_log or control.should_evaluate or control.should_save or control.should_training_stop:
            self.trainer.check_finite(weights=bool(control.should_save or control.should_evaluate))

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        self._check(control)

    def on_epoch_end(self, args, state, control, **kwargs):  # noqa: ANN001
        self._check(control)


@contextlib.contextmanager
def _device_loader_resumes_itself() -> Iterator[None]:
    """While the fast path trains: ``Trainer`` resumes mid-epoch with accelerate's ``skip_first_batches``, which
    rebuilds a torch ``DataLoader``; the fast path's ``DeviceDataLoader`` skips by itself, without building the
    skipped batches. ``transformers.trainer``'s name is rebound for that training only and restored after."""
    original = transformers.trainer.skip_first_batches

    def skip_first_batches(dataloader: Any, num_batches: int = 0) -> Any:
        if hasattr(dataloader, "skip_first_batches"):
            return dataloader.skip_first_batches(num_batches)
        return original(dataloader, num_batches)

    transformers.trainer.skip_first_batches = skip_first_batches
    try:
        yield
    finally:
        transformers.trainer.skip_first_batches = original


@dataclass
class DistillationTrainingArguments(TrainingArguments):
    """``TrainingArguments`` plus the knobs of the CIFAR distillation recipes.

    Defaults that differ from ``TrainingArguments``: ``remove_unused_columns=False`` and
    ``label_names=["labels"]`` (image batches carry ``pixel_values``/``labels``/``index``).
    """

    lr_milestones: list[float] | None = field(
        default=None,
        metadata={"help": "Epochs at which the LR is multiplied by lr_decay_rate (step schedule, e.g. 150 180 "
                  "210). When set it replaces lr_scheduler_type."},
    )
    lr_decay_rate: float = field(default=0.1, metadata={"help": "Factor applied at each lr milestone."})
    max_grad_norm: float = field(
        default=0.0,
        metadata={"help": "Gradient clipping (0: none). The CIFAR distillation recipes do not clip, unlike "
                  "TrainingArguments' default of 1.0."},
    )
    decay_norm_and_bias: bool = field(
        default=True,
        metadata={"help": "Apply weight decay to BN and bias parameters too, as the CIFAR recipes (plain SGD) "
                  "do. Loss temperatures/biases (ICD's t, b) never get weight decay."},
    )
    init_epochs: int | None = field(
        default=None,
        metadata={"help": "Override the initialisation-stage length of losses that declare one (AB, FT, FSP: "
                  "30 in the CRD recipe)."},
    )
    init_max_steps: int = field(
        default=-1, metadata={"help": "Cap the steps of each initialisation epoch (smoke tests)."}
    )
    fast_path: bool = field(
        default=False,
        metadata={"help": "Keep the training split on the device as uint8 and augment there (icd_hf.fast), "
                  "teacher in inference mode; bf16 autocast + channels_last where the device has native bf16 "
                  "(CUDA, or a CPU with AMX-BF16/AVX512-BF16); with compile_models, torch.compile."},
    )
    compile_models: bool = field(
        default=False, metadata={"help": "Fast path: torch.compile the student and the teacher (not the losses)."}
    )

    def __post_init__(self) -> None:
        self.remove_unused_columns = False
        if self.label_names is None:
            self.label_names = ["labels"]
        super().__post_init__()


class DistillationTrainer(Trainer):
    """Train a student against a frozen teacher with any registered combination of losses.

    Args:
        model: the student (a ``PreTrainedModel`` from ``icd_hf.models`` or any model returning
            ``DistillationModelOutput``) - or a ready ``Distiller``.
        teacher: the frozen teacher (ignored when ``model`` is a ``Distiller``).
        method: ``"icd+kd"``, ``"crd"``, ``"vanilla"``... or a ``MethodSpec`` (see ``icd_hf.losses.presets``).
        loss_overrides: per-term weights and hyper-parameters, e.g. ``{"icd": {"invariance_weight": 0.3}}``.
        image_size: input side used to measure feature shapes when building the losses' modules.
        **kwargs: everything ``transformers.Trainer`` takes (``args``, datasets, ``data_collator``,
            ``callbacks``...). ``compute_metrics`` defaults to top-1/top-5 accuracy.

    Everything trainable lives in the ``Distiller`` passed to ``Trainer`` as its model, so the optimizer,
    gradient accumulation, mixed precision, DDP and checkpointing are the Trainer's own. Checkpoints hold the
    student and the loss modules (heads, temperatures, memory banks), not the teacher; ``save_model()``
    exports only the student with ``save_pretrained``.
    """

    def __init__(
        self,
        model: nn.Module,
        teacher: nn.Module | None = None,
        method: MethodSpec | str = "icd+kd",
        loss_overrides: dict | None = None,
        image_size: int = 32,
        **kwargs: Any,
    ) -> None:
        if isinstance(model, Distiller):
            distiller = model
        else:
            train_dataset = kwargs.get("train_dataset")
            distiller = Distiller(
                model,
                teacher,
                method,
                image_size=image_size,
                loss_overrides=loss_overrides,
                num_data=len(train_dataset) if train_dataset is not None else None,
            )
        kwargs.setdefault("compute_metrics", accuracy_metrics)
        kwargs.setdefault("preprocess_logits_for_metrics", topk_predictions)
        super().__init__(model=distiller, **kwargs)
        self._term_sums: dict[str, torch.Tensor] = {}
        self._term_steps = 0
        # (names, which were non-finite, at which step): the first non-finite training step, kept on the device.
        self._finite_watch: tuple[list[str], torch.Tensor, torch.Tensor] | None = None
        self.add_callback(_FiniteLossGuard(self))

    @property
    def distiller(self) -> Distiller:
        return self.model

    @property
    def student(self) -> nn.Module:
        return self.model.student

    # ---------------------------------------------------------------- fast path
    def enable_fast_path(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        padding: int = 4,
        flip: bool = True,
    ) -> None:
        """Train from a uint8 copy of the training split kept on the device (``icd_hf.fast.DeviceDataLoader``).

        ``images``/``labels`` are the whole training split (``icd_hf.data.as_uint8_tensor``); augmentation
        (pad-``padding`` random crop + flip) and normalisation happen on the device, per batch.
        """
        from .fast import channels_last_pays, prepare_for_speed

        # bf16 (args.bf16, chosen by choose_fast_path_precision) makes NHWC pay on CPUs as well as on CUDA.
        channels_last = channels_last_pays(self.args.device, bool(self.args.bf16))
        self._fast_data = {"images": images, "labels": labels, "mean": mean, "std": std, "padding": padding,
                           "flip": flip, "channels_last": channels_last}
        self.args.fast_path = True
        self.distiller.teacher_inference_mode = True
        prepare_for_speed(self.distiller, channels_last=channels_last, compile=self.args.compile_models)

    def enable_teacher_cache(self, directory: str | os.PathLike[str]) -> TeacherOutputCache:
        """Read the teacher's outputs of every training view from a cache under ``directory`` when it holds them,
        else compute them and add them to it (``icd_hf.teacher_cache``); returns the ``TeacherOutputCache``.

        Needs the fast path (``enable_fast_path`` first: its views are what the cache is keyed on) and a method
        whose losses read only the teacher's logits and pooled feature.

        Raises:
            ValueError: no fast path, no teacher, or a loss that reads the teacher's feature maps.
        """
        data = getattr(self, "_fast_data", None)
        if data is None or not self.args.fast_path:
            raise ValueError("A teacher cache keys the teacher's outputs by the fast path's views (seed, epoch, "
                             "sample index): call enable_fast_path first (fast_path: true).")
        why = teacher_cache_refusal(self.distiller.method)
        if why:
            raise ValueError(f"teacher_cache: {why}.")
        precision = "bf16" if self.args.bf16 else "fp16" if self.args.fp16 else "fp32"
        fingerprint = teacher_cache_fingerprint(
            self.distiller.teacher, data["images"], mean=data["mean"], std=data["std"], padding=data["padding"],
            flip=data["flip"], seed=self.args.seed, precision=precision, device=self.args.device,
        )
        cache = TeacherOutputCache(
            directory, fingerprint, num_images=len(data["labels"]),
            teachers=[CachedTeacher(spec.num_classes, spec.pooled_dim) for spec in self.distiller.teacher_specs],
            device=self.args.device, rank=self.args.process_index, world_size=self.args.world_size,
        )
        logger.info("%s", cache.describe())
        self.distiller.teacher_cache = cache
        self.add_callback(TeacherCacheFlush(cache))
        return cache

    @property
    def teacher_cache(self) -> TeacherOutputCache | None:
        """The ``TeacherOutputCache`` of ``enable_teacher_cache``, or ``None``."""
        return self.distiller.teacher_cache

    def get_train_dataloader(self):
        data = getattr(self, "_fast_data", None)
        if not self.args.fast_path or data is None:
            return super().get_train_dataloader()
        from .fast import DeviceDataLoader

        cache = self.distiller.teacher_cache
        return DeviceDataLoader(
            data["images"],
            data["labels"],
            self._train_batch_size,
            train=True,
            mean=data["mean"],
            std=data["std"],
            padding=data["padding"],
            flip=data["flip"],
            channels_last=data["channels_last"],
            device=self.args.device,
            seed=self.args.seed,
            drop_last=self.args.dataloader_drop_last,
            num_replicas=self.args.world_size,
            rank=self.args.process_index,
            on_epoch_start=cache.begin_epoch if cache is not None else None,
        )

    @staticmethod
    def get_optimizer_cls_and_kwargs(args: TrainingArguments, model: nn.Module | None = None) -> tuple[Any, Any]:
        optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
        if getattr(args, "fast_path", False) and optimizer_cls is torch.optim.SGD:
            from .fast import sgd_kwargs

            kwargs = {**kwargs, **sgd_kwargs(args.device)}  # fused (one kernel) SGD where the device has it
        return optimizer_cls, kwargs

    # ---------------------------------------------------------------- loss and logging
    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        # The fast path's batches carry their view key when a teacher cache is on (DeviceDataLoader).
        view = {k: inputs[k] for k in ("view_epoch", "view_start") if k in inputs}
        outputs = model(
            pixel_values=inputs["pixel_values"],
            labels=inputs.get("labels"),
            index=inputs.get("index"),
            epoch=float(self.state.epoch or 0.0),
            **view,
        )
        if model.training and outputs.terms:
            # Summed as tensors: reading them out (a host sync) happens only when logging.
            for name, value in outputs.terms.items():
                self._term_sums[name] = self._term_sums.get(name, 0.0) + value.float()
            self._term_steps += 1
        if model.training:
            self._watch_finite(outputs.loss, outputs.terms or {})
        if return_outputs:
            return outputs.loss, {"logits": outputs.logits}
        return outputs.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._term_steps:
            names = sorted(self._term_sums)
            means = torch.stack([self._term_sums[n] / self._term_steps for n in names])
            # Training logs are emitted on every rank, so the collective is safe here.
            means = self.accelerator.reduce(means, reduction="mean")
            logs.update({f"loss_{n}": round(v, 6) for n, v in zip(names, means.tolist())})
            self._term_sums, self._term_steps = {}, 0
        super().log(logs, start_time)

    # ---------------------------------------------------------------- non-finite losses
    def _watch_finite(self, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        """Record the first step whose loss or a term is nan/inf, as device tensors (no host sync here)."""
        names = ["loss", *sorted(terms)]
        if self._finite_watch is not None and self._finite_watch[0] != names:
            self.check_finite()  # the terms changed (they do not, within a run): settle the old record first
            self._finite_watch = None
        values = torch.stack([loss.detach().float().reshape(()), *(terms[n].float().reshape(()) for n in names[1:])])
        bad = ~torch.isfinite(values)
        if self._finite_watch is None:
            self._finite_watch = (names, torch.zeros_like(bad), torch.zeros((), dtype=torch.long, device=bad.device))
        _, first_bad, first_step = self._finite_watch
        new = bad.any() & (first_step == 0)  # only the first bad step is kept
        first_bad |= bad & new
        first_step.masked_fill_(new, self.state.global_step + 1)

    def check_finite(self, weights: bool = False) -> None:
        """Raise ``NonFiniteLossError`` if a training loss so far was nan/inf, naming the step and the terms (one
        host sync; every process takes part, so all of them stop together). With ``weights``, also when a
        parameter of the student or the losses is not finite.

        Raises:
            NonFiniteLossError: naming the step, the terms, the last checkpoint and what to change.
        """
        if self._finite_watch is not None:
            names, first_bad, first_step = self._finite_watch
            steps = [int(s) for s in self.accelerator.gather(first_step.reshape(1)).tolist() if s > 0]
            if steps:
                step = min(steps)
                flagged = [n for n, b in zip(names, first_bad.tolist(), strict=True) if b] if int(first_step) == step \
                    else []
                terms = [n for n in flagged if n != "loss"] or flagged
                what = f"the loss term(s) {', '.join(terms)}" if terms else "the loss (on another process)"
                raise NonFiniteLossError(self._non_finite_message(f"At step {step} {what} became nan or inf"))
        if weights:
            distiller = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
            params = [(n, p) for n, p in distiller.named_parameters() if not n.startswith(TEACHER_PREFIX)]
            if params and not bool(torch.stack([torch.isfinite(p).all() for _, p in params]).all()):
                broken = [n for n, p in params if not bool(torch.isfinite(p).all())]
                raise NonFiniteLossError(self._non_finite_message(
                    f"After step {self.state.global_step} the weights {', '.join(broken[:3])}"
                    f"{' and others' if len(broken) > 3 else ''} became nan or inf (the losses were finite)"))

    def _non_finite_message(self, what: str) -> str:
        last = get_last_checkpoint(self.args.output_dir) if os.path.isdir(self.args.output_dir) else None
        kept = f"the last checkpoint, {last}, holds an earlier, finite state" if last else "no checkpoint was saved"
        return (
            f"{what}: training stopped before logging, evaluating or saving that state ({kept}). Lower "
            f"training.learning_rate or the loss weights (loss_overrides), or check the data, and train again "
            f"(--overwrite_output_dir, or a new --output_dir or --tag: a changed run cannot resume this one)."
        )

    # ---------------------------------------------------------------- optimizer and schedule
    def get_decay_parameter_names(self, model: nn.Module) -> list[str]:
        names = (
            [n for n, _ in model.named_parameters()]
            if self.args.decay_norm_and_bias
            else super().get_decay_parameter_names(model)
        )
        no_decay = self.distiller.no_weight_decay()
        return [n for n in names if n not in no_decay]

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        if self.lr_scheduler is None and self.args.lr_milestones:
            optimizer = optimizer or self.optimizer
            steps_per_epoch = self._update_steps_per_epoch(num_training_steps)
            milestones = sorted(round(m * steps_per_epoch) for m in self.args.lr_milestones)
            warmup = self.args.get_warmup_steps(num_training_steps)
            rate = self.args.lr_decay_rate

            def lr_lambda(step: int) -> float:
                factor = rate ** sum(step >= m for m in milestones)
                return factor * min(1.0, (step + 1) / warmup) if warmup else factor

            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
            self._created_lr_scheduler = True
            return self.lr_scheduler
        return super().create_scheduler(num_training_steps, optimizer)

    def _update_steps_per_epoch(self, num_training_steps: int) -> float:
        if self.args.max_steps <= 0:
            return num_training_steps / self.args.num_train_epochs
        batches = len(self.get_train_dataloader())
        return max(batches // self.args.gradient_accumulation_steps, 1)

    # ---------------------------------------------------------------- training
    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any):
        if not resume_from_checkpoint and not self._init_stage_done():
            self.run_init_stage()
        fast = self.args.fast_path and getattr(self, "_fast_data", None) is not None
        with _device_loader_resumes_itself() if fast else contextlib.nullcontext():
            output = super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        self.check_finite(weights=True)  # what the caller evaluates and exports next must be finite
        return output

    # ---------------------------------------------------------------- initialisation stage (AB, FT, FSP)
    def _init_stage_done(self) -> bool:
        return os.path.isfile(os.path.join(self.args.output_dir, INIT_STAGE_MARKER))

    def _init_stage_epochs(self) -> dict[str, int]:
        """``{loss name: epochs}`` of the losses with an initialisation stage (``args.init_epochs`` overrides)."""
        staged = {
            name: self.args.init_epochs if self.args.init_epochs is not None else loss.init_epochs
            for name, loss in self.distiller.losses.items()
            if loss.init_epochs > 0
        }
        return {name: epochs for name, epochs in staged.items() if epochs > 0}

    def run_init_stage(self) -> dict[str, float | None]:
        """Run the initialisation stage of every loss that declares one, before distillation starts.

        As in the CRD benchmark code: plain SGD (momentum 0.9, the run's lr and weight decay) on the loss's
        ``init_parameters`` (the student for AB/FSP, FT's paraphraser), minimising its ``init_loss``. Returns
        ``{"init_<loss>_loss": last value}`` (``None`` when the loader gave no batch) and writes it, as JSON, to
        the marker that tells a later ``train()`` the stage is done.
        """
        staged = self._init_stage_epochs()
        if not staged:
            return {}
        self.distiller.to(self.args.device)
        self.distiller.train()
        loader = self.get_train_dataloader()
        results = {f"init_{name}_loss": self._train_init_stage(name, epochs, loader) for name, epochs in staged.items()}
        if self.args.should_save:
            os.makedirs(self.args.output_dir, exist_ok=True)
            with open(os.path.join(self.args.output_dir, INIT_STAGE_MARKER), "w") as f:
                json.dump(results, f, indent=2)
        return results

    def _train_init_stage(self, name: str, epochs: int, loader: Any) -> float | None:
        """``epochs`` of loss ``name``'s initialisation stage; its last loss value (``None``: no batch at all)."""
        loss_module = self.distiller.losses[name]
        params = [p for p in loss_module.init_parameters(self.distiller.student) if p.requires_grad]
        optimizer = torch.optim.SGD(
            params, lr=self.args.learning_rate, momentum=0.9, weight_decay=self.args.weight_decay
        )
        value: torch.Tensor | None = None
        for epoch in range(epochs):
            bar = tqdm(loader, desc=f"init {name} {epoch + 1}/{epochs}",
                       disable=self.args.disable_tqdm or not self.is_world_process_zero())
            for step, batch in enumerate(bar):
                if 0 <= self.args.init_max_steps <= step:
                    break
                value = self._init_step(loss_module, optimizer, params, batch)
                if step % 20 == 0:  # reading the value is a device sync: only now and then
                    bar.set_postfix(loss=value.item())
        if value is None:
            logger.warning("initialisation stage of %s ran no step: the training loader gave no batch", name)
            return None
        logger.info("initialisation stage of %s done (%d epochs), last loss %.4f", name, epochs, float(value))
        return float(value)

    def _init_step(
        self, loss_module: DistillationLoss, optimizer: torch.optim.Optimizer, params: list[nn.Parameter], batch: Any
    ) -> torch.Tensor:
        """One SGD step on ``loss_module.init_loss``; returns the (detached) loss."""
        batch = self._prepare_inputs(batch)
        with self.autocast_smart_context_manager():
            x = batch["pixel_values"]
            student_out = self.distiller.student(pixel_values=x, output_hidden_states=True)
            value = loss_module.init_loss(student_out, self.distiller.teacher_forward(x, True))
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        # The model is not wrapped by DDP yet: gradients are averaged across processes by hand.
        if dist.is_available() and dist.is_initialized():
            for p in params:
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= dist.get_world_size()
        optimizer.step()
        return value.detach()

    # ---------------------------------------------------------------- saving and resuming
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Checkpoints (``_internal_call``) keep the whole distillation state; a user call exports the student."""
        if _internal_call:
            return super().save_model(output_dir, _internal_call=True)
        self.save_student(output_dir or self.args.output_dir)

    def save_student(self, output_dir: str) -> None:
        """Write the student with ``save_pretrained`` (safetensors + config + remote code): the deliverable."""
        if not self.args.should_save:
            return
        from .models.modeling_hf_adapter import unwrap_model

        # Through torch.compile and the DistillationAdapter: the export is the plain model (e.g. a transformers
        # MobileNetV2ForImageClassification that pipeline() loads without icd-hf).
        student = unwrap_model(self.accelerator.unwrap_model(self.model, keep_torch_compile=False).student)
        if not isinstance(student, PreTrainedModel):
            raise TypeError(f"Only PreTrainedModel students can be exported, got {type(student).__name__}")
        student.save_pretrained(output_dir)
        _fix_weight_modes(output_dir)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        distiller = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        if state_dict is None:
            state_dict = distiller.distillation_state_dict()
        else:
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith(TEACHER_PREFIX)}
        state_dict = {k: v.detach().contiguous().clone() for k, v in state_dict.items()}
        # Atomic write: a crash while saving never leaves a truncated weights file behind.
        path = os.path.join(output_dir, "model.safetensors")
        safetensors.torch.save_file(state_dict, path + ".tmp", metadata={"format": "pt"})
        os.chmod(path + ".tmp", _default_file_mode())  # not safetensors' 0600: as the checkpoint's other files
        os.replace(path + ".tmp", path)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        missing = [k for k in load_result.missing_keys if not k.startswith(TEACHER_PREFIX)]
        if missing:
            raise RuntimeError(
                f"The checkpoint lacks {len(missing)} entries of this run's distillation state (e.g. "
                f"{missing[:3]}): it was written for another student/method. Resume with the same config."
            )
        if load_result.unexpected_keys:
            raise RuntimeError(
                f"The checkpoint has entries this run does not know (e.g. {load_result.unexpected_keys[:3]}): "
                f"it was written for another student/method. Resume with the same config."
            )


