"""The teacher-output cache (icd_hf.teacher_cache) and the deterministic views it is keyed on: cached outputs are
the teacher's, a cached run is the live run, a reused cache runs no teacher, any change of the key is a new cache,
feature-map methods are refused, a resume mid-epoch and several processes work, a sweep builds once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from trainer_helpers import ClassBlobs, tiny_args, tiny_pair
from transformers import TrainerCallback

from icd_hf.cli_utils import run_from_argv
from icd_hf.config import ConfigError, load_config
from icd_hf.fast import DeviceDataLoader, view_crop_flip_params
from icd_hf.fast.augment import _stream_key
from icd_hf.losses import get_loss_class, list_losses
from icd_hf.losses.presets import resolve_method
from icd_hf.teacher_cache import (
    CachedTeacher,
    TeacherOutputCache,
    cache_use,
    cacheable_losses,
    prepare_cache_root,
    teacher_cache_fingerprint,
    teacher_cache_refusal,
)
from icd_hf.trainer import DistillationTrainer

MEAN, STD = (0.5,) * 3, (0.25,) * 3


def _uint8_blobs() -> tuple[ClassBlobs, torch.Tensor]:
    data = ClassBlobs()
    images = ((data.images - data.images.min()) / (data.images.max() - data.images.min()) * 255).to(torch.uint8)
    return data, images.permute(0, 2, 3, 1).contiguous()


def _trainer(out, *, method: str = "icd+kd", cache=None, ensemble: bool = False, change_teacher: bool = False,
             callbacks=(), **args) -> DistillationTrainer:
    """A fast-path resnet8 pair on 64 ClassBlobs images (4 batches of 16 per epoch; 6 steps by default)."""
    data, images = _uint8_blobs()
    student, teacher = tiny_pair()
    if change_teacher:
        with torch.no_grad():
            next(teacher.parameters()).mul_(1.01)
    teachers = [teacher, tiny_pair(seed=1)[1]] if ensemble else teacher
    trainer = DistillationTrainer(
        model=student, teacher=teachers, method=method,
        loss_overrides={"crd": {"nce_k": 32}} if "crd" in method else None,
        args=tiny_args(out, fast_path=True, **{"max_steps": 6, **args}),
        train_dataset=data, eval_dataset=data, callbacks=list(callbacks),
    )
    trainer.enable_fast_path(images, data.labels, MEAN, STD)
    if cache is not None:
        trainer.enable_teacher_cache(cache)
    return trainer


def _count_teacher_forwards(trainer: DistillationTrainer) -> list[int]:
    calls = [0]
    trainer.distiller.teacher.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def _assert_same_training(a: DistillationTrainer, b: DistillationTrainer) -> None:
    # Student, loss heads and buffers (CRD's memory bank): everything a checkpoint holds.
    sa, sb = a.distiller.distillation_state_dict(), b.distiller.distillation_state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ---------------------------------------------------------------------------------------------- views
def _mix32_reference(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_views_are_a_pure_function_of_seed_epoch_and_index():
    index = torch.arange(2000)
    perm = torch.randperm(2000, generator=torch.Generator().manual_seed(0))
    base = view_crop_flip_params(index, seed=3, epoch=5, padding=4)
    for ordered, shuffled in zip(base, view_crop_flip_params(perm, seed=3, epoch=5, padding=4), strict=True):
        assert torch.equal(ordered[perm], shuffled)  # a sample's view does not depend on where it is drawn
    for other in ({"seed": 3, "epoch": 6}, {"seed": 4, "epoch": 5}):
        changed = view_crop_flip_params(index, padding=4, **other)
        assert (changed[0] != base[0]).float().mean() > 0.8 and (changed[2] != base[2]).float().mean() > 0.4
    # The int64 tensor arithmetic is exactly the 32-bit hash (no overflow), also for indices past 2**32.
    for i in (0, 1, 12345, 2**31 - 1, 2**40 + 7):
        h = _mix32_reference(_mix32_reference((i & 0xFFFFFFFF) ^ _stream_key(0x1B873593, 3, 5)) ^ (i >> 32)
                             ^ 0x68E31DA4)
        assert view_crop_flip_params(torch.tensor([i]), seed=3, epoch=5, padding=4)[0].item() == h % 9
    top, left, flipped = view_crop_flip_params(index, seed=3, epoch=5, padding=4, flip=False)
    assert not flipped.any() and torch.equal(top, base[0])
    assert not any(t.any() for t in view_crop_flip_params(index, seed=3, epoch=5, padding=0, flip=False))


def test_views_are_uniform_over_offsets_with_half_of_them_flipped():
    top, left, flipped = view_crop_flip_params(torch.arange(81 * 400), seed=0, epoch=0, padding=4)
    counts = torch.bincount(top * 9 + left, minlength=81).double()
    expected = counts.sum() / 81
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert counts.min() > 0 and chi2 < 80 + 8 * np.sqrt(160), chi2  # 80 d.o.f., p ~ 1e-6
    rate = flipped.double().mean().item()
    assert abs(rate - 0.5) < 5 * 0.5 / np.sqrt(len(flipped))
    # The flip is independent of the offset.
    assert abs(flipped[top == 0].double().mean().item() - 0.5) < 5 * 0.5 / np.sqrt(int((top == 0).sum()))


def test_a_sample_gets_the_same_pixels_whatever_the_batch_size_or_process():
    _, images = _uint8_blobs()
    views: dict[int, torch.Tensor] = {}
    for batch_size, replicas, rank in ((16, 1, 0), (5, 1, 0), (4, 2, 0), (4, 2, 1)):
        loader = DeviceDataLoader(images, torch.zeros(64, dtype=torch.long), batch_size, train=True, mean=MEAN,
                                  std=STD, device="cpu", seed=7, drop_last=False, num_replicas=replicas, rank=rank)
        loader.set_epoch(2)
        for batch in loader:
            for i, pixels in zip(batch["index"].tolist(), batch["pixel_values"], strict=True):
                assert torch.equal(views.setdefault(i, pixels), pixels), i
    assert sorted(views) == list(range(64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_views_are_the_same_on_cuda():
    index = torch.randperm(50_000)
    cpu = view_crop_flip_params(index, seed=11, epoch=239, padding=4)
    cuda = view_crop_flip_params(index.cuda(), seed=11, epoch=239, padding=4)
    assert all(torch.equal(a, b.cpu()) for a, b in zip(cpu, cuda, strict=True))


# ---------------------------------------------------------------------------------------------- equality
@pytest.mark.parametrize("method,ensemble", [("icd+kd", False), ("crd+kd", False), ("kd", True)])
def test_live_building_and_reusing_runs_train_the_same_student(method, ensemble, tmp_path):
    cache = tmp_path / "cache"
    runs, calls = {}, {}
    for name in ("live", "build", "reuse"):
        runs[name] = _trainer(tmp_path / name, method=method, ensemble=ensemble,
                              cache=None if name == "live" else cache)
        calls[name] = _count_teacher_forwards(runs[name])
        runs[name].train()
    assert calls == {"live": [6], "build": [6], "reuse": [0]}  # the second run never ran its teacher
    _assert_same_training(runs["live"], runs["build"])
    _assert_same_training(runs["live"], runs["reuse"])
    top1 = {name: trainer.evaluate()["eval_top1"] for name, trainer in runs.items()}
    assert top1["live"] == top1["build"] == top1["reuse"]
    built, reused = runs["build"].teacher_cache.summary(), runs["reuse"].teacher_cache.summary()
    assert (built["batches_computed"], built["batches_read"], reused["batches_computed"], reused["batches_read"]) \
        == (6, 0, 0, 6)
    assert (cache_use(built), cache_use(reused), cache_use(None)) == ("cache built", "cache read", "live")
    assert reused["epochs_cached_at_start"] == 2 and built["dir"] == reused["dir"]
    teachers = 2 if ensemble else 1
    assert reused["bytes_per_epoch"] == 64 * (4 + 64) * 4 * teachers and reused["dtypes"] == ["float32"] * 2 * teachers
    assert len(list(cache.iterdir())) == 1  # one key: the three runs share teacher, data, views, seed, precision


def test_cached_outputs_are_the_teachers_outputs_on_the_same_views(tmp_path):
    trainer = _trainer(tmp_path / "run", cache=tmp_path / "cache", max_steps=4)  # exactly epoch 0
    trainer.train()
    built = trainer.teacher_cache
    shards = sorted((built.directory / "epoch_00000").iterdir())
    assert [p.name for p in shards] == ["rank0of1.n64.index.npy", "rank0of1.n64.t0.logits.npy",
                                        "rank0of1.n64.t0.pooled.npy"]
    index = np.load(shards[0], mmap_mode="r")
    assert isinstance(index, np.memmap) and sorted(index.tolist()) == list(range(64))
    teacher = trainer.distiller.teacher
    for batch_size in (16, 8):  # the training batches, and other batches of the same views
        cache = TeacherOutputCache(tmp_path / "cache", built.fingerprint, num_images=64, teachers=built.teachers,
                                   device="cpu")
        _, images = _uint8_blobs()
        loader = DeviceDataLoader(images, torch.zeros(64, dtype=torch.long), batch_size, train=True, mean=MEAN,
                                  std=STD, device="cpu", seed=0, drop_last=False, on_epoch_start=cache.begin_epoch)
        loader.set_epoch(0)
        for batch in loader:
            (logits, pooled), = cache.lookup(0, batch["view_start"], batch["index"])
            with torch.no_grad():
                live = teacher(pixel_values=batch["pixel_values"])
            if batch_size == 16:
                assert torch.equal(logits, live.logits) and torch.equal(pooled, live.pooler_output)
            else:  # other batch sizes may round differently, never differ more
                torch.testing.assert_close(logits, live.logits, rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(pooled, live.pooler_output, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- keys
def test_a_changed_teacher_seed_precision_device_or_data_is_a_new_cache(tmp_path):
    cache = tmp_path / "cache"
    first = _trainer(tmp_path / "a", cache=cache, max_steps=2)
    first.train()
    other = _trainer(tmp_path / "b", cache=cache, max_steps=2, change_teacher=True)
    calls = _count_teacher_forwards(other)
    other.train()
    assert calls == [2] and other.teacher_cache.directory != first.teacher_cache.directory
    assert other.teacher_cache.summary()["batches_read"] == 0 and len(list(cache.iterdir())) == 2

    teacher, images = first.distiller.teacher, _uint8_blobs()[1]
    kwargs = dict(mean=MEAN, std=STD, padding=4, flip=True, seed=0, precision="fp32", device="cpu")
    base = teacher_cache_fingerprint(teacher, images, **kwargs)
    assert base == first.teacher_cache.fingerprint
    changed_images = images.clone()
    changed_images[0, 0, 0, 0] ^= 1
    for change in ({"seed": 1}, {"precision": "bf16"}, {"device": "cuda"}, {"padding": 2}, {"flip": False},
                   {"std": (0.3,) * 3}):
        assert teacher_cache_fingerprint(teacher, images, **{**kwargs, **change}) != base, change
    assert teacher_cache_fingerprint(teacher, changed_images, **kwargs) != base
    # A meta.json that does not match its folder's key is refused, never read.
    meta = first.teacher_cache.directory / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "fingerprint": {**base, "seed": 1}}))
    with pytest.raises(ValueError, match="describes another cache than its folder's name says"):
        TeacherOutputCache(cache, base, num_images=64, teachers=[CachedTeacher(4, 64)], device="cpu")


# ---------------------------------------------------------------------------------------------- refusals
def test_methods_that_read_feature_maps_are_refused_in_one_line(tmp_path):
    assert {"kd", "dkd", "icd", "crd", "rkd", "pkt", "cc"} <= set(cacheable_losses())
    for name in list_losses():  # derived from what each loss class declares it reads
        cls = get_loss_class(name)
        reads_maps = cls.needs_hidden_states or cls.needs_spatial_maps or cls.init_epochs > 0
        why = teacher_cache_refusal(resolve_method(name))
        assert (name in cacheable_losses()) is (why is None) is (not reads_maps), name
        if why:
            assert f"reads the teacher's feature maps ({name})" in why and "\n" not in why
    assert teacher_cache_refusal(resolve_method("crd+icd+kd")) is None
    assert "(fitnet)" in teacher_cache_refusal(resolve_method("fitnet+kd"))
    with pytest.raises(ValueError, match=r"teacher_cache: method 'at' reads the teacher's feature maps \(at\)"):
        _trainer(tmp_path / "at", method="at", cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()

    base = {"teacher_checkpoint": "x", "fast_path": True, "teacher_cache": str(tmp_path / "c")}
    for fields, message in (
        ({"method": "fitnet"}, "teacher_cache: method 'fitnet' reads the teacher's feature maps (fitnet), which a "
                               "teacher cache does not hold"),
        ({"method": "kd", "fast_path": False}, "teacher_cache keys the teacher's outputs by the fast path's views"),
        ({"method": "vanilla"}, "teacher_cache: method 'vanilla' distils from no teacher, so there are no teacher "
                                "outputs to cache: drop teacher_cache."),
    ):
        with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
            load_config(None, {**base, **fields})
    load_config(None, {**base, "method": "crd+kd"})  # accepted
    # The README's list is the derived one.
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    listed = re.search(r"Methods whose losses read only those outputs use it \(([^)]*)\)", readme).group(1)
    assert set(listed.split(", ")[:len(cacheable_losses())]) == set(cacheable_losses())


def test_the_command_line_refuses_a_cache_in_one_line_before_loading(tmp_path, capsys, monkeypatch):
    import icd_hf.data

    monkeypatch.setattr(icd_hf.data, "build_datasets", lambda *a, **k: pytest.fail("loaded data"))
    argv = ["--dataset", "digits", "--teacher_checkpoint", "x", "--fast_path", "--teacher_cache", str(tmp_path)]
    assert run_from_argv([*argv, "--method", "ab"], prog="distill.py") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "method 'ab' reads the teacher's feature maps (ab)" in err
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        prepare_cache_root(tmp_path / "file")
    plain = DistillationTrainer(model=tiny_pair()[0], teacher=tiny_pair()[1], method="kd",
                                args=tiny_args(tmp_path / "plain"), train_dataset=ClassBlobs())
    with pytest.raises(ValueError, match="call enable_fast_path first"):
        plain.enable_teacher_cache(tmp_path / "cache")


# ---------------------------------------------------------------------------------------------- resume, processes
class _StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if state.global_step == self.step:
            control.should_training_stop = True


def test_a_resume_in_the_middle_of_an_epoch_keeps_what_the_interrupted_run_cached(tmp_path):
    cache = tmp_path / "cache"
    live = _trainer(tmp_path / "live")
    live.train()
    # Killed after step 3 of 6, in the middle of epoch 0 (4 batches): its checkpoint flushed rows 0-2.
    cut = _trainer(tmp_path / "cut", cache=cache, save_strategy="steps", save_steps=3, callbacks=[_StopAt(3)])
    cut.train()
    assert cut.state.global_step == 3 and cut.teacher_cache.summary()["batches_computed"] == 3
    resumed = _trainer(tmp_path / "cut", cache=cache)
    calls = _count_teacher_forwards(resumed)
    resumed.train(resume_from_checkpoint=str(tmp_path / "cut" / "checkpoint-3"))
    assert calls == [3]  # batch 3 of epoch 0 and batches 0-1 of epoch 1; the skipped batches are not built
    _assert_same_training(live, resumed)
    again = _trainer(tmp_path / "again", cache=cache)
    calls = _count_teacher_forwards(again)
    again.train()
    assert calls == [0]  # the interrupted run's rows and the resumed run's are all there
    _assert_same_training(live, again)


def _fake_teacher(pixels: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A per-sample function of the view, standing in for a teacher."""
    pooled = pixels.amax(dim=(2, 3))
    return [(pooled * torch.tensor([1.0, -2.0, 0.5]), pooled[:, :2] + pixels[:, 0, 0, :2])]


