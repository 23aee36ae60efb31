"""How the fast path picks its numeric mode: bf16 + channels_last where the device computes bf16 natively."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from trainer_helpers import ClassBlobs, tiny_args, tiny_pair

from icd_hf.config import ExperimentConfig
from icd_hf.experiment import training_arguments
from icd_hf.fast import (
    DeviceDataLoader,
    bf16_supported,
    channels_last_pays,
    choose_fast_path_precision,
    cpu_bf16_instructions,
)
from icd_hf.fast import device as fast_device
from icd_hf.trainer import DistillationTrainer

XEON_AMX = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"})
XEON_AVX512_BF16 = frozenset({"avx2", "avx512f", "avx512_bf16"})
EPYC_AVX2 = frozenset({"avx2", "fma", "f16c"})


@pytest.fixture
def cpu_flags(monkeypatch):
    """Pretend to run on a CPU with the given /proc/cpuinfo flags (and no CUDA)."""

    def use(flags: frozenset[str]) -> None:
        monkeypatch.setattr(fast_device, "_cpu_flags", lambda: flags)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    return use


def test_cpu_bf16_instructions_read_the_flags():
    assert cpu_bf16_instructions(XEON_AMX) == "AMX-BF16"
    assert cpu_bf16_instructions(XEON_AVX512_BF16) == "AVX512-BF16"
    # avx512f alone (Skylake) has no bf16 arithmetic: autocast would be emulated.
    assert cpu_bf16_instructions({"avx512f", "avx2"}) is None
    assert cpu_bf16_instructions(EPYC_AVX2) is None
    assert cpu_bf16_instructions(()) is None


def test_bf16_supported_on_a_cpu_follows_its_flags(cpu_flags):
    cpu_flags(XEON_AMX)
    assert bf16_supported("cpu")
    cpu_flags(EPYC_AVX2)
    assert not bf16_supported("cpu")


def test_channels_last_pays_on_cuda_always_and_on_cpu_only_with_bf16():
    assert channels_last_pays("cuda", bf16=False) and channels_last_pays("cuda", bf16=True)
    assert channels_last_pays("cpu", bf16=True)
    assert not channels_last_pays("cpu", bf16=False)


def test_choice_on_a_bf16_cpu_and_on_an_avx2_cpu(cpu_flags):
    cpu_flags(XEON_AMX)
    amx = choose_fast_path_precision("cpu")
    assert (amx.bf16, amx.channels_last) == (True, True)
    assert amx.describe() == (
        "bf16 autocast, channels_last: the CPU (AMX-BF16) has native bf16; losses keep float32 math"
    )

    cpu_flags(EPYC_AVX2)
    avx2 = choose_fast_path_precision("cpu")
    assert (avx2.bf16, avx2.channels_last) == (False, False)
    assert "no native bf16" in avx2.reason and avx2.describe().startswith("fp32, contiguous NCHW")


def test_the_user_setting_wins_both_ways(cpu_flags):
    cpu_flags(XEON_AMX)
    off = choose_fast_path_precision("cpu", requested=False)
    assert (off.bf16, off.channels_last) == (False, False) and "training.bf16=false" in off.reason
    cpu_flags(EPYC_AVX2)
    forced = choose_fast_path_precision("cpu", requested=True)
    assert forced.bf16 and forced.channels_last and "emulates bf16" in forced.reason


def _fast_cfg(tmp_path, **training) -> ExperimentConfig:
    return ExperimentConfig(
        student="resnet8", method="vanilla", dataset="digits", fast_path=True, output_dir=str(tmp_path),
        training={"report_to": "none", **training},
    )


def test_training_arguments_turn_bf16_on_for_a_bf16_cpu_and_log_why(cpu_flags, tmp_path, caplog):
    cpu_flags(XEON_AMX)
    with caplog.at_level(logging.INFO, logger="icd_hf.experiment"):
        args = training_arguments(_fast_cfg(tmp_path))
    assert args.bf16 and args.use_cpu and args.device.type == "cpu"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fast path:")]
    assert lines == ["fast path: bf16 autocast, channels_last: the CPU (AMX-BF16) has native bf16; losses keep "
                     "float32 math"]


def test_training_bf16_false_and_avx2_cpus_keep_fp32(cpu_flags, tmp_path):
    cpu_flags(XEON_AMX)
    assert not training_arguments(_fast_cfg(tmp_path, bf16=False)).bf16
    cpu_flags(EPYC_AVX2)
    assert not training_arguments(_fast_cfg(tmp_path)).bf16


def test_plain_path_is_unchanged_on_a_bf16_cpu(cpu_flags, tmp_path):
    cpu_flags(XEON_AMX)
    cfg = _fast_cfg(tmp_path, bf16=True)
    cfg.fast_path = False
    assert not training_arguments(cfg).bf16  # as before: bf16 is dropped without CUDA outside the fast path


def _fast_trainer(tmp_path, bf16: bool) -> DistillationTrainer:
    data = ClassBlobs()
    images = ((data.images - data.images.min()) / (data.images.max() - data.images.min()) * 255).to(torch.uint8)
    student, teacher = tiny_pair()
    trainer = DistillationTrainer(
        model=student, teacher=teacher, method="icd+kd",
        args=tiny_args(tmp_path, fast_path=True, bf16=bf16, max_steps=2), train_dataset=data,
    )
    trainer.enable_fast_path(images.permute(0, 2, 3, 1), data.labels, (0.5,) * 3, (0.25,) * 3)
    return trainer


def test_bf16_fast_path_trains_channels_last_with_float32_losses(tmp_path):
    trainer = _fast_trainer(tmp_path, bf16=True)
    conv = next(p for p in trainer.student.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    loader = trainer.get_train_dataloader()
    assert isinstance(loader, DeviceDataLoader)
    batch = next(iter(loader))
    assert batch["pixel_values"].is_contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = trainer.distiller(**batch)
    assert out.loss.dtype == torch.float32 and all(v.dtype == torch.float32 for v in out.terms.values())
    assert math.isfinite(trainer.train().training_loss) and trainer.state.global_step == 2


def test_fp32_fast_path_on_cpu_stays_nchw(tmp_path):
    trainer = _fast_trainer(tmp_path, bf16=False)
    conv = next(p for p in trainer.student.parameters() if p.dim() == 4)
    assert conv.is_contiguous()
    assert next(iter(trainer.get_train_dataloader()))["pixel_values"].is_contiguous()
