"""Tests for icd_hf.data: every loader on data written here in the official layouts, transforms, collator."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from icd_hf.data import (
    KNOWN_DATASETS,
    DatasetUnavailableError,
    DistillationCollator,
    ImageClassificationTransform,
    ImageDatasetInfo,
    add_index_column,
    as_uint8_tensor,
    build_datasets,
    collate_batch,
    compute_mean_std,
    detect_layout,
    load_image_dataset,
    normalize,
    random_crop,
    random_horizontal_flip,
)

CIFAR_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR_STD = (0.2673, 0.2564, 0.2762)
SHARED_DATA = Path(__file__).parents[1] / ".." / "shared" / "data"


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


# ------------------------------------------------------------------------------------------ fixtures: files


def write_cifar100(root: Path, n_train: int = 12, n_test: int = 6, seed: int = 0) -> dict[str, dict]:
    """Write train/test/meta exactly like the official cifar-100-python release (Python-2 style pickles)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = {
            b"filenames": [f"img_{i:04d}.png".encode() for i in range(n)],
            b"batch_label": f"{split}ing batch 1 of 1".encode(),
            b"fine_labels": rng.integers(0, 100, n).tolist(),
            b"coarse_labels": rng.integers(0, 20, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        }
        with open(root / split, "wb") as f:
            pickle.dump(data, f, protocol=2)
        written[split] = data
    meta = {
        b"fine_label_names": [f"fine{i:02d}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse{i:02d}".encode() for i in range(20)],
    }
    meta[b"fine_label_names"][0] = b"apple"
    with open(root / "meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return written


def write_stl10(root: Path, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write stl10_binary/ files: 96x96x3 images column-major per channel, 1-based uint8 labels."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    written = {}
    for split, n in (("train", 5), ("test", 3)):
        images = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)  # (N, H, W, C), what we expect back
        labels = rng.integers(1, 11, n).astype(np.uint8)  # 1..10 on disk
        with open(root / f"{split}_X.bin", "wb") as f:
            for image in images:
                for c in range(3):  # each channel plane column by column (Fortran order)
                    f.write(np.ravel(image[:, :, c], order="F").tobytes())
        labels.tofile(root / f"{split}_y.bin")
        written[split] = (images, labels)
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (root / "class_names.txt").write_text("\n".join(names) + "\n")
    return written


def write_tiny_imagenet(root: Path) -> dict[str, object]:
    """A 3-class tiny-imagenet-200/ tree: unsorted wnids.txt, a words.txt with extra ids, JPEG + PNG + grey."""
    wnids = ["n03000000", "n01000000", "n02000000"]  # deliberately not sorted
    colours = {"n01000000": (200, 30, 30), "n02000000": (30, 200, 30), "n03000000": (30, 30, 200)}
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text(
        "n00000001\tentity\n"
        "n01000000\tgoldfish, Carassius auratus\n"
        "n02000000\tbullfrog, Rana catesbeiana\n"
        "n03000000\tschool bus\n"
    )
    for wnid in wnids:
        image_dir = root / "train" / wnid / "images"
        image_dir.mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (64, 64), colours[wnid]).save(image_dir / f"{wnid}_{i}.JPEG", format="JPEG", quality=95)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    # Some real TIN JPEGs are greyscale; this one must come back as RGB.
    Image.new("L", (64, 64), 90).save(root / "train" / "n02000000" / "images" / "n02000000_2.JPEG", format="JPEG")
    val_dir = root / "val" / "images"
    val_dir.mkdir(parents=True)
    rows = []
    for k, wnid in enumerate(["n02000000", "n03000000", "n01000000", "n03000000"]):
        name = f"val_{k}.JPEG"
        if k == 3:  # a PNG payload: decoding must follow the content, not the extension
            Image.new("RGB", (64, 64), colours[wnid]).save(val_dir / name, format="PNG")
        else:
            Image.new("RGB", (64, 64), colours[wnid]).save(val_dir / name, format="JPEG", quality=95)
        rows.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(rows) + "\n")
    return {"colours": colours, "val_wnids": ["n02000000", "n03000000", "n01000000", "n03000000"]}


