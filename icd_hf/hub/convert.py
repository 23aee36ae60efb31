"""``icd-hf convert``: a PyTorch checkpoint file as a Hub-ready ``save_pretrained`` folder.

The standard CIFAR-100 teachers - RepDistiller's ``save/models/<model>_vanilla/ckpt_epoch_240.pth``, re-published
by mdistiller as ``cifar_teachers.tar`` and read unchanged by the ICD (DCD) authors' code - are
``{'model': state_dict, 'epoch', 'accuracy', 'optimizer'}`` files. ``convert_checkpoint`` loads one into its zoo
model (``icd_hf.models.torch_checkpoint``: ``strict=True``, architecture named or recognised) and writes what
``icd-hf export`` writes for a run: ``model.safetensors``, ``config.json`` with ``auto_map`` and the modeling code
(``trust_remote_code``), ``preprocessor_config.json`` (CIFAR-100's normalisation unless told otherwise), a card
(``README.md``) that says where the weights came from, and ``results.json``. Its ``hub_export`` record carries
``converted_from``, so ``icd-hf push DIR --hub_model_id org/name`` publishes the folder with this card
(``refresh_converted_card``), not a training run's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..data.info import KNOWN_DATASETS, canonical_dataset_name
from ..hub_ids import validate_hub_model_id
from ..losses import get_loss_class
from ..paper import find_paper_result
from ..runs import ModelRecord, RunMetrics, RunResults
from ..version import __version__
from .card import LOCAL_REPO_REF, TEMPLATES_DIR, dataset_hub_id
from .export import CARD_NAME, build_image_processor, is_exported_folder

logger = logging.getLogger(__name__)

__all__ = ["CIFAR100_CLASS_NAMES", "CONVERTED_TEMPLATE", "convert_checkpoint", "refresh_converted_card",
           "render_converted_card"]

CONVERTED_TEMPLATE = TEMPLATES_DIR / "converted_card.md"
# The weights are someone else's: their license is that of where the file came from, which the card cannot know.
DEFAULT_CONVERTED_LICENSE = "other"

# CIFAR-100's fine labels in label order (the `fine_label_names` of the original `meta` file; the Hub copy
# uoft-cs/cifar100 uses the same): a converted model's id2label, so its predictions read as class names.
CIFAR100_CLASS_NAMES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
)
_CLASS_NAMES = {"cifar100": CIFAR100_CLASS_NAMES}


def _sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _dataset_record(
    dataset: str, num_classes: int, image_size: int | None, mean: Sequence[float] | None, std: Sequence[float] | None
) -> dict[str, Any]:
    """The ``dataset`` of the folder's record: a known dataset's statistics, each overridable."""
    known_name = canonical_dataset_name(dataset)
    known = KNOWN_DATASETS[known_name] if known_name else None
    if known is None and (image_size is None or mean is None or std is None):
        raise ValueError(
            f"Dataset {dataset!r} is not one icd-hf knows ({', '.join(KNOWN_DATASETS)}), so its normalisation is "
            f"unknown: pass --image_size, --mean and --std (three values each) for it."
        )
    for label, values in (("mean", mean), ("std", std)):
        if values is not None and (len(values) != 3 or (label == "std" and min(values) <= 0)):
            raise ValueError(f"--{label} takes three {'positive ' if label == 'std' else ''}values (one per RGB "
                             f"channel), got {list(values)}.")
    if known is not None and known.num_classes != num_classes:
        raise ValueError(
            f"The checkpoint has a {num_classes}-class head but {known.name} has {known.num_classes} classes: pass "
            f"the dataset it was trained on (--dataset, or --image_size/--mean/--std with another name)."
        )
    names = _CLASS_NAMES.get(known_name or "")
    record: dict[str, Any] = {
        "name": known.name if known else dataset,
        "hub_id": known.hub_id if known else None,
        "num_classes": num_classes,
        "image_size": int(image_size or known.image_size),
        "mean": [float(v) for v in (mean or known.mean)],
        "std": [float(v) for v in (std or known.std)],
        "eval_split": "test",
    }
    if names is not None:
        record["class_names"] = list(names)
    return record


def _check_same_logits(folder: Path, model: torch.nn.Module, image_size: int) -> None:
    """The saved folder must give the file's logits: load it back the way a user will and compare."""
    from transformers import AutoModelForImageClassification

    reloaded = AutoModelForImageClassification.from_pretrained(str(folder)).eval()
    x = torch.randn(2, model.config.num_channels, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = model(pixel_values=x).logits, reloaded(pixel_values=x).logits
    if not torch.allclose(want, got, rtol=1e-5, atol=1e-5):
        raise RuntimeError(f"The converted folder gives other logits than the checkpoint (max difference "
                           f"{(want - got).abs().max().item():.3g}); nothing was written.")


def convert_checkpoint(
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    architecture: str | None = None,
    dataset: str = "cifar100",
    image_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    hub_model_id: str | None = None,
    license: str = DEFAULT_CONVERTED_LICENSE,
    overwrite: bool = False,
    command: str | None = None,
) -> Path:
    """Write ``out_dir`` as a ``save_pretrained`` folder holding the model of the checkpoint file ``path``.

    Args:
        path: ``{'model': state_dict, ...}`` (RepDistiller, mdistiller, the ICD/DCD code) or a bare state dict.
        out_dir: where to write; must be empty/absent, or an earlier export/convert with ``overwrite=True``.
        architecture: the zoo name it holds; ``None`` recognises it from the tensors.
        dataset: the dataset it was trained on, for the processor's normalisation and the class names (a known
            dataset's statistics, each overridable by ``image_size``, ``mean``, ``std``).
        hub_model_id: the repository the card's usage snippet names.
        license: license id of the weights for the card (default ``other``: that of the file's source).
        overwrite: replace an earlier export at ``out_dir``.
        command: the command line, for the record.

    The folder is assembled next to ``out_dir`` and moved into place once it reloads with the file's logits.

    Raises:
        FileNotFoundError / ValueError: a missing or unreadable file, an architecture it does not hold, a head
            that does not fit ``dataset``.
        FileExistsError: ``out_dir`` holds something else.
    """
    from ..models.torch_checkpoint import model_from_checkpoint, read_torch_checkpoint

    out_dir = Path(out_dir)
    if hub_model_id is not None:
        validate_hub_model_id(hub_model_id)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        if not overwrite:
            raise FileExistsError(f"{out_dir} is not empty; pass --overwrite or pick another folder.")
        if not is_exported_folder(out_dir):
            raise FileExistsError(f"{out_dir} is not empty and is not an earlier icd-hf export; refusing to replace "
                                  f"it. Pick another folder.")
    checkpoint = read_torch_checkpoint(path)
    model = model_from_checkpoint(checkpoint, architecture)
    data = _dataset_record(dataset, model.config.num_labels, image_size, mean, std)
    if data.get("class_names"):
        model.config.id2label = dict(enumerate(data["class_names"]))
        model.config.label2id = {n: i for i, n in enumerate(data["class_names"])}
    provenance = {**checkpoint.provenance(), "sha256": _sha256(path), "architecture": model.config.architecture_name}
    model.config.source_checkpoint = provenance
    results = RunResults(
        method="vanilla",
        student=ModelRecord(name=model.config.architecture_name, num_parameters=model.num_parameters()),
        metrics=RunMetrics(top1=checkpoint.accuracy),  # type: ignore[arg-type]  # None when the file records none
        dataset=data,
        command=command,
    )
    staging = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        model.save_pretrained(staging)
        build_image_processor(results).save_pretrained(staging)
        _check_same_logits(staging, model, data["image_size"])
        _write_converted_card(staging, results, provenance, hub_model_id=hub_model_id, license=license)
        if out_dir.exists():
            shutil.rmtree(out_dir) if out_dir.is_dir() else out_dir.unlink()
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Converted %s (%s) to %s", path, model.config.architecture_name, out_dir)
    return out_dir


def _table_label(file_name: str) -> str:
    """``table1_cifar100_same_architecture.csv`` -> ``table 1``."""
    number = re.match(r"table(\d+)", file_name)
    return f"table {number.group(1)}" if number else file_name


def _pct(value: float | None) -> str:
    return f"{float(value):.2f}" if value is not None else "–"


def render_converted_card(
    results: RunResults,
    provenance: dict[str, Any],
    *,
    hub_model_id: str | None = None,
    license: str = DEFAULT_CONVERTED_LICENSE,
    paper_dir: str | Path | None = None,
) -> ModelCard:
    """The card of a converted checkpoint: where it came from (file, SHA-256, epoch, the accuracy the file
    records), the published figure for the architecture as a teacher when the paper has one, how to use it."""
    arch, dataset = results.student.name, results.dataset
    accuracy = results.metrics.top1
    hub_id = dataset_hub_id(dataset)
    common = dict(task_type="image-classification", task_name="Image Classification",
                  dataset_type=hub_id or results.dataset_name, dataset_name=results.dataset_name,
                  dataset_split=dataset.get("eval_split") or "test")
    eval_results = None if accuracy is None else [EvalResult(
        metric_type="accuracy", metric_name="Top-1 accuracy (%), as recorded in the checkpoint",
        metric_value=round(float(accuracy), 4), **common)]
    card_data = ModelCardData(
        model_name=hub_model_id.split("/")[-1] if hub_model_id else f"{arch}-{results.dataset_name}",
        library_name="transformers",
        pipeline_tag="image-classification",
        license=license,
        tags=["image-classification", "icd-hf", "knowledge-distillation", "distillation-teacher", arch],
        datasets=[hub_id] if hub_id else None,
        metrics=["accuracy"] if eval_results else None,
        eval_results=eval_results,
    )
    paper = find_paper_result(None, arch, paper_dir=paper_dir) if results.dataset_name == "cifar100" else None
    context = dict(
        arch=arch,
        params_h=f"{results.student.num_parameters / 1e6:.2f}M" if results.student.num_parameters else "–",
        dataset_name=results.dataset_name,
        dataset_hub_id=hub_id,
        image_size=results.image_size,
        mean=", ".join(f"{v:g}" for v in dataset.get("mean", [])),
        std=", ".join(f"{v:g}" for v in dataset.get("std", [])),
        file=provenance.get("file"),
        sha256=provenance.get("sha256"),
        epoch=provenance.get("epoch"),
        accuracy=_pct(accuracy),
        paper_top1=_pct(paper.teacher_top1) if paper and paper.teacher_top1 is not None else None,
        paper_table=_table_label(paper.table) if paper else None,
        repo_ref=hub_model_id or LOCAL_REPO_REF,
        command=results.command,
        citations=[get_loss_class("crd").bibtex, get_loss_class("icd").bibtex],
    )
    return ModelCard.from_template(card_data, template_path=str(CONVERTED_TEMPLATE), **context)


def _write_converted_card(
    folder: Path, results: RunResults, provenance: dict[str, Any], *, hub_model_id: str | None, license: str
) -> None:
    render_converted_card(results, provenance, hub_model_id=hub_model_id, license=license).save(folder / CARD_NAME)
    # As export_for_hub records it, plus `converted_from`: `icd-hf push` re-renders this card for its repository.
    record = {"hub_model_id": hub_model_id, "license": license, "latency": None, "icd_hf_version": __version__,
              "converted_from": provenance}
    results.with_export(record).write(folder)


def refresh_converted_card(folder: str | Path, *, hub_model_id: str | None) -> None:
    """Re-render a converted folder's card for another repository id (weights and code stay as they are)."""
    folder = Path(folder)
    results = RunResults.read(folder)
    record = results.hub_export or {}
    _write_converted_card(folder, results.with_export(None), dict(record["converted_from"]),
                          hub_model_id=hub_model_id, license=record.get("license") or DEFAULT_CONVERTED_LICENSE)
