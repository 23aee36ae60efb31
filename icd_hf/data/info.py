"""Metadata of an image-classification dataset (classes, normalisation, size) and the known datasets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["KNOWN_DATASETS", "ImageDatasetInfo", "KnownDataset", "canonical_dataset_name"]


@dataclass(frozen=True)
class KnownDataset:
    """A dataset the loaders know by name: where it lives on the Hub and its statistics. Its local layout is the
    reader registered for it in ``icd_hf.data.sources`` (``layout_of_dataset``).

    ``mean``/``std`` are per-channel statistics of the training split on the [0, 1] scale (std pooled over all
    pixels of a channel, the convention of the CIFAR recipes). ``aliases`` are other spellings of ``name``.
    """

    name: str
    hub_id: str | None
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    stats_source: str
    aliases: tuple[str, ...] = ()


_KNOWN = (
    KnownDataset("cifar100", "uoft-cs/cifar100", num_classes=100, image_size=32, mean=(0.5071, 0.4865, 0.4409),
                 std=(0.2673, 0.2564, 0.2762), stats_source="CIFAR-100 train split (as in the CRD/ICD recipes)",
                 aliases=("cifar-100", "cifar_100")),
    KnownDataset("stl10", "tanganke/stl10", num_classes=10, image_size=96, mean=(0.4467, 0.4398, 0.4066),
                 std=(0.2603, 0.2566, 0.2713), stats_source="STL-10 statistics in common use (std pooled over pixels)",
                 aliases=("stl-10", "stl_10")),
    # Full 100k-image train split, std pooled over pixels; the 40k-image subset in shared/data gives
    # (0.4772, 0.4471, 0.3979) / (0.2760, 0.2682, 0.2819).
    KnownDataset("tiny-imagenet", "zh-plus/tiny-imagenet", num_classes=200, image_size=64,
                 mean=(0.4802, 0.4481, 0.3975), std=(0.2770, 0.2691, 0.2821),
                 stats_source="Tiny ImageNet train split (std pooled over pixels)",
                 aliases=("tiny_imagenet", "tinyimagenet", "tiny-imagenet-200", "tin200", "tin-200")),
    # Measured on the 1,500-image train split built by ``load_digits_dataset`` (checked in the tests).
    KnownDataset("digits", None, num_classes=10, image_size=32, mean=(0.3056, 0.3056, 0.3056),
                 std=(0.3235, 0.3235, 0.3235), stats_source="scikit-learn digits train split (1,500 images, 32x32)",
                 aliases=("sklearn-digits",)),
)
KNOWN_DATASETS: dict[str, KnownDataset] = {known.name: known for known in _KNOWN}
_ALIASES = {alias: known.name for known in _KNOWN for alias in known.aliases}


def canonical_dataset_name(name: str) -> str | None:
    """The ``KNOWN_DATASETS`` key for ``name`` (case-insensitive, common spellings), or ``None``."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in KNOWN_DATASETS else None


@dataclass
class ImageDatasetInfo:
    """What the trainer, the GPU fast path and the model cards need to know about a train/eval pair.

    Attributes:
        name: short name (``cifar100``) or the Hub id / local path it came from.
        num_classes: number of classes.
        class_names: one human-readable name per class, in label order.
        mean: per-channel mean used by ``Normalize`` (on the [0, 1] scale).
        std: per-channel standard deviation used by ``Normalize``.
        image_size: side of the images the model sees (after the optional resize).
        native_image_size: side of the stored images (``None`` when they vary).
        num_train: rows in the training dataset.
        num_eval: rows in the evaluation dataset.
        source: where the data was read from (Hub id, or ``layout:path``).
        train_split: split name used for training.
        eval_split: split name used for evaluation.
        stats_source: where ``mean``/``std`` come from (known values, or computed on N training images).
    """

    name: str
    num_classes: int
    class_names: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int | None
    native_image_size: int | None = None
    num_train: int | None = None
    num_eval: int | None = None
    source: str = ""
    train_split: str = "train"
    eval_split: str = "test"
    stats_source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id2label(self) -> dict[int, str]:
        """``{index: name}``, the form ``PretrainedConfig.id2label`` takes."""
        return dict(enumerate(self.class_names))

    @property
    def label2id(self) -> dict[str, int]:
        """``{name: index}``, the form ``PretrainedConfig.label2id`` takes."""
        return {name: i for i, name in enumerate(self.class_names)}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageDatasetInfo:
        """Inverse of ``to_dict``."""
        data = dict(data)
        data["mean"], data["std"] = tuple(data["mean"]), tuple(data["std"])
        return cls(**data)