def write_image_folder(root: Path, splits: tuple[str, ...] = ("train", "test"), seed: int = 0) -> dict:
    """``root/<split>/<class>/<i>.png`` (or ``root/<class>/<i>.png`` when ``splits`` is empty) of 8x8 images."""
    rng = np.random.default_rng(seed)
    written: dict = {}
    for split in splits or ("",):
        for cls, n in (("dog", 2), ("cat", 3)):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
                written[(split, cls, i)] = pixels
    return written


# ---------------------------------------------------------------------------------------------------- digits


def test_digits_counts_shapes_labels_and_determinism():
    train = load_image_dataset("digits", "train")
    test = load_image_dataset("digits", "test")
    assert (len(train), len(test)) == (1500, 297)
    assert train.features["label"].names == [str(d) for d in range(10)]
    assert train.column_names == ["image", "label", "index"]
    assert train["index"] == list(range(1500))
    images, labels = as_uint8_tensor(train)
    assert images.shape == (1500, 32, 32, 3) and images.dtype == torch.uint8
    assert labels.min() == 0 and labels.max() == 9
    # Stratified split: every class keeps its share (sklearn's digits has 174..183 images per class).
    assert torch.bincount(labels, minlength=10).min() >= 140
    # Grey input repeated over RGB, and the 0..16 range really maps onto 0..255.
    assert torch.equal(images[..., 0], images[..., 1]) and torch.equal(images[..., 0], images[..., 2])
    assert images.max() == 255 and images.min() == 0
    # Same split on every call (fixed random_state), and train/test are disjoint and cover all 1,797 images.
    again, _ = as_uint8_tensor(load_image_dataset("digits", "train"))
    assert torch.equal(images, again)
    test_images, _ = as_uint8_tensor(test)
    flat_train = {bytes(x.numpy()) for x in images}
    assert not any(bytes(x.numpy()) in flat_train for x in test_images[:50])


def test_digits_images_and_labels_stay_aligned_with_sklearn():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = as_uint8_tensor(load_image_dataset("digits", "train").select(range(50)))
    # Average-pool each 32x32 image back to 8x8: its nearest original (of all 1,797) must carry its label,
    # so the resize kept the digit and the split kept images and labels together.
    pooled = images[..., 0].float().reshape(50, 8, 4, 8, 4).mean((2, 4)) / 255.0
    originals = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    for img, label in zip(pooled, labels):
        err = (originals - img).abs().mean((1, 2))
        assert digits.target[err.argmin()] == label and err.min() < 0.1


def test_digits_known_statistics_match_the_data():
    mean, std = compute_mean_std(load_image_dataset("digits", "train"), max_samples=None)
    known = KNOWN_DATASETS["digits"]
    np.testing.assert_allclose(mean, known.mean, atol=1e-4)
    np.testing.assert_allclose(std, known.std, atol=1e-4)


def test_compute_mean_std_matches_numpy():
    ds = load_image_dataset("digits", "test")
    x = np.stack([_pixels(ds[i]["image"]) for i in range(len(ds))]).astype(np.float64) / 255.0
    mean, std = compute_mean_std(ds, max_samples=None)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), rtol=1e-10)
    np.testing.assert_allclose(std, x.std(axis=(0, 1, 2)), rtol=1e-10)


# ------------------------------------------------------------------------------------------------ build


