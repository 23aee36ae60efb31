"""Distillation-step throughput of icd-hf's training paths against the classic CIFAR PyTorch loop.

One *step* is what a distillation run repeats 187,500 times (240 epochs of CIFAR-100 at batch 64): produce an
augmented batch, teacher forward, student forward and backward, the loss terms, the optimiser step. Every path
below runs the same student, teacher and icd-hf loss modules (so the maths is identical) and differs only in
how the step is driven:

* ``a``: icd-hf's fast path, ``DistillationTrainer`` with ``enable_fast_path`` (``fast_path: true`` in a
  config): the split lives on the device as uint8, crop/flip/normalise run there (``icd_hf.fast``), teacher in
  inference mode, bf16 autocast + channels_last where the device computes bf16 natively (CUDA, CPUs with
  AMX-BF16/AVX512-BF16: ``choose_fast_path_precision``), plus ``torch.compile`` where enabled.
* ``b``: icd-hf's plain path, ``DistillationTrainer`` over a ``datasets`` split with the project's CPU
  transforms and collator in ``DataLoader`` workers: what a run without ``fast_path`` gets.
* ``c``: the reference, a RepDistiller-style loop (``benchmarks/reference_loop.py``): torchvision-style
  ``Dataset`` + PIL transforms in ``DataLoader`` workers, fp32, no compile, ``loss.item()`` every step.
* ``a_cached``: path ``a`` reading the frozen teacher's outputs from a teacher cache (``teacher_cache`` in a
  config, ``icd_hf.teacher_cache``) instead of running the teacher: what every run of a sweep after the first
  gets. The cache is built once per pair, untimed, by a run of the same steps (the key does not depend on the
  method, so kd's build serves icd+kd and crd+kd); a timed run that had to compute a teacher output is an error.
  Methods whose losses read feature maps cannot use a cache and get no ``a_cached`` row.
* ``f``: the fast path's building blocks without the Trainer (``DeviceDataLoader`` + ``Distiller`` + fused
  SGD in a bare loop): the ceiling the Trainer's own per-step overhead is measured against.

Warm-up steps (compilation, cuDNN autotuning, worker start-up) are excluded from the timing. ``--cost_split``
also times the phases of the bare fast loop (data, teacher, student forward, losses, backward, optimiser), which
shows where the next speed-up has to come from; with path ``a_cached`` it also times the cached step (the teacher
phase is then the cache lookup). Usage::

    python benchmarks/throughput.py --device cuda --methods kd,crd+kd,icd,icd+kd --json out.json
    python benchmarks/throughput.py --device cpu --pairs wrn_40_2:wrn_16_2,resnet56:resnet20 \
        --methods kd,icd+kd,crd+kd --paths a,a_cached,b,c --cost_split --json benchmarks/results/throughput_cpu.json
    python benchmarks/report.py collect throughput_cpu     # the README block from that file
    python benchmarks/throughput.py --device cpu --teacher resnet8 --student resnet8 --batch_size 16 \
        --steps 3 --warmup 1 --methods kd --num_classes 10
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or loaded by path from the tests
from reference_loop import (  # noqa: E402
    CIFAR100_MEAN,
    CIFAR100_STD,
    classic_train_loader,
    reference_train_steps,
)
from reports.throughput_cpu import COST_PHASES, cost_split_table  # noqa: E402

from icd_hf.distiller import Distiller  # noqa: E402
from icd_hf.fast import (  # noqa: E402
    DeviceDataLoader,
    autocast_context,
    bf16_supported,
    build_sgd,
    channels_last_pays,
    configure_cuda_backends,
    cpu_bf16_instructions,
    prepare_for_speed,
    resolve_device,
    synchronize,
)
from icd_hf.losses.presets import resolve_method  # noqa: E402
from icd_hf.runs import device_name, git_commit  # noqa: E402
from icd_hf.teacher_cache import (  # noqa: E402
    CachedTeacher,
    TeacherOutputCache,
    join_teacher_output,
    split_teacher_output,
    teacher_cache_fingerprint,
    teacher_cache_refusal,
)

PATHS = {
    "a": "icd-hf fast path (DistillationTrainer, fast_path)",
    "a_cached": "icd-hf fast path, teacher outputs from the teacher cache",
    "b": "icd-hf plain Trainer (datasets + collator)",
    "c": "reference loop (RepDistiller-style)",
    "f": "fast building blocks, bare loop",
}
CIFAR100_TRAIN_IMAGES = 50_000
RECIPE_EPOCHS = 240
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 5e-4


@dataclass
class BenchData:
    """The training split as every path needs it: uint8 NHWC array, labels, normalisation."""

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    plain_dataset: Any = None  # the ``datasets`` split of path (b) when one was loaded


@dataclass
class Measurement:
    method: str
    path: str
    images_per_s: float
    ms_per_step: float
    steps: int
    batch_size: int
    hours_240_epochs_cifar100: float
    samples_images_per_s: list[float] = field(default_factory=list)  # one per repeat; the row is their median
    pair: str = ""  # "teacher -> student"; empty in single-pair reports written before --pairs existed

    @property
    def key(self) -> str:
        """The row's method, prefixed by its pair when the report has several."""
        return f"{self.pair} {self.method}" if self.pair else self.method


