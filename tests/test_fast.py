"""The fast path against the classic torchvision pipeline: exact pixels, augmentation statistics, epochs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from icd_hf.fast import (
    DeviceDataLoader,
    autocast_context,
    build_sgd,
    crop_flip_gather,
    fused_sgd_available,
    gpu_random_crop_flip,
    is_compiled,
    normalization_table,
    normalize_uint8_nhwc,
    prepare_for_speed,
    sgd_kwargs,
)

MEAN = (0.5071, 0.4867, 0.4408)
STD = (0.2675, 0.2565, 0.2761)
PAD = 4


def random_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size, 3), generator=g, dtype=torch.uint8)


def torchvision_crop_flip(img_chw: torch.Tensor, top: int, left: int, flip: bool) -> torch.Tensor:
    """What RandomCrop(padding=PAD) + RandomHorizontalFlip do for these drawn parameters."""
    out = TF.crop(TF.pad(img_chw, [PAD], fill=0), top, left, img_chw.shape[1], img_chw.shape[2])
    return TF.hflip(out) if flip else out


def all_candidates(img_chw: torch.Tensor) -> dict[bytes, tuple[int, int, bool]]:
    """Every image the classic augmentation can produce from ``img_chw``, keyed by its bytes."""
    table = {}
    for top in range(2 * PAD + 1):
        for left in range(2 * PAD + 1):
            for flip in (False, True):
                table[torchvision_crop_flip(img_chw, top, left, flip).numpy().tobytes()] = (top, left, flip)
    assert len(table) == (2 * PAD + 1) ** 2 * 2, "test image too regular: augmentations collide"
    return table


def reconstruct(outputs: torch.Tensor, candidates: dict[bytes, tuple[int, int, bool]]) -> np.ndarray:
    """(top, left, flip) of each output; fails if an output is not an exact crop/flip of the image."""
    params = []
    for out in outputs:
        key = out.contiguous().numpy().tobytes()
        assert key in candidates, "output is not the padded image cropped (and possibly flipped)"
        params.append(candidates[key])
    return np.array(params, dtype=np.int64)


def assert_uniform(counts: np.ndarray) -> None:
    # Chi-square with generous bound (p ~ 1e-6 for 80 d.o.f.); the seed is fixed, so this is deterministic.
    expected = counts.sum() / counts.size
    chi2 = ((counts - expected) ** 2 / expected).sum()
    dof = counts.size - 1
    assert counts.min() > 0
    assert chi2 < dof + 8 * np.sqrt(2 * dof), f"chi2={chi2:.1f} for {dof} dof: not uniform"


def classic_eval(images_nhwc: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    transform = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    return torch.stack([transform(Image.fromarray(images_nhwc[i].numpy())) for i in index.tolist()])


# ---------------------------------------------------------------------------- augmentation
def test_crop_flip_gather_equals_torchvision_for_every_offset_and_flip():
    img = random_images(1, size=12)[0]  # (H, W, C)
    grid = [(t, l, f) for t in range(2 * PAD + 1) for l in range(2 * PAD + 1) for f in (False, True)]
    top, left, flip = (torch.tensor(v) for v in zip(*grid))
    out = crop_flip_gather(img[None], torch.zeros(len(grid), dtype=torch.long), top, left, flip, PAD)
    expected = torch.stack([torchvision_crop_flip(img.permute(2, 0, 1), t, l, f) for t, l, f in grid])
    assert torch.equal(out.permute(0, 3, 1, 2), expected)
    # The PIL path of the classic CIFAR code (pad/crop/flip on PIL images) agrees too.
    pil = Image.fromarray(img.numpy())
    t, l = 1, 7
    ref = TF.hflip(TF.crop(TF.pad(pil, [PAD], fill=0), t, l, 12, 12))
    assert np.array_equal(out[grid.index((t, l, True))].numpy(), np.asarray(ref))


def test_gpu_random_crop_flip_statistics_match_torchvision():
    img = random_images(1, seed=1)[0].permute(2, 0, 1)  # (C, H, W)
    candidates = all_candidates(img)
    n = 8100
    g = torch.Generator().manual_seed(0)
    ours = gpu_random_crop_flip(img.expand(n, -1, -1, -1), PAD, g)
    assert ours.shape == (n, 3, 32, 32) and ours.dtype == torch.uint8
    ours_params = reconstruct(ours, candidates)

    torch.manual_seed(0)
    classic = T.Compose([T.RandomCrop(32, padding=PAD), T.RandomHorizontalFlip()])
    theirs_params = reconstruct(torch.stack([classic(img) for _ in range(n // 4)]), candidates)

    for params in (ours_params, theirs_params):
        joint = np.zeros((2 * PAD + 1, 2 * PAD + 1))
        np.add.at(joint, (params[:, 0], params[:, 1]), 1)
        assert_uniform(joint if len(params) == n else joint.sum(0))
        assert_uniform(joint.sum(1))
        rate, sd = params[:, 2].mean(), 0.5 / np.sqrt(len(params))
        assert abs(rate - 0.5) < 5 * sd, f"flip rate {rate}"
    # Offsets are drawn independently per sample, not once per batch.
    assert len({tuple(p) for p in ours_params[:64]}) > 32


def test_gpu_random_crop_flip_is_reproducible_and_respects_flip_off():
    x = random_images(16).permute(0, 3, 1, 2)
    a = gpu_random_crop_flip(x, PAD, torch.Generator().manual_seed(3))
    b = gpu_random_crop_flip(x, PAD, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    candidates = all_candidates(x[0])
    no_flip = gpu_random_crop_flip(x[:1].expand(200, -1, -1, -1), PAD, torch.Generator().manual_seed(4), flip=False)
    assert not reconstruct(no_flip, candidates)[:, 2].any()
    assert torch.equal(gpu_random_crop_flip(x, 0, flip=False), x)


def test_normalization_table_is_bit_exact_with_totensor_normalize():
    values = torch.arange(256, dtype=torch.uint8).view(16, 16, 1).expand(16, 16, 3).contiguous()
    expected = T.Normalize(MEAN, STD)(T.ToTensor()(values.numpy()))
    ours = normalize_uint8_nhwc(values, normalization_table(MEAN, STD)).permute(2, 0, 1)
    assert ours.dtype == torch.float32
    assert torch.equal(ours, expected)
    with pytest.raises(ValueError, match="one value per channel"):
        normalization_table(MEAN, STD[:2])
    with pytest.raises(ValueError, match="covers 3 channels"):
        normalize_uint8_nhwc(values[..., :1], normalization_table(MEAN, STD))


# ---------------------------------------------------------------------------- loader: pixels
def test_eval_loader_equals_classic_eval_transform():
    images, labels = random_images(37), torch.arange(37) % 5
    loader = DeviceDataLoader(images, labels, 8, train=False, mean=MEAN, std=STD, device="cpu")
    assert len(loader) == 5
    batches = list(loader)
    index = torch.cat([b["index"] for b in batches])
    assert torch.equal(index, torch.arange(37))  # eval: in order, nothing dropped
    pixels = torch.cat([b["pixel_values"] for b in batches])
    assert torch.equal(pixels, classic_eval(images, index))
    assert torch.equal(torch.cat([b["labels"] for b in batches]), labels)


def test_eval_loader_equals_icd_hf_datasets_pipeline():
    """Same pixels as the plain path: datasets split + ImageClassificationTransform + collate_batch."""
    from icd_hf.data import (
        ImageClassificationTransform,
        add_index_column,
        as_uint8_tensor,
        collate_batch,
        dataset_from_arrays,
    )

    images = random_images(12, seed=3)
    ds = add_index_column(dataset_from_arrays(images.numpy(), np.arange(12) % 3, ["a", "b", "c"]))
    stored, labels = as_uint8_tensor(ds)
    assert torch.equal(stored, images)
    plain = ds.with_transform(ImageClassificationTransform(MEAN, STD, train=False))
    loader = DeviceDataLoader(stored, labels, 5, train=False, mean=MEAN, std=STD, device="cpu")
    for batch in loader:
        expected = collate_batch([plain[i] for i in batch["index"].tolist()])
        assert all(torch.equal(batch[k], expected[k]) for k in ("pixel_values", "labels", "index"))


def test_train_loader_without_augmentation_equals_eval_transform_of_its_indices():
    images = random_images(40)
    loader = DeviceDataLoader(
        images, torch.zeros(40, dtype=torch.long), 16, train=True, mean=MEAN, std=STD, device="cpu",
        padding=0, flip=False, seed=5,
    )
    for batch in loader:
        assert torch.equal(batch["pixel_values"], classic_eval(images, batch["index"]))


def test_train_batch_is_classic_augmentation_with_the_drawn_parameters():
    images, labels = random_images(20), torch.randint(0, 100, (20,))
    loader = DeviceDataLoader(images, labels, 8, train=True, mean=MEAN, std=STD, device="cpu", seed=11)
    loader.set_epoch(2)
    order, (top, left, flip) = loader.epoch_plan(2)
    batch = next(iter(loader))
    normalize = T.Normalize(MEAN, STD)
    for i in range(8):
        j = order[i].item()
        crop = torchvision_crop_flip(images[j].permute(2, 0, 1), top[i].item(), left[i].item(), bool(flip[i]))
        expected = normalize(crop.float().div(255))  # ToTensor on the uint8 crop
        assert torch.equal(batch["pixel_values"][i], expected)
        assert batch["index"][i] == j and batch["labels"][i] == labels[j]


def test_layouts_dtypes_and_memory_format():
    nhwc = random_images(10)
    kwargs = dict(train=True, mean=MEAN, std=STD, device="cpu", seed=1)
    default = next(iter(DeviceDataLoader(nhwc, list(range(10)), 4, **kwargs)))
    assert default["pixel_values"].is_contiguous()  # channels_last only by default on CUDA
    kwargs["channels_last"] = True
    a = next(iter(DeviceDataLoader(nhwc, list(range(10)), 4, **kwargs)))
    b = next(iter(DeviceDataLoader(nhwc.permute(0, 3, 1, 2).contiguous(), np.arange(10), 4, **kwargs)))
    c = next(iter(DeviceDataLoader(nhwc.numpy(), torch.arange(10), 4, **(kwargs | {"channels_last": False}))))
    half = next(iter(DeviceDataLoader(nhwc, torch.arange(10), 4, out_dtype=torch.bfloat16, **kwargs)))
    assert torch.equal(a["pixel_values"], b["pixel_values"]) and torch.equal(a["pixel_values"], c["pixel_values"])
    assert torch.equal(a["pixel_values"], default["pixel_values"])
    assert a["pixel_values"].is_contiguous(memory_format=torch.channels_last)
    assert not a["pixel_values"].is_contiguous() and c["pixel_values"].is_contiguous()
    assert a["labels"].dtype == torch.long and a["index"].dtype == torch.long
    assert half["pixel_values"].dtype == torch.bfloat16
    assert torch.equal(half["pixel_values"], a["pixel_values"].bfloat16())


def test_clear_errors_for_bad_inputs():
    imgs = random_images(4)
    with pytest.raises(TypeError, match="uint8"):
        DeviceDataLoader(imgs.float(), [0] * 4, 2, train=True, mean=MEAN, std=STD, device="cpu")
    with pytest.raises(ValueError, match="one entry per image"):
        DeviceDataLoader(imgs, [0] * 3, 2, train=True, mean=MEAN, std=STD, device="cpu")
    with pytest.raises(ValueError, match="no axis of 3 channels"):
        DeviceDataLoader(imgs[..., :2], [0] * 4, 2, train=True, mean=MEAN, std=STD, device="cpu")
    with pytest.raises(TypeError, match="integer class ids"):
        DeviceDataLoader(imgs, [0.0] * 4, 2, train=True, mean=MEAN, std=STD, device="cpu")


# ---------------------------------------------------------------------------- loader: epochs
def epoch_of(loader: DeviceDataLoader, epoch: int) -> list[dict[str, torch.Tensor]]:
    loader.set_epoch(epoch)
    return list(loader)


def test_epochs_are_deterministic_per_seed_and_differ_across_epochs():
    images, labels = random_images(50), torch.arange(50)
    make = lambda seed: DeviceDataLoader(  # noqa: E731
        images, labels, 16, train=True, mean=MEAN, std=STD, device="cpu", seed=seed, drop_last=False
    )
    a, b, other_seed = make(0), make(0), make(1)
    e3, e3_again, e4 = epoch_of(a, 3), epoch_of(b, 3), epoch_of(a, 4)
    for x, y in zip(e3, e3_again):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert not torch.equal(e3[0]["index"], e4[0]["index"])
    assert not torch.equal(e3[0]["index"], epoch_of(other_seed, 3)[0]["index"])
    # Same samples in a new epoch get new augmentations.
    ordered = lambda batches: torch.cat([b["pixel_values"] for b in batches])[  # noqa: E731
        torch.cat([b["index"] for b in batches]).argsort()
    ]
    assert not torch.equal(ordered(e3), ordered(e4))
    # Every index exactly once per epoch, labels follow their images.
    for batches in (e3, e4):
        index = torch.cat([b["index"] for b in batches])
        assert torch.equal(index.sort().values, torch.arange(50))
        assert torch.equal(torch.cat([b["labels"] for b in batches]), labels[index])
    # Without set_epoch each pass moves on to the next epoch.
    first, second = list(a), list(a)
    assert not torch.equal(first[0]["index"], second[0]["index"])


def test_drop_last_and_skip_first_batches():
    loader = DeviceDataLoader(random_images(50), torch.arange(50), 16, train=True, mean=MEAN, std=STD, device="cpu")
    assert len(loader) == 3  # training drops the incomplete batch by default
    full = epoch_of(loader, 7)
    assert [b["index"].numel() for b in full] == [16, 16, 16]
    assert torch.cat([b["index"] for b in full]).unique().numel() == 48
    loader.set_epoch(7)
    resumed = list(loader.skip_first_batches(2))
    assert len(resumed) == 1 and torch.equal(resumed[0]["pixel_values"], full[2]["pixel_values"])
    assert len(list(loader)) == 3  # the skip applies to one pass only


def test_distributed_shards_cover_the_epoch():
    images = random_images(10)
    shards = [
        epoch_of(
            DeviceDataLoader(
                images, torch.arange(10), 2, train=True, mean=MEAN, std=STD, device="cpu", drop_last=False,
                num_replicas=3, rank=r,
            ),
            1,
        )
        for r in range(3)
    ]
    per_rank = [torch.cat([b["index"] for b in s]) for s in shards]
    assert [len(p) for p in per_rank] == [4, 4, 4]  # padded by wrapping around, like DistributedSampler
    assert set(torch.cat(per_rank).tolist()) == set(range(10))


class _RecordOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        self.ops.add(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def test_iteration_never_reads_device_values_back():
    loader = DeviceDataLoader(random_images(40), torch.arange(40), 8, train=True, mean=MEAN, std=STD, device="cpu")
    with _RecordOps() as rec:
        batches = list(loader)
    assert len(batches) == 5
    assert "aten.randperm" in rec.ops and "aten.index" in rec.ops  # the recorder does see the loader's ops
    # .item()/.tolist()/bool(tensor) go through _local_scalar_dense; boolean masking through nonzero.
    syncing = {"aten._local_scalar_dense", "aten.nonzero", "aten.masked_select", "aten.is_nonzero", "aten.equal"}
    assert not rec.ops & syncing, rec.ops & syncing


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_loader_runs_without_host_syncs():
    loader = DeviceDataLoader(random_images(256), torch.arange(256), 64, train=True, mean=MEAN, std=STD, device="cuda")
    next(iter(loader))  # first use initialises CUDA state, which may sync
    torch.cuda.set_sync_debug_mode("error")
    try:
        batches = list(loader)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert batches[0]["pixel_values"].is_cuda and len(batches) == 4


# ---------------------------------------------------------------------------- model and optimiser
class _TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


class _PairWithLoss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.student, self.teacher, self.losses = _TinyNet(), _TinyNet(), nn.ModuleDict({"head": nn.Linear(2, 2)})


def test_prepare_for_speed_channels_last_and_in_place_compile():
    torch.manual_seed(0)
    model = _TinyNet()
    x = torch.randn(2, 3, 8, 8)
    reference = model(x)
    keys = list(model.state_dict())
    assert prepare_for_speed(model, channels_last=True, compile=True, compile_backend="eager") is model
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert is_compiled(model) and list(model.state_dict()) == keys  # checkpoints keep their key names
    assert torch.allclose(model(x.to(memory_format=torch.channels_last)), reference, atol=1e-6)

    assert prepare_for_speed(_TinyNet()).conv.weight.is_contiguous()  # auto: channels_last only on CUDA
    pair = prepare_for_speed(_PairWithLoss(), channels_last=False, compile=True, compile_backend="eager")
    assert is_compiled(pair.student) and is_compiled(pair.teacher)
    assert not is_compiled(pair) and not is_compiled(pair.losses)
    assert pair.student.conv.weight.is_contiguous()


def test_sgd_helpers_pick_an_available_implementation_with_the_same_math():
    assert fused_sgd_available("cpu") == (sgd_kwargs("cpu") == {"fused": True})
    torch.manual_seed(0)
    a, b = nn.Linear(5, 3), nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    fast = build_sgd(a.parameters(), 0.1, device="cpu")
    plain = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, foreach=False)
    for _ in range(3):
        x = torch.randn(4, 5)
        for model, opt in ((a, fast), (b, plain)):
            opt.zero_grad()
            model(x).square().sum().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert torch.is_autocast_enabled("cpu") is False
    with autocast_context("cpu", torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
    with autocast_context("cpu", None):
        assert not torch.is_autocast_enabled("cpu")