def test_build_datasets_digits_ready_for_the_trainer():
    train, test, info = build_datasets("digits", max_train_samples=64, max_eval_samples=40)
    assert (len(train), len(test)) == (64, 40)
    assert info.num_classes == 10 and info.image_size == 32 and info.native_image_size == 32
    assert (info.num_train, info.num_eval) == (64, 40)
    assert info.class_names == [str(d) for d in range(10)]
    loader = torch.utils.data.DataLoader(train, batch_size=16, shuffle=True, collate_fn=collate_batch)
    seen = []
    for batch in loader:
        assert set(batch) == {"pixel_values", "labels", "index"}
        assert batch["pixel_values"].shape == (16, 3, 32, 32) and batch["pixel_values"].dtype == torch.float32
        assert batch["labels"].dtype == torch.long and batch["index"].dtype == torch.long
        seen.extend(batch["index"].tolist())
    assert sorted(seen) == list(range(64))  # index is each row's position: a dense 0..N-1 range
    # The raw columns stay reachable without the transform.
    assert list(train.with_format(None)["label"]) == load_image_dataset("digits", "train")["label"][:64]

    # Eval rows are deterministic and equal the hand-normalised stored pixels, with matching labels.
    raw, labels = as_uint8_tensor(test)
    batch = collate_batch([test[i] for i in range(5)])
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    expected = (raw[:5].permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    torch.testing.assert_close(batch["pixel_values"], expected)
    assert torch.equal(batch["labels"], labels[:5])
    assert batch["index"].tolist() == [0, 1, 2, 3, 4]


def test_max_samples_renumber_index_and_add_index_column():
    train, _, _ = build_datasets("digits", max_train_samples=10, max_eval_samples=3)
    assert [train[i]["index"].item() for i in range(10)] == list(range(10))
    shuffled = load_image_dataset("digits", "test").shuffle(seed=1).select(range(7))
    assert shuffled["index"] != list(range(7))  # positions in the parent dataset...
    assert add_index_column(shuffled)["index"] == list(range(7))  # ...renumbered for this one


def test_dataset_info_json_round_trip():
    _, _, info = build_datasets("digits", max_train_samples=8, max_eval_samples=8)
    data = json.loads(json.dumps(info.to_dict()))
    assert ImageDatasetInfo.from_dict(data) == info
    assert info.id2label[3] == "3" and info.label2id["7"] == 7


# ------------------------------------------------------------------------------------------------- transforms


def test_eval_transform_of_constant_image_is_hand_computed():
    image = Image.new("RGB", (32, 32), (128, 64, 255))
    out = ImageClassificationTransform(CIFAR_MEAN, CIFAR_STD)({"image": [image], "label": [3], "index": [9]})
    expected = [(128 / 255 - 0.5071) / 0.2673, (64 / 255 - 0.4865) / 0.2564, (255 / 255 - 0.4409) / 0.2762]
    assert out["pixel_values"].shape == (1, 3, 32, 32) and out["pixel_values"].dtype == torch.float32
    for c in range(3):
        torch.testing.assert_close(out["pixel_values"][0, c], torch.full((32, 32), expected[c]))
    assert out["labels"].tolist() == [3] and out["index"].tolist() == [9]


def test_train_transform_crops_and_flips_vary_like_torchvision():
    rng = np.random.default_rng(0)
    pixels = rng.integers(1, 256, (32, 32, 3), dtype=np.uint8)  # no zeros: zero pixels can only be padding
    tf = ImageClassificationTransform((0, 0, 0), (1, 1, 1), train=True, generator=torch.Generator().manual_seed(0))
    out = tf({"image": [Image.fromarray(pixels)] * 200, "label": [0] * 200})["pixel_values"]
    assert out.shape == (200, 3, 32, 32) and out.dtype == torch.float32
    recovered = (out * 255).round().to(torch.uint8)
    # Every output is a 32x32 window of the zero-padded (4 px) image, possibly mirrored; find which.
    padded = torch.nn.functional.pad(torch.from_numpy(pixels).permute(2, 0, 1), (4, 4, 4, 4))
    offsets, flips = set(), []
    for img in recovered:
        match = None
        for flip in (False, True):
            candidate = img.flip(-1) if flip else img
            for top in range(9):
                for left in range(9):
                    if torch.equal(padded[:, top : top + 32, left : left + 32], candidate):
                        match = (top, left, flip)
        assert match is not None, "output is not a padded crop (+ flip) of the input"
        offsets.add(match[:2])
        flips.append(match[2])
    assert len(offsets) > 30  # 81 possible offsets: crops really vary
    assert 0.3 < np.mean(flips) < 0.7  # flipped about half the time
    assert (recovered == 0).any()  # padding reached the output


def test_random_crop_and_flip_primitives():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4)
    assert torch.equal(random_horizontal_flip(x, p=1.0), x.flip(-1))
    assert torch.equal(random_horizontal_flip(x, p=0.0), x)
    assert torch.equal(random_crop(x, 4, padding=0), x)  # no padding, full size: the only crop is the image
    crops = random_crop(x, 2, padding=0, generator=torch.Generator().manual_seed(0))
    assert crops.shape == (2, 3, 2, 2)
    with pytest.raises(ValueError, match="Cannot crop 9x9"):
        random_crop(x, 9, padding=2)
    torch.testing.assert_close(
        normalize(torch.full((1, 3, 1, 1), 51, dtype=torch.uint8), (0.1, 0.2, 0.3), (0.5, 0.5, 0.5)),
        torch.tensor([0.2, 0.0, -0.2]).view(1, 3, 1, 1),
    )