# ---------------------------------------------------------------------------------------------- data
def synthetic_data(num_images: int, num_classes: int, image_size: int = 32, seed: int = 0) -> BenchData:
    """Random uint8 images and labels: throughput does not depend on pixel values."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(num_images, image_size, image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=num_images, dtype=np.int64)
    return BenchData(images, labels, num_classes, CIFAR100_MEAN, CIFAR100_STD, "synthetic")


def cifar100_data(data_dir: str | None) -> BenchData:
    """The real CIFAR-100 training split via ``icd_hf.data`` (the original pickles under ``data_dir``)."""
    from icd_hf.data import as_uint8_tensor, build_datasets

    train_ds, _, info = build_datasets("cifar100", data_dir=data_dir, train_augment=True)
    images, labels = as_uint8_tensor(train_ds)
    return BenchData(
        images.numpy(), labels.numpy(), info.num_classes, tuple(info.mean), tuple(info.std), "cifar100",
        plain_dataset=train_ds,
    )


def plain_train_dataset(data: BenchData) -> Any:
    """The split as path ``b`` sees it: a ``datasets.Dataset`` with icd-hf's CPU training transform."""
    if data.plain_dataset is not None:
        return data.plain_dataset
    from icd_hf.data import ImageClassificationTransform, add_index_column, dataset_from_arrays

    names = [f"class_{i}" for i in range(data.num_classes)]
    ds = add_index_column(dataset_from_arrays(data.images, data.labels, names))
    return ds.with_transform(ImageClassificationTransform(data.mean, data.std, train=True))


# ---------------------------------------------------------------------------------------------- timing
def time_steps(steps: Iterator[Any], warmup: int, measured: int, device: torch.device) -> float:
    """Seconds the ``measured`` steps after ``warmup`` steps took (device work included)."""
    synchronize(device)
    start = time.perf_counter()
    done = 0
    for _ in steps:
        done += 1
        if done == warmup:
            synchronize(device)
            start = time.perf_counter()
        if done == warmup + measured:
            synchronize(device)
            return time.perf_counter() - start
    raise RuntimeError(f"the step iterator stopped after {done} of {warmup + measured} steps")


def make_models(cfg: argparse.Namespace, num_classes: int) -> tuple[nn.Module, nn.Module]:
    from icd_hf.models import create_model

    torch.manual_seed(cfg.seed)
    # Random weights: speed does not depend on them, and the benchmark needs no trained teacher.
    return create_model(cfg.student, num_classes=num_classes), create_model(cfg.teacher, num_classes=num_classes)


def method_overrides(method: str, num_images: int) -> dict[str, dict[str, Any]] | None:
    # CRD's memory bank holds one entry per training image.
    return {"crd": {"num_data": num_images}} if "crd" in method.split("+") else None