def test_each_process_writes_its_own_shard_and_any_number_of_processes_reads_them(tmp_path):
    _, images = _uint8_blobs()
    images, labels, fingerprint = images[:10], torch.zeros(10, dtype=torch.long), {"test": 1}

    def cache_and_loader(batch_size: int, world: int, rank: int):
        cache = TeacherOutputCache(tmp_path, fingerprint, num_images=10, teachers=[CachedTeacher(3, 2)],
                                   device="cpu", rank=rank, world_size=world)
        loader = DeviceDataLoader(images, labels, batch_size, train=True, mean=MEAN, std=STD, device="cpu",
                                  drop_last=False, num_replicas=world, rank=rank, on_epoch_start=cache.begin_epoch)
        loader.set_epoch(1)
        return cache, loader

    for rank in (0, 1):
        cache, loader = cache_and_loader(2, world=2, rank=rank)
        for batch in loader:
            assert cache.lookup(1, batch["view_start"], batch["index"]) is None
            cache.store(1, batch["view_start"], batch["index"], _fake_teacher(batch["pixel_values"]))
        cache.flush()
    folder = tmp_path / cache.key / "epoch_00001"
    assert sorted(p.name for p in folder.glob("*.index.npy")) == ["rank0of2.n5.index.npy", "rank1of2.n5.index.npy"]
    reader, loader = cache_and_loader(4, world=1, rank=0)
    for batch in loader:  # other batches, one process: every view is found in one of the two shards
        (logits, pooled), = reader.lookup(1, batch["view_start"], batch["index"])
        (live_logits, live_pooled), = _fake_teacher(batch["pixel_values"])
        assert torch.equal(logits, live_logits) and torch.equal(pooled, live_pooled)
    loader.set_epoch(0)
    batch = next(iter(loader))
    assert reader.lookup(0, batch["view_start"], batch["index"]) is None  # epoch 0 was never cached


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cached_epoch_is_read_without_host_syncs_on_cuda(tmp_path):
    images, labels = torch.randint(0, 256, (256, 32, 32, 3), dtype=torch.uint8), torch.zeros(256, dtype=torch.long)

    def cache_and_loader() -> tuple[TeacherOutputCache, DeviceDataLoader]:
        cache = TeacherOutputCache(tmp_path, {"test": 1}, num_images=256, teachers=[CachedTeacher(10, 8)],
                                   device="cuda")
        loader = DeviceDataLoader(images, labels, 64, train=True, mean=MEAN, std=STD, device="cuda",
                                  on_epoch_start=cache.begin_epoch)
        loader.set_epoch(0)
        return cache, loader

    writer, loader = cache_and_loader()
    for batch in loader:
        n = batch["index"].shape[0]
        writer.store(0, batch["view_start"], batch["index"],
                     [(torch.randn(n, 10, device="cuda"), torch.randn(n, 8, device="cuda"))])
    writer.flush()
    reader, loader = cache_and_loader()
    batches = iter(loader)
    first = next(batches)  # begin_epoch: the epoch's one host read
    torch.cuda.set_sync_debug_mode("error")
    try:
        found = [reader.lookup(0, b["view_start"], b["index"]) for b in (first, *batches)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(found) == 4 and all(f is not None for f in found)


def test_bf16_outputs_are_kept_in_bf16_in_memory_mapped_files(tmp_path):
    order = torch.arange(8)

    def cache() -> TeacherOutputCache:
        return TeacherOutputCache(tmp_path, {"precision": "bf16"}, num_images=8, teachers=[CachedTeacher(3, 2)],
                                  device="cpu")

    writer = cache()
    writer.begin_epoch(0, order)
    values = [(torch.randn(8, 3).bfloat16(), torch.randn(8, 2).bfloat16())]
    writer.store(0, 0, order, values)
    writer.flush()
    assert writer.dtypes == ["bfloat16", "bfloat16"] and writer.bytes_per_epoch == 8 * (3 + 2) * 2
    stored = np.load(writer.directory / "epoch_00000" / "rank0of1.n8.t0.logits.npy", mmap_mode="r")
    assert isinstance(stored, np.memmap) and stored.dtype == np.int16  # the bf16 bits
    reader = cache()
    reader.begin_epoch(0, order.flip(0))
    (logits, pooled), = reader.lookup(0, 0, order.flip(0))
    assert logits.dtype == torch.bfloat16 and torch.equal(logits, values[0][0].flip(0))
    assert torch.equal(pooled, values[0][1].flip(0))
    with pytest.raises(ValueError, match="was built in another precision"):
        reader.store(0, 0, order, [(torch.randn(8, 3), torch.randn(8, 2))])


# ---------------------------------------------------------------------------------------------- sweep
def test_a_sweep_builds_the_cache_on_its_first_method_and_reuses_it(tmp_path):
    from icd_hf.experiment import run_experiment
    from icd_hf.runs import method_dirname
    from icd_hf.sweep import run_sweep

    tiny = {"dataset": "digits", "max_train_samples": 64, "max_eval_samples": 32, "student": "resnet8",
            "training.num_train_epochs": 1, "training.per_device_train_batch_size": 16,
            "training.per_device_eval_batch_size": 32, "training.eval_strategy": "no",
            "training.save_strategy": "no", "training.dataloader_num_workers": 0, "training.use_cpu": True,
            "training.disable_tqdm": True, "training.report_to": "none"}
    run_experiment(load_config(None, {**tiny, "output_dir": str(tmp_path / "teacher"), "method": "vanilla"}))
    overrides = {**tiny, "output_dir": str(tmp_path / "sweep"), "teacher": "resnet8", "fast_path": True,
                 "teacher_checkpoint": str(tmp_path / "teacher" / "student"), "teacher_cache": str(tmp_path / "cache")}
    table = run_sweep(None, ["kd", "icd+kd", "fitnet"], overrides)
    uses = {m: r["teacher_outputs"] for m, r in table["results"].items()}
    assert uses == {"kd": "cache built", "icd+kd": "cache read", "fitnet": "live"}
    markdown = (tmp_path / "sweep" / "sweep.md").read_text()
    assert "| vs KD | teacher outputs |" in markdown and markdown.count("| cache read |") == 1
    assert len(list((tmp_path / "cache").iterdir())) == 1
    saved = json.loads((tmp_path / "sweep" / method_dirname("icd+kd", None) / "results.json").read_text())
    assert saved["teacher_cache"]["batches_read"] == 4 and saved["teacher_cache"]["batches_computed"] == 0
    fitnet = json.loads((tmp_path / "sweep" / method_dirname("fitnet", None) / "results.json").read_text())
    assert "teacher_cache" not in fitnet and fitnet["config"]["teacher_cache"] is None