def test_transform_resize_grey_and_mixed_sizes():
    tf = ImageClassificationTransform((0, 0, 0), (1, 1, 1), image_size=32)
    out = tf({"image": [Image.new("RGB", (96, 96), (10, 20, 30)), Image.new("L", (64, 48), 200)]})
    assert out["pixel_values"].shape == (2, 3, 32, 32)
    # A constant image stays constant under resizing; a grey image becomes three equal channels.
    torch.testing.assert_close(out["pixel_values"][0, :, 5, 7], torch.tensor([10, 20, 30]) / 255.0)
    torch.testing.assert_close(out["pixel_values"][1], torch.full((3, 32, 32), 200 / 255.0))
    assert "labels" not in out
    with pytest.raises(ValueError, match="image_size"):
        ImageClassificationTransform((0, 0, 0), (1, 1, 1))(
            {"image": [Image.new("RGB", (8, 8)), Image.new("RGB", (9, 9))]}
        )
    with pytest.raises(ValueError, match="3 values"):
        ImageClassificationTransform((0.5,), (0.5,))
    with pytest.raises(KeyError, match="no 'image' column"):
        ImageClassificationTransform((0, 0, 0), (1, 1, 1))({"img": [], "label": []})


def test_train_augment_padding_scales_with_size():
    tf = ImageClassificationTransform((0, 0, 0), (1, 1, 1), train=True, generator=torch.Generator().manual_seed(0))
    out = tf({"image": [Image.new("RGB", (64, 64), 255)] * 40})["pixel_values"]
    assert out.shape == (40, 3, 64, 64)
    # Padding 64 // 8 = 8: the zero border of a crop is never thicker than 8 rows.
    zero_rows = (out[:, 0].amax(-1) == 0).sum(-1)
    assert zero_rows.max() <= 8 and zero_rows.max() > 4


# -------------------------------------------------------------------------------------------------- collator


def test_collator_stacks_and_explains_missing_keys():
    rows = [{"pixel_values": torch.full((3, 2, 2), float(i)), "labels": torch.tensor(i), "index": i} for i in range(3)]
    batch = DistillationCollator()(rows)
    assert batch["pixel_values"].shape == (3, 3, 2, 2) and batch["pixel_values"][2, 0, 0, 0] == 2.0
    assert batch["labels"].tolist() == [0, 1, 2] and batch["index"].tolist() == [0, 1, 2]
    assert batch["index"].dtype == torch.long
    no_index = [{k: v for k, v in r.items() if k != "index"} for r in rows]
    with pytest.raises(KeyError, match="add_index_column"):
        collate_batch(no_index)
    assert "index" not in DistillationCollator(require_index=False)(no_index)
    with pytest.raises(KeyError, match="remove_unused_columns=False"):
        collate_batch([{"image": 1}])


