"""Dataset layouts are one registry: each reader registers itself, the builder only consults it, and a build scans
the disk once."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

import icd_hf.data.builder as builder
import icd_hf.data.sources as sources
from icd_hf.data import KNOWN_DATASETS, LAYOUTS, build_datasets, register_layout, resolve_source
from icd_hf.data.images import dataset_from_arrays


def _image_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / split / cls / f"{i}.png")
    return root


def test_every_known_dataset_and_reader_is_registered():
    assert list(LAYOUTS) == ["cifar100-python", "stl10-binary", "tiny-imagenet-200", "save_to_disk", "imagefolder",
                             "digits"]
    implied = {layout.dataset for layout in LAYOUTS.values() if layout.dataset}
    assert implied == set(KNOWN_DATASETS)  # every known dataset has a reader, every reader's dataset is known
    assert not LAYOUTS["digits"].on_disk and LAYOUTS["cifar100-python"].dirname == "cifar-100-python"


def test_a_build_scans_the_disk_once(tmp_path, monkeypatch):
    calls = []
    detect = sources.detect_layout

    def counting(*args, **kwargs):
        calls.append(args)
        return detect(*args, **kwargs)

    monkeypatch.setattr(builder, "detect_layout", counting)
    train, evaluation, info = build_datasets(str(_image_folder(tmp_path / "pets")), image_size=8)
    assert len(calls) == 1
    assert (len(train), len(evaluation), info.source) == (6, 6, f"imagefolder:{tmp_path / 'pets'}")
    assert resolve_source("digits").describe() == "digits"


def test_a_new_layout_is_one_registered_reader(tmp_path):
    """A format the package does not ship: register its reader, and build_datasets reads it (no other edit)."""

    def read_npz(root: Path | None, split: str) -> datasets.Dataset:
        data = np.load(root / f"{split}.npz")
        return dataset_from_arrays(data["x"], data["y"], ["a", "b"], split=split, fingerprint=f"npz-{split}")

    folder = tmp_path / "npz"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        np.savez(folder / f"{split}.npz", x=rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8),
                 y=np.array([0, 1, 0, 1]))
    (folder / "npz_dataset.json").write_text(json.dumps({"format": "toy"}))
    try:
        register_layout("toy-npz", markers=("npz_dataset.json", "train.npz"), dirname="npz")(read_npz)
        assert sources.detect_layout(tmp_path) == ("toy-npz", folder)  # found under its parent too
        train, evaluation, info = build_datasets(str(folder), image_size=8)
        assert (len(train), info.num_classes, info.class_names, info.source) == (4, 2, ["a", "b"], f"toy-npz:{folder}")
        with pytest.raises(ValueError, match="already registered"):
            register_layout("toy-npz")(lambda root, split: None)
    finally:
        LAYOUTS.pop("toy-npz", None)