# ---------------------------------------------------------------------------------------------- paths
def run_reference(cfg: argparse.Namespace, method: str, data: BenchData, device: torch.device) -> float:
    student, teacher = make_models(cfg, data.num_classes)
    # The Distiller only builds the loss modules exactly as the other paths do; the loop below is plain code.
    distiller = Distiller(
        student, teacher, method, image_size=data.images.shape[1],
        loss_overrides=method_overrides(method, len(data.labels)),
    )
    distiller.to(device)
    criteria = [(name, distiller.loss_weights[name], module) for name, module in distiller.losses.items()]
    trainable = nn.ModuleList([student, distiller.losses])
    optimizer = torch.optim.SGD(trainable.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    loader = classic_train_loader(
        data.images, data.labels, cfg.batch_size, cfg.num_workers, mean=data.mean, std=data.std
    )
    steps = reference_train_steps(
        student, distiller.teacher, criteria, distiller.ce_weight, loader, optimizer, device,
        cfg.warmup + cfg.steps, output_hidden_states=distiller.needs_hidden_states,
    )
    return time_steps(steps, cfg.warmup, cfg.steps, device)


def _fast_parts(
    cfg: argparse.Namespace, method: str, data: BenchData, device: torch.device
) -> tuple[Distiller, torch.optim.Optimizer, DeviceDataLoader]:
    """Distiller, fused SGD and device loader, set up as the fast path sets them up (layout by precision)."""
    student, teacher = make_models(cfg, data.num_classes)
    distiller = Distiller(
        student, teacher, method, image_size=data.images.shape[1],
        loss_overrides=method_overrides(method, len(data.labels)),
    )
    distiller.to(device)
    distiller.teacher_inference_mode = True
    channels_last = channels_last_pays(device, cfg.bf16_on)
    prepare_for_speed(distiller, channels_last=channels_last, compile=cfg.compile_on)
    optimizer = build_sgd(
        [p for p in distiller.parameters() if p.requires_grad], LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
        device=device,
    )
    loader = DeviceDataLoader(
        data.images, data.labels, cfg.batch_size, train=True, mean=data.mean, std=data.std, device=device,
        seed=cfg.seed, drop_last=True, channels_last=channels_last,
    )
    return distiller, optimizer, loader




def bench_cache(cfg: argparse.Namespace, distiller: Distiller, data: BenchData, device: torch.device
                ) -> TeacherOutputCache:
    """The teacher cache of this pair under ``cfg.cache_root``: the key the Trainer's fast path gives the same
    teacher, data, views (pad 4 + flip), seed and precision, so the paths share it."""
    fingerprint = teacher_cache_fingerprint(
        distiller.teacher, data.images, mean=data.mean, std=data.std, padding=4, flip=True, seed=cfg.seed,
        precision="bf16" if cfg.bf16_on else "fp32", device=device,
    )
    return TeacherOutputCache(cfg.cache_root, fingerprint, num_images=len(data.labels), device=device,
                              teachers=[CachedTeacher(s.num_classes, s.pooled_dim) for s in distiller.teacher_specs])


@torch.no_grad()
def fill_cache(cache: TeacherOutputCache, distiller: Distiller, loader: DeviceDataLoader, steps: int,
               device: torch.device, dtype: torch.dtype | None) -> None:
    """Make ``cache`` hold the teacher outputs of the first ``steps`` batches ``loader`` gives from epoch 0 (its
    ``on_epoch_start`` must be ``cache.begin_epoch``), running the teacher only where they are missing; the loader
    is left at epoch 0."""
    done, epoch = 0, 0
    while done < steps:
        loader.set_epoch(epoch)
        for batch in loader:
            if done == steps:
                break
            key = (batch["view_epoch"], batch["view_start"], batch["index"])
            if cache.lookup(*key) is None:
                with autocast_context(device, dtype):
                    cache.store(*key, split_teacher_output(distiller.teacher_forward(batch["pixel_values"], False)))
            done += 1
        epoch += 1
    cache.flush()
    loader.set_epoch(0)


def cost_split(
    cfg: argparse.Namespace, method: str, data: BenchData, device: torch.device, *, cached: bool = False
) -> dict[str, float]:
    """Milliseconds per step spent in each phase of the bare fast loop (mean over ``cfg.steps`` after warm-up).

    The phases are timed one after another with a device synchronisation between them, so their sum is a bit
    above the pipelined step time; the split is what tells the next optimisation where to look. ``cached``: the
    teacher phase reads the teacher cache (filled first, untimed) instead of running the teacher.
    """
    distiller, optimizer, loader = _fast_parts(cfg, method, data, device)
    dtype = torch.bfloat16 if cfg.bf16_on else None
    cache = None
    if cached:
        cache = bench_cache(cfg, distiller, data, device)
        loader.on_epoch_start = cache.begin_epoch
        fill_cache(cache, distiller, loader, cfg.warmup + cfg.steps, device, dtype)
    totals = dict.fromkeys(COST_PHASES, 0.0)
    distiller.train()
    batches = iter(loader)
    hidden = distiller.needs_hidden_states
    marks: list[float] = []

    def mark() -> None:
        synchronize(device)
        marks.append(time.perf_counter())

    for step in range(cfg.warmup + cfg.steps):
        marks.clear()
        mark()
        batch = next(batches, None)
        if batch is None:
            batches = iter(loader)
            batch = next(batches)
        mark()
        x, labels = batch["pixel_values"], batch["labels"]
        with autocast_context(device, dtype):
            if cache is None:
                teacher_out = distiller.teacher_forward(x, hidden)
            else:
                values = cache.lookup(batch["view_epoch"], batch["view_start"], batch["index"])
                if values is None:
                    raise RuntimeError("the cached cost split met a batch its cache did not hold")
                teacher_out = join_teacher_output(values, distiller.teacher)
            mark()
            student_out = distiller.student(pixel_values=x, output_hidden_states=hidden)
            mark()
            loss = distiller.ce_weight * torch.nn.functional.cross_entropy(student_out.logits.float(), labels)
            for name, module in distiller.losses.items():
                value = module(student_out, teacher_out, labels=labels, index=batch["index"], epoch=0.0)
                loss = loss + distiller.loss_weights[name] * (value["loss"] if isinstance(value, dict) else value)
            mark()
        loss.backward()
        mark()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        mark()
        if step >= cfg.warmup:
            for phase, begin, end in zip(COST_PHASES, marks, marks[1:]):
                totals[phase] += end - begin
    return {phase: 1000 * seconds / cfg.steps for phase, seconds in totals.items()}


def run_fast_loop(cfg: argparse.Namespace, method: str, data: BenchData, device: torch.device) -> float:
    distiller, optimizer, loader = _fast_parts(cfg, method, data, device)
    dtype = torch.bfloat16 if cfg.bf16_on else None

    def steps() -> Iterator[None]:
        distiller.train()
        epoch = 0
        while True:
            loader.set_epoch(epoch)
            for batch in loader:
                with autocast_context(device, dtype):
                    out = distiller(**batch, epoch=float(epoch))
                out.loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                yield
            epoch += 1

    return time_steps(steps(), cfg.warmup, cfg.steps, device)


def run_trainer(
    cfg: argparse.Namespace, method: str, data: BenchData, device: torch.device, *, fast: bool,
    cache: str | None = None, must_read: bool = False,
) -> float:
    from transformers import TrainerCallback

    from icd_hf.config import PAPER_TRAINING  # the paper's schedule, as every Trainer run gets it
    from icd_hf.data import collate_batch
    from icd_hf.trainer import DistillationTrainer, DistillationTrainingArguments

    class StepTimer(TrainerCallback):
        """Time from the end of the last warm-up step to the end of the last measured step."""

        def __init__(self) -> None:
            self.start = self.seconds = None

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            if cfg.warmup == 0:
                synchronize(device)
                self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if state.global_step == cfg.warmup:
                synchronize(device)
                self.start = time.perf_counter()
            if state.global_step == cfg.warmup + cfg.steps:
                synchronize(device)
                self.seconds = time.perf_counter() - self.start

    student, teacher = make_models(cfg, data.num_classes)
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as output_dir:
        training = {
            **PAPER_TRAINING,
            "output_dir": output_dir,
            "per_device_train_batch_size": cfg.batch_size,
            "max_steps": cfg.warmup + cfg.steps,
            "eval_strategy": "no",
            "save_strategy": "no",
            "report_to": "none",
            "disable_tqdm": True,
            "seed": cfg.seed,
            "use_cpu": device.type == "cpu",
            "dataloader_num_workers": 0 if fast else cfg.num_workers,
            "dataloader_pin_memory": device.type == "cuda",
            # The plain path is the recipe as configured (fp32); bf16 and compile are fast-path switches.
            "bf16": fast and cfg.bf16_on,
            "compile_models": fast and cfg.compile_on,
        }
        args = DistillationTrainingArguments(**training)
        trainer = DistillationTrainer(
            model=student,
            teacher=teacher,
            method=method,
            loss_overrides=method_overrides(method, len(data.labels)),
            image_size=data.images.shape[1],
            args=args,
            train_dataset=plain_train_dataset(data),
            data_collator=collate_batch,
            callbacks=[timer],
        )
        if fast:
            trainer.enable_fast_path(
                torch.from_numpy(data.images), torch.from_numpy(data.labels), data.mean, data.std
            )
            if cache is not None:
                trainer.enable_teacher_cache(cache)
        trainer.train()
        if cache is not None:
            summary = trainer.teacher_cache.summary()
            if must_read and summary["batches_computed"]:
                raise RuntimeError(f"path a_cached ran the teacher on {summary['batches_computed']} batch(es): the "
                                   f"cache built before it did not cover the timed steps")
            cfg.cache_sizes[f"{cfg.teacher} -> {cfg.student}"] = {
                k: summary[k] for k in ("precision", "dtypes", "bytes_per_epoch")}
    if timer.seconds is None:
        raise RuntimeError(f"the Trainer stopped before step {cfg.warmup + cfg.steps}")
    return timer.seconds


def can_use_cache(method: str) -> bool:
    """Whether ``method``'s losses read only what a teacher cache holds (from the loss classes' declarations)."""
    return teacher_cache_refusal(resolve_method(method)) is None


def run_cached_trainer(cfg: argparse.Namespace, method: str, data: BenchData, device: torch.device) -> float:
    """Path ``a_cached``: the fast-path Trainer reading the teacher cache. The first time a pair is measured, one
    untimed run of the same steps builds its cache (shared by every method of the pair)."""
    pair = (cfg.teacher, cfg.student)
    if pair not in cfg.built_caches:
        run_trainer(cfg, method, data, device, fast=True, cache=cfg.cache_root)
        cfg.built_caches.add(pair)
    return run_trainer(cfg, method, data, device, fast=True, cache=cfg.cache_root, must_read=True)


RUNNERS: dict[str, Callable[..., float]] = {
    "a": lambda cfg, method, data, device: run_trainer(cfg, method, data, device, fast=True),
    "a_cached": run_cached_trainer,
    "b": lambda cfg, method, data, device: run_trainer(cfg, method, data, device, fast=False),
    "c": run_reference,
    "f": run_fast_loop,
}


# ---------------------------------------------------------------------------------------------- report
def environment(device: torch.device) -> dict[str, Any]:
    name, commit = device_name(device), git_commit()
    env = {"device": name, "torch": torch.__version__, "python": platform.python_version(), "git_commit": commit}
    if device.type == "cpu":
        env["cpu_bf16"] = cpu_bf16_instructions() or "none (emulated bf16: the fast path stays fp32)"
        env["torch_threads"] = torch.get_num_threads()
    return env


def load_average() -> float | None:
    """The 1-minute load average (Linux), recorded with the results: a busy machine explains slow numbers."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def ratios(results: Sequence[Measurement]) -> dict[str, dict[str, float]]:
    """Per ``"<pair> <method>"`` (``"<method>"`` with one pair), each path's throughput divided by the reference
    loop's (``c``), and the cached fast path's divided by the live one's (``a_cached/a``)."""
    by_key = {(r.key, r.path): r.images_per_s for r in results}
    out: dict[str, dict[str, float]] = {}
    for (key, path), ips in by_key.items():
        reference = by_key.get((key, "c"))
        if path != "c" and reference:
            out.setdefault(key, {})[f"{path}/c"] = ips / reference
        if path == "a_cached" and by_key.get((key, "a")):
            out.setdefault(key, {})["a_cached/a"] = ips / by_key[(key, "a")]
    return out


def markdown_table(results: Sequence[Measurement]) -> str:
    rel = ratios(results)
    lines = [
        "| method | path | images/s | ms/step | x reference (c) | 240 epochs CIFAR-100 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        vs_c = rel.get(r.key, {}).get(f"{r.path}/c")
        ratio = "1.00" if r.path == "c" else (f"{vs_c:.2f}" if vs_c is not None else "-")
        lines.append(
            f"| {r.key} | ({r.path}) {PATHS[r.path]} | {r.images_per_s:,.0f} | {r.ms_per_step:.1f} | {ratio} | "
            f"{r.hours_240_epochs_cifar100:,.1f} h |"
        )
    return "\n".join(lines)


def parse_pairs(text: str | None, teacher: str, student: str) -> list[tuple[str, str]]:
    """``"wrn_40_2:wrn_16_2,resnet56:resnet20"`` -> pairs; ``None`` -> the single ``--teacher``/``--student``."""
    if not text:
        return [(teacher, student)]
    pairs = []
    for item in text.split(","):
        t, sep, s = item.partition(":")
        if not sep or not t or not s:
            raise ValueError(f"--pairs item {item!r} is not teacher:student (e.g. resnet56:resnet20)")
        pairs.append((t, s))
    return pairs


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--steps", type=int, default=50, help="timed steps per (method, path)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (compile, autotune, workers)")
    p.add_argument("--methods", default="kd,crd+kd,icd,icd+kd", help="comma-separated icd_hf method names")
    p.add_argument("--teacher", default="wrn_40_2")
    p.add_argument("--student", default="wrn_16_2")
    p.add_argument("--pairs", default=None,
                   help="several teacher:student pairs, comma-separated (replaces --teacher/--student)")
    p.add_argument("--cost_split", action="store_true",
                   help="also time the phases of the bare fast loop per (pair, method)")
    p.add_argument("--data", choices=("synthetic", "cifar100"), default="synthetic")
    p.add_argument("--data_dir", default=None, help="with --data cifar100: folder holding cifar-100-python/")
    p.add_argument("--num_images", type=int, default=None,
                   help="synthetic split size (default: batch_size * (warmup + steps), one epoch)")
    p.add_argument("--num_classes", type=int, default=100, help="classes of the synthetic data")
    p.add_argument("--image_size", type=int, default=32, help="side of the synthetic images")
    p.add_argument("--paths", default="a,b,c", help=f"comma-separated subset of {','.join(PATHS)}")
    p.add_argument("--teacher_cache_dir", default=None,
                   help="path a_cached: where its teacher caches go (default: a temporary folder, removed at the end)")
    p.add_argument("--num_workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="DataLoader workers of the CPU pipelines (b, c); RepDistiller uses 8")
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                   help="torch.compile student and teacher in the fast paths (auto: on for CUDA)")
    p.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                   help="bf16 autocast in the fast paths (auto: on for CUDA GPUs with bf16)")
    p.add_argument("--repeats", type=int, default=1,
                   help="measure each (method, path) this many times, paths interleaved; report the median")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the results here")
    cfg = p.parse_args(argv)
    unknown = sorted(set(cfg.paths.split(",")) - set(PATHS))
    if unknown:
        p.error(f"unknown paths {unknown}: choose from {', '.join(f'{k} ({v})' for k, v in PATHS.items())}")
    if cfg.steps < 1 or cfg.warmup < 0 or cfg.repeats < 1:
        p.error("--steps and --repeats must be >= 1 and --warmup >= 0")
    try:
        cfg.pair_list = parse_pairs(cfg.pairs, cfg.teacher, cfg.student)
    except ValueError as err:
        p.error(str(err))
    return cfg


def measure_method(
    cfg: argparse.Namespace, method: str, pair: str, paths: Sequence[str], data: BenchData, device: torch.device
) -> list[Measurement]:
    """Every path for one (pair, method); repeats interleave the paths so a shared machine's drifts hit all alike."""
    seconds: dict[str, list[float]] = {path: [] for path in paths}
    if "a_cached" in paths and not can_use_cache(method):
        print(f"{pair} {method:>8} (a_cached) skipped: {teacher_cache_refusal(resolve_method(method))}",
              file=sys.stderr, flush=True)
        paths = [p for p in paths if p != "a_cached"]
        seconds.pop("a_cached")
    for _ in range(cfg.repeats):
        for path in paths:
            seconds[path].append(RUNNERS[path](cfg, method, data, device))
            print(f"{pair} {method:>8} ({path}) {cfg.steps * cfg.batch_size / seconds[path][-1]:10.1f} images/s",
                  file=sys.stderr, flush=True)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    out = []
    for path in paths:
        median = statistics.median(seconds[path])
        ips = cfg.steps * cfg.batch_size / median
        out.append(Measurement(
            method=method, path=path, images_per_s=ips, ms_per_step=1000 * median / cfg.steps,
            steps=cfg.steps, batch_size=cfg.batch_size,
            hours_240_epochs_cifar100=RECIPE_EPOCHS * CIFAR100_TRAIN_IMAGES / ips / 3600,
            samples_images_per_s=[cfg.steps * cfg.batch_size / t for t in seconds[path]], pair=pair,
        ))
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; prints a markdown table and returns (and optionally writes) the results."""
    cfg = parse_args(argv)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no CUDA device; use --device cpu")
    cfg.compile_on = cfg.compile == "on" or (cfg.compile == "auto" and device.type == "cuda")
    cfg.bf16_on = cfg.bf16 == "on" or (cfg.bf16 == "auto" and bf16_supported(device))
    configure_cuda_backends()
    if cfg.data == "cifar100":
        data = cifar100_data(cfg.data_dir)
    else:
        num_images = cfg.num_images or cfg.batch_size * (cfg.warmup + cfg.steps)
        data = synthetic_data(num_images, cfg.num_classes, image_size=cfg.image_size, seed=cfg.seed)
    results: list[Measurement] = []
    splits: dict[str, dict[str, float]] = {}
    paths = cfg.paths.split(",")
    cfg.cache_root = cfg.teacher_cache_dir or tempfile.mkdtemp(prefix="icd_hf_teacher_cache_")
    cfg.built_caches, cfg.cache_sizes = set(), {}
    load_before = load_average()
    try:
        for teacher, student in cfg.pair_list:
            cfg.teacher, cfg.student = teacher, student
            pair = f"{teacher} -> {student}" if len(cfg.pair_list) > 1 or cfg.pairs else ""
            for method in cfg.methods.split(","):
                results.extend(measure_method(cfg, method, pair, paths, data, device))
                if cfg.cost_split:
                    splits[f"{teacher} -> {student} {method}"] = cost_split(cfg, method, data, device)
                    if "a_cached" in paths and can_use_cache(method):
                        splits[f"{teacher} -> {student} {method} (cached teacher)"] = cost_split(
                            cfg, method, data, device, cached=True)
    finally:
        if not cfg.teacher_cache_dir:
            shutil.rmtree(cfg.cache_root, ignore_errors=True)
    report = {
        "command": "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": {k: v for k, v in vars(cfg).items()
                   if k not in ("json", "pair_list", "cache_root", "built_caches", "cache_sizes")}
        | {"device": str(device), "data_source": data.source},
        "environment": environment(device) | {"load_average_1min": [load_before, load_average()]},
        "paths": {k: PATHS[k] for k in cfg.paths.split(",")},
        "results": [asdict(r) for r in results],
        "ratios": ratios(results),
    }
    if splits:
        report["cost_split_ms_per_step"] = splits
    if cfg.cache_sizes:
        report["teacher_cache"] = cfg.cache_sizes  # per pair: the stored dtypes and the bytes of one full epoch
    print(markdown_table(results))
    if splits:
        print()
        print(cost_split_table(splits))
    if cfg.json:
        Path(cfg.json).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