# -------------------------------------------------------------------------------------------------- CIFAR-100


def test_cifar100_pickles_byte_exact(tmp_path):
    written = write_cifar100(tmp_path / "cifar-100-python")
    for split in ("train", "test"):
        ds = load_image_dataset("cifar100", split, data_dir=tmp_path / "cifar-100-python")
        raw = written[split]
        assert len(ds) == len(raw[b"fine_labels"])
        assert ds["label"] == raw[b"fine_labels"] and ds["coarse_label"] == raw[b"coarse_labels"]
        expected = raw[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # rows are R plane, G plane, B plane
        for i in range(len(ds)):
            assert np.array_equal(_pixels(ds[i]["image"]), expected[i])  # through PIL decoding
        images, labels = as_uint8_tensor(ds)  # through the PIL-free fast path
        assert np.array_equal(images.numpy(), expected) and labels.tolist() == raw[b"fine_labels"]
    names = ds.features["label"].names
    assert len(names) == 100 and names[0] == "apple" and names[5] == "fine05"
    assert ds.features["coarse_label"].names[19] == "coarse19"


def test_cifar100_detected_from_parent_dir_with_known_stats(tmp_path):
    write_cifar100(tmp_path / "cifar-100-python")
    train, test, info = build_datasets(tmp_path, max_eval_samples=4)  # a path, layout detected
    assert info.name == "cifar100" and info.num_classes == 100 and info.class_names[0] == "apple"
    assert info.mean == CIFAR_MEAN and info.std == CIFAR_STD
    assert info.source.startswith("cifar100-python:") and (len(train), len(test)) == (12, 4)
    assert train[0]["pixel_values"].shape == (3, 32, 32)
    assert detect_layout(tmp_path) == ("cifar100-python", tmp_path / "cifar-100-python")


def test_cifar_pickle_loader_refuses_code_and_wrong_format(tmp_path):
    root = tmp_path / "cifar-100-python"
    write_cifar100(root)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(root / "train", "wb") as f:
        pickle.dump({b"data": Evil()}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="Refusing to load"):
        load_image_dataset("cifar100", "train", data_dir=root)
    with open(root / "test", "wb") as f:  # CIFAR-10 keys
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, f, protocol=2)
    with pytest.raises(ValueError, match="not the CIFAR-100 format"):
        load_image_dataset("cifar100", "test", data_dir=root)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "labels"])
def test_corrupt_cifar_pickle_is_one_line_naming_the_file_and_the_fix(tmp_path, damage):
    root = tmp_path / "cifar-100-python"
    written = write_cifar100(root)
    train = root / "train"
    if damage == "truncate":  # an interrupted download or copy
        train.write_bytes(train.read_bytes()[: train.stat().st_size // 2])
    elif damage == "garbage":
        train.write_bytes(b"<html>404 Not Found</html>")
    else:
        data = {**written["train"], b"fine_labels": written["train"][b"fine_labels"][:-1]}
        with open(train, "wb") as f:
            pickle.dump(data, f, protocol=2)
    with pytest.raises(ValueError) as err:
        build_datasets("cifar100", data_dir=root)
    message = str(err.value)
    assert str(train) in message and "\n" not in message
    assert "corrupt" in message and "cifar-100-python.tar.gz" in message


def test_dataset_name_and_data_dir_layout_must_agree(tmp_path):
    root = tmp_path / "cifar-100-python"
    write_cifar100(root)
    # CIFAR-10 asked for, CIFAR-100 given: an error, not a silent CIFAR-100 run.
    with pytest.raises(ValueError, match="Dataset 'cifar10' was asked for but .* holds the cifar100-python layout"):
        build_datasets("cifar10", data_dir=root)
    # The folder on its own (no name) still means what it holds.
    assert build_datasets(str(root))[2].name == "cifar100"


# ---------------------------------------------------------------------------------------------------- STL-10


def test_stl10_binary_column_major_and_one_based_labels(tmp_path):
    written = write_stl10(tmp_path / "stl10_binary")
    train, test, info = build_datasets("stl10", data_dir=tmp_path, image_size=32, train_augment=False)
    assert info.native_image_size == 96 and info.image_size == 32 and info.num_classes == 10
    assert info.class_names[0] == "airplane" and info.mean == KNOWN_DATASETS["stl10"].mean
    for split, ds in (("train", train), ("test", test)):
        images, labels = written[split]
        raw, got_labels = as_uint8_tensor(ds)
        assert np.array_equal(raw.numpy(), images)  # byte-exact after the column-major transpose
        assert got_labels.tolist() == (labels.astype(int) - 1).tolist()
        assert ds[0]["pixel_values"].shape == (3, 32, 32)  # the resize for 32x32 linear probing
    assert as_uint8_tensor(test, image_size=32)[0].shape == (3, 32, 32, 3)
    with pytest.raises(ValueError, match="no split 'unlabeled'"):
        load_image_dataset("stl10", "unlabeled", data_dir=tmp_path)


# --------------------------------------------------------------------------------------------- Tiny ImageNet


def test_tiny_imagenet_folder(tmp_path):
    meta = write_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    train = load_image_dataset("tiny-imagenet", "train", data_dir=tmp_path / "tiny-imagenet-200")
    val = load_image_dataset("tin-200", "test", data_dir=tmp_path)  # alias name, eval alias, parent dir
    assert (len(train), len(val)) == (7, 4) and val.split == "val"
    # Classes: sorted wnids (torchvision ImageFolder order), named by their first synonym in words.txt.
    assert train.features["label"].names == ["goldfish", "bullfrog", "school bus"]
    assert train["label"] == [0, 0, 1, 1, 1, 2, 2]
    sorted_wnids = ["n01000000", "n02000000", "n03000000"]
    assert val["label"] == [sorted_wnids.index(w) for w in meta["val_wnids"]]
    images, labels = as_uint8_tensor(val)
    assert images.shape == (4, 64, 64, 3)
    for image, label in zip(images, labels):
        colour = torch.tensor(meta["colours"][sorted_wnids[label]], dtype=torch.float32)
        assert (image.float().mean((0, 1)) - colour).abs().max() < 3  # JPEG is lossy; PNG exact
    assert torch.equal(images[3], torch.tensor(meta["colours"]["n03000000"], dtype=torch.uint8).expand(64, 64, 3))
    grey = _pixels(train[4]["image"])  # n02000000_2.JPEG, a greyscale JPEG
    assert grey.shape == (64, 64, 3) and abs(int(grey.mean()) - 90) <= 2
    _, _, info = build_datasets("tiny-imagenet", data_dir=tmp_path, max_train_samples=3)
    assert info.num_classes == 3 and info.eval_split == "val" and info.image_size == 64


# ------------------------------------------------------------------------------------- save_to_disk, folders


def test_save_to_disk_with_hub_cifar_columns(tmp_path):
    rng = np.random.default_rng(0)
    arrays = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    features = datasets.Features(
        {
            "img": datasets.Image(),
            "fine_label": datasets.ClassLabel(names=["apple", "bear", "cat"]),
            "coarse_label": datasets.Value("int64"),
        }
    )
    rows = {"img": [Image.fromarray(a) for a in arrays], "fine_label": [0, 1, 2, 2, 1, 0], "coarse_label": [0] * 6}
    full = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": full.select(range(4)), "test": full.select(range(4, 6))}).save_to_disk(
        tmp_path / "saved"
    )
    train = load_image_dataset(tmp_path / "saved", "train")
    test = load_image_dataset("cifar100", "validation", data_dir=tmp_path / "saved")  # eval alias -> test
    assert train.column_names == ["image", "label", "coarse_label", "index"]
    assert train.features["label"].names == ["apple", "bear", "cat"] and test["label"] == [1, 0]
    assert np.array_equal(as_uint8_tensor(train)[0].numpy(), arrays[:4])  # lossless round trip
    assert np.array_equal(as_uint8_tensor(test)[0].numpy(), arrays[4:])
    _, _, info = build_datasets(tmp_path / "saved")
    assert info.num_classes == 3 and info.stats_source.startswith("computed on 4")
    np.testing.assert_allclose(info.mean, arrays[:4].reshape(-1, 3).mean(0) / 255.0, rtol=1e-9)

    full.save_to_disk(tmp_path / "single")  # a lone Dataset is a train split, never also the eval split
    assert len(load_image_dataset(tmp_path / "single", "train")) == 6
    with pytest.raises(ValueError, match="single saved Dataset.*no 'test' split"):
        load_image_dataset(tmp_path / "single", "test")


def test_save_to_disk_int_labels_become_class_labels(tmp_path):
    ds = datasets.Dataset.from_dict(
        {"image": [Image.new("RGB", (4, 4), (i, i, i)) for i in range(3)], "target": [2, 0, 1]},
        features=datasets.Features({"image": datasets.Image(), "target": datasets.Value("int64")}),
    )
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(tmp_path / "saved")
    with pytest.raises(ValueError, match="no label column"):
        load_image_dataset(tmp_path / "saved", "train")
    loaded = load_image_dataset(tmp_path / "saved", "train", label_column="target")
    assert loaded.features["label"].names == ["0", "1", "2"] and loaded["label"] == [2, 0, 1]


def test_image_folder_with_and_without_splits(tmp_path):
    written = write_image_folder(tmp_path / "split")
    train = load_image_dataset(tmp_path / "split", "train")
    test = load_image_dataset(tmp_path / "split", "test")
    assert train.features["label"].names == ["cat", "dog"]  # sorted folder names
    assert train["label"] == [0, 0, 0, 1, 1] and len(test) == 5
    images, _ = as_uint8_tensor(train)
    expected = [written[("train", "cat", i)] for i in range(3)] + [written[("train", "dog", i)] for i in range(2)]
    assert np.array_equal(images.numpy(), np.stack(expected))

    write_image_folder(tmp_path / "flat", splits=())
    assert detect_layout(tmp_path / "flat") == ("imagefolder", tmp_path / "flat")
    assert len(load_image_dataset(tmp_path / "flat", "train")) == 5
    with pytest.raises(ValueError, match="only provides 'train'"):
        load_image_dataset(tmp_path / "flat", "test")

    (tmp_path / "split" / "test" / "bird").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "split" / "test" / "bird" / "0.png")
    with pytest.raises(ValueError, match="same class folders"):
        load_image_dataset(tmp_path / "split", "test")


def test_as_uint8_tensor_mixed_sizes_need_image_size(tmp_path):
    folder = tmp_path / "mixed" / "a"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(folder / "0.png")
    Image.new("RGB", (16, 12), (4, 5, 6)).save(folder / "1.png")
    ds = load_image_dataset(tmp_path / "mixed", "train")
    with pytest.raises(ValueError, match="image_size"):
        as_uint8_tensor(ds)
    images, labels = as_uint8_tensor(ds, image_size=8)
    assert images.shape == (2, 8, 8, 3) and images[1, 4, 4].tolist() == [4, 5, 6] and labels.tolist() == [0, 0]


# -------------------------------------------------------------------------------------------------- errors


def test_missing_paths_and_unknown_names(tmp_path):
    missing = tmp_path / "nowhere" / "cifar-100-python"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_image_dataset("cifar100", data_dir=missing)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_dataset(str(missing))
    with pytest.raises(ValueError, match="Unknown dataset 'cifar1000'. Did you mean 'cifar100'"):
        load_image_dataset("cifar1000")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="Could not recognise the dataset layout"):
        load_image_dataset(tmp_path / "empty")
    write_cifar100(tmp_path / "c" / "cifar-100-python")
    with pytest.raises(ValueError, match="holds the cifar100-python layout"):
        load_image_dataset("stl10", data_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="takes no data_dir"):
        load_image_dataset("digits", data_dir=tmp_path)
    assert len(load_image_dataset("digits", "validation")) == 297  # any eval alias picks the held-out split
    with pytest.raises(ValueError, match=r"no split 'unlabeled'; available splits: \['test', 'train'\]"):
        load_image_dataset("digits", "unlabeled")


def test_offline_hub_id_says_how_to_use_a_local_copy(tmp_path, monkeypatch):
    import huggingface_hub.constants

    # What HF_HUB_OFFLINE=1 sets at import time, applied to the already-imported modules.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DatasetUnavailableError, match="--data_dir /path/to/cifar-100-python") as err:
        load_image_dataset("cifar100", "train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(err.value, ConnectionError) and "uoft-cs/cifar100" in str(err.value)
    with pytest.raises(DatasetUnavailableError, match="HF_HUB_OFFLINE") as err:
        load_image_dataset("someone/some-images", "train", cache_dir=str(tmp_path / "cache"))
    assert "save_to_disk" in str(err.value)


# ------------------------------------------------------------------------------------- real data (opt-in)


def _unpacked_shared_data() -> Path:
    """Unpack ../shared/data once into a /tmp cache keyed by the parts' md5 list; reuse it afterwards."""
    if not (SHARED_DATA / "unpack.sh").is_file():
        pytest.skip(f"{SHARED_DATA.resolve()} is absent")
    key = hashlib.md5((SHARED_DATA / "MD5SUMS").read_bytes()).hexdigest()[:12]
    cache = Path("/tmp") / "icd_hf_shared_data" / key
    cache.mkdir(parents=True, exist_ok=True)
    done = cache / ".complete"
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other engineers' test runs may unpack at the same time
        if not done.exists():
            # Unpack beside the cache and move in only when complete, so an interrupted run leaves no half tree.
            partial = cache / "partial"
            shutil.rmtree(partial, ignore_errors=True)
            subprocess.run([str(SHARED_DATA / "unpack.sh"), str(partial)], check=True, capture_output=True)
            for child in partial.iterdir():
                if not (cache / child.name).exists():
                    child.rename(cache / child.name)
            shutil.rmtree(partial)
            done.touch()
    return cache


@pytest.mark.shared_data
def test_real_cifar100_and_tiny_imagenet():
    root = _unpacked_shared_data()
    train = load_image_dataset("cifar100", "train", data_dir=root)
    test = load_image_dataset("cifar100", "test", data_dir=root)
    assert (len(train), len(test)) == (50_000, 10_000)
    names = train.features["label"].names
    assert len(names) == 100 and names[0] == "apple" and names[-1] == "worm"
    assert sorted(set(test["label"])) == list(range(100))
    mean, std = compute_mean_std(train, max_samples=None)
    np.testing.assert_allclose(mean, CIFAR_MEAN, atol=1e-3)
    np.testing.assert_allclose(std, CIFAR_STD, atol=1e-3)

    tin_train = load_image_dataset("tiny-imagenet", "train", data_dir=root)
    tin_val = load_image_dataset("tiny-imagenet", "val", data_dir=root)
    assert (len(tin_train), len(tin_val)) == (40_000, 10_000)
    assert tin_train.features["label"].num_classes == 200
    assert np.bincount(tin_val["label"], minlength=200).tolist() == [50] * 200
    assert tin_train.features["label"].names[0] == "goldfish"  # n01443537, the smallest wnid
    sample, _ = as_uint8_tensor(tin_val.select(range(0, 10_000, 100)))
    assert sample.shape == (100, 64, 64, 3)
