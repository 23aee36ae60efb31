"""Resolve a dataset name / path / Hub id, load its splits and prepare them for ``DistillationTrainer``.

Resolution order for ``load_image_dataset(name_or_path, split, data_dir=...)``:

1. ``digits`` is built from scikit-learn (no files needed).
2. ``data_dir`` given, or ``name_or_path`` an existing path: the local layout is detected among the readers
   registered in ``icd_hf.data.sources`` (original CIFAR-100 pickles, ``stl10_binary/``, ``tiny-imagenet-200/``,
   a ``save_to_disk`` directory, an image folder).
3. A known name (``cifar100``, ``stl10``, ``tiny-imagenet``) without ``data_dir``: its Hub id.
4. Anything shaped like ``owner/name``: a Hub id, via ``datasets.load_dataset``.

``resolve_source`` makes that decision once (``build_datasets`` reads both splits from it). Every loaded split has
the columns ``image`` (``datasets.Image()``), ``label`` (``ClassLabel`` with the class
names) and ``index`` (the row's position, used by CRD's memory bank), plus whatever extra columns the source has.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch

from ..hub_ids import has_hub_id_form
from .images import column_to_uint8
from .info import KNOWN_DATASETS, ImageDatasetInfo, KnownDataset, canonical_dataset_name
from .sources import LAYOUTS, DatasetLayout, MissingSplitError, detect_layout, layout_of_dataset, resolve_split
from .transforms import ImageClassificationTransform

__all__ = [
    "DataSource",
    "DatasetUnavailableError",
    "add_index_column",
    "as_uint8_tensor",
    "build_datasets",
    "compute_mean_std",
    "load_image_dataset",
    "resolve_source",
    "split_off_validation",
]

_IMAGE_COLUMN_CANDIDATES = ("image", "img", "pixel_values", "images")


class DatasetUnavailableError(ConnectionError):
    """The Hub could not be reached (offline mode or no network) and no local copy was given."""


def _looks_like_path(name: str) -> bool:
    # "owner/name" is a Hub id; anything absolute, relative-dotted, home-based or deeper is a path.
    return name.startswith(("/", "./", "../", "~")) or name.rstrip("/").count("/") > 1 or name.endswith("/")


def _hub_error(hub_id: str, known: KnownDataset | None, err: Exception, name: str) -> DatasetUnavailableError:
    layout = layout_of_dataset(known.name) if known is not None else None
    if layout is not None and layout.dirname:
        hint = (
            f"pass --data_dir /path/to/{layout.dirname} (the original files), or a `datasets` save_to_disk "
            "directory or an image folder of it"
        )
    else:
        hint = "pass its directory instead: --data_dir /path/to/a/save_to_disk/dir or an image folder <class>/*.png"
    maybe_path = ""
    if known is None:
        maybe_path = f" (if {name!r} was meant as a local path: {str(Path(name).resolve())!r} does not exist)"
    return DatasetUnavailableError(
        f"Could not load {hub_id!r} from the Hugging Face Hub ({type(err).__name__}: the Hub is unreachable, "
        f"offline mode HF_HUB_OFFLINE=1 is set, or it is not in the local cache){maybe_path}. To use a local "
        f"copy, {hint}."
    )


def _load_from_hub(hub_id: str, split: str, known: KnownDataset | None, name: str, cache_dir: str | None):
    try:
        loaded = datasets.load_dataset(hub_id, cache_dir=cache_dir)
    except ConnectionError as err:  # raised offline (OfflineModeIsEnabled) and on network failures
        raise _hub_error(hub_id, known, err, name) from err
    except OSError as err:
        if "offline" in str(err).lower() or "connect" in str(err).lower() or "resolve" in str(err).lower():
            raise _hub_error(hub_id, known, err, name) from err
        raise
    if isinstance(loaded, datasets.Dataset):
        raise ValueError(f"{hub_id!r} loaded as a single Dataset; expected splits such as train and test.")
    return loaded[resolve_split(split, list(loaded), f"The Hub dataset {hub_id!r}")]


def _standardise_columns(
    ds: datasets.Dataset, where: str, image_column: str | None, label_column: str | None
) -> datasets.Dataset:
    """Rename the image and label columns to ``image``/``label``; make ``label`` a ``ClassLabel``."""
    features = ds.features
    if image_column is None:
        image_column = next((c for c in _IMAGE_COLUMN_CANDIDATES if isinstance(features.get(c), datasets.Image)), None)
        image_column = image_column or next((c for c, f in features.items() if isinstance(f, datasets.Image)), None)
    if image_column is None or image_column not in features:
        raise ValueError(
            f"{where} has no image column (columns: {dict(features)}); pass image_column=<name> naming a "
            "datasets.Image() column."
        )
    if not isinstance(features[image_column], datasets.Image):
        raise ValueError(f"{where}: column {image_column!r} is {features[image_column]}, not datasets.Image().")
    if label_column is None:
        # CIFAR-100 on the Hub has fine_label and coarse_label: the 100-way fine label is the task.
        preferred = ("fine_label", "label", "labels")
        label_column = next((c for c in preferred if c in features), None)
        label_column = label_column or next(
            (c for c, f in features.items() if isinstance(f, datasets.ClassLabel)), None
        )
    if label_column is None or label_column not in features:
        raise ValueError(f"{where} has no label column (columns: {list(features)}); pass label_column=<name>.")
    for source, target in ((image_column, "image"), (label_column, "label")):
        if source != target:
            if target in ds.column_names:
                raise ValueError(
                    f"{where} has a {target!r} column besides the chosen {source!r}; pass {target}_column="
                    f"{target!r} to use it, or drop one of them."
                )
            ds = ds.rename_column(source, target)
    if isinstance(ds.features["label"], datasets.Value) and ds.features["label"].dtype in ("string", "large_string"):
        # Class names as strings (a CSV/JSON-built dataset): the sorted names become the classes.
        names = sorted(set(ds["label"]))
        ds = ds.cast_column("label", datasets.ClassLabel(names=names))
    if not isinstance(ds.features["label"], datasets.ClassLabel):
        labels = np.asarray(ds["label"])
        if labels.dtype.kind not in "iu" or (len(labels) and labels.min() < 0):
            raise ValueError(f"{where}: labels must be non-negative integers, got {ds.features['label']}.")
        num_classes = int(labels.max()) + 1 if len(labels) else 0
        ds = ds.cast_column("label", datasets.ClassLabel(names=[str(i) for i in range(num_classes)]))
    return ds


def add_index_column(dataset: datasets.Dataset, column: str = "index") -> datasets.Dataset:
    """(Re)number ``dataset`` with an int64 ``index`` column ``0..N-1`` (the key of CRD's memory bank)."""
    if column in dataset.column_names:
        dataset = dataset.remove_columns(column)
    return dataset.add_column(column, np.arange(len(dataset), dtype=np.int64), feature=datasets.Value("int64"))


@dataclass(frozen=True)
class DataSource:
    """Where a dataset's splits come from, resolved once per build (the disk is scanned once).

    ``layout`` reads ``location`` (a folder; ``None`` for a dataset built in-process, like digits); without a
    layout, ``location`` is a Hub id. ``known`` is the ``KNOWN_DATASETS`` entry it is, when it is one.
    """

    name: str
    known: KnownDataset | None
    layout: DatasetLayout | None
    location: Path | str | None

    def load(self, split: str, cache_dir: str | None = None) -> datasets.Dataset:
        if self.layout is None:
            return _load_from_hub(str(self.location), split, self.known, self.name, cache_dir)
        return self.layout.read(self.location, split)

    def describe(self) -> str:
        """``ImageDatasetInfo.source``: the Hub id, ``<layout>:<folder>``, or the in-process layout's name."""
        if self.layout is None:
            return str(self.location)
        return f"{self.layout.name}:{self.location}" if self.location is not None else self.layout.name


def resolve_source(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> DataSource:
    """Decide where ``name_or_path`` is read from (see the module docstring for the order); nothing is loaded."""
    name = str(name_or_path)
    known_key = canonical_dataset_name(name)
    known = KNOWN_DATASETS[known_key] if known_key else None
    builtin = layout_of_dataset(known.name) if known is not None else None
    if builtin is not None and not builtin.on_disk:
        if data_dir is not None:
            raise ValueError(f"{known.name} is built in-process and takes no data_dir; drop --data_dir.")
        return DataSource(name, known, builtin, None)
    location = data_dir
    if location is None and known is None:
        candidate = Path(name).expanduser()
        if candidate.exists():
            location = candidate
        elif _looks_like_path(name):
            raise FileNotFoundError(f"Dataset path {str(candidate)!r} does not exist.")
    if location is not None:
        location = Path(location).expanduser()
        if not location.exists():
            raise FileNotFoundError(
                f"Data directory {str(location)!r} does not exist; point --data_dir at the unpacked dataset."
            )
        preferred = layout_of_dataset(known.name) if known is not None else None
        layout_name, root = detect_layout(location, prefer=preferred.name if preferred is not None else None)
        layout = LAYOUTS[layout_name]
        implied = layout.dataset  # the known dataset a raw layout holds: its statistics, and a sanity check
        if known is not None and implied is not None and implied != known.name:
            raise ValueError(
                f"Dataset {known.name!r} was asked for but {str(root)!r} holds the {layout_name} layout "
                f"({implied}); fix --dataset or --data_dir."
            )
        if known is None and implied is not None and data_dir is not None:
            # `--dataset cifar10 --data_dir <cifar-100-python>` must not quietly train on CIFAR-100.
            raise ValueError(
                f"Dataset {name!r} was asked for but {str(root)!r} holds the {layout_name} layout "
                f"({implied}); use --dataset {implied}, or point --data_dir at a copy of {name!r}."
            )
        if known is None and implied is not None:
            known = KNOWN_DATASETS[implied]
        return DataSource(name, known, layout, root)
    if known is not None:
        return DataSource(name, known, None, known.hub_id)
    if has_hub_id_form(name):
        return DataSource(name, None, None, name)
    close = difflib.get_close_matches(name.lower(), list(KNOWN_DATASETS), n=1)
    suggestion = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"Unknown dataset {name!r}.{suggestion} Use one of {sorted(KNOWN_DATASETS)}, a Hub id "
        "'owner/name', or a local directory (--data_dir)."
    )


def load_image_dataset(
    name_or_path: str | os.PathLike,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    cache_dir: str | None = None,
) -> datasets.Dataset:
    """Load one split of an image-classification dataset with columns ``image``, ``label``, ``index``.

    Args:
        name_or_path: ``cifar100``, ``stl10``, ``tiny-imagenet``, ``digits``, a Hub id (``owner/name``), or a
            local directory (layout detected).
        split: ``train``, or ``test`` (any of test/validation/val/eval picks the held-out split there is).
        data_dir: local copy of a known dataset (e.g. ``/data/cifar-100-python`` or its parent directory).
        image_column, label_column: source columns to use when they cannot be guessed (for Hub/saved data).
        cache_dir: ``datasets`` cache directory for Hub downloads.

    Raises:
        FileNotFoundError: a local path that does not exist.
        ValueError: unknown name, unrecognised layout, or a split the source does not have.
        DatasetUnavailableError: a Hub id while the Hub cannot be reached (the message says how to use a
            local copy instead).

    Example:
        >>> ds = load_image_dataset("digits", "train")
        >>> len(ds), ds.features["label"].num_classes
        (1500, 10)
    """
    return _load_split(resolve_source(name_or_path, data_dir), split, image_column, label_column, cache_dir)


def _load_split(
    source: DataSource, split: str, image_column: str | None, label_column: str | None, cache_dir: str | None
) -> datasets.Dataset:
    ds = source.load(split, cache_dir)
    ds = _standardise_columns(ds, f"Dataset {source.name!r} ({split})", image_column, label_column)
    return add_index_column(ds)


def _image_column(dataset: datasets.Dataset) -> str:
    if isinstance(dataset.features.get("image"), datasets.Image):
        return "image"
    for column, feature in dataset.features.items():
        if isinstance(feature, datasets.Image):
            return column
    raise ValueError(f"The dataset has no datasets.Image() column (features: {dict(dataset.features)}).")


def as_uint8_tensor(
    dataset: datasets.Dataset, image_size: int | None = None, label_column: str = "label"
) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of ``dataset`` as one ``(N, H, W, 3)`` uint8 tensor, plus its ``(N,)`` long labels.

    Meant for keeping a whole split on an accelerator (a 50,000-image CIFAR split is 150 MB). Any transform
    set on the dataset is ignored; the images are the stored pixels, resized to ``image_size`` if given (with
    the same resize as ``ImageClassificationTransform``). PPM-backed images are read without PIL.
    """
    column = _image_column(dataset)
    table = dataset.with_format("arrow")[:]  # respects select()/shuffle() index mappings
    images = column_to_uint8(table.column(column), image_size)
    if label_column in table.column_names:
        labels = torch.from_numpy(np.array(table.column(label_column).to_numpy(), dtype=np.int64))
    else:
        labels = torch.full((table.num_rows,), -1, dtype=torch.long)
    return images, labels


def compute_mean_std(
    dataset: datasets.Dataset, max_samples: int | None = 10_000, image_size: int | None = None
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std (pooled over all pixels, [0, 1] scale) of up to ``max_samples`` images.

    Rows are taken evenly spaced over the dataset so a class-sorted folder still gives a fair sample.
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("Cannot compute statistics of an empty dataset.")
    if max_samples is not None and n > max_samples:
        dataset = dataset.select(np.linspace(0, n - 1, max_samples).round().astype(np.int64))
    images, _ = as_uint8_tensor(dataset, image_size=image_size)
    # Exact statistics from per-channel 256-bin histograms: no float copy of the (N, H, W, 3) block.
    levels = torch.arange(256, dtype=torch.float64)
    mean, std = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    for c in range(3):
        counts = torch.bincount(images[..., c].reshape(-1), minlength=256).to(torch.float64)
        total = counts.sum()
        mean[c] = (counts * levels).sum() / total
        std[c] = ((counts * (levels - mean[c]) ** 2).sum() / total).sqrt()
    mean, std = (mean / 255.0).tolist(), (std / 255.0).tolist()
    return (mean[0], mean[1], mean[2]), (std[0], std[1], std[2])


def _native_size(dataset: datasets.Dataset) -> int | None:
    if len(dataset) == 0:
        return None
    row = dataset.with_format(None)[0]["image"]
    width, height = row.size
    return height if height == width else None


def split_off_validation(
    dataset: datasets.Dataset, size: float | int, seed: int = 0
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """``(train, validation)`` from one split, stratified by ``label`` when every class can give rows to both.

    ``size`` is a fraction in (0, 1) or a number of rows. Both parts are renumbered (dense ``index``).
    """
    if not (0 < size < 1 or (float(size).is_integer() and 1 <= size < len(dataset))):
        raise ValueError(
            f"validation_size must be a fraction in (0, 1) or a number of rows below {len(dataset)}, got {size}."
        )
    size = int(size) if size >= 1 else float(size)
    try:
        parts = dataset.train_test_split(test_size=size, seed=seed, stratify_by_column="label")
    except ValueError:  # a class too small to stratify (or fewer validation rows than classes)
        parts = dataset.train_test_split(test_size=size, seed=seed)
    return add_index_column(parts["train"]), add_index_column(parts["test"])


def _align_labels(eval_ds: datasets.Dataset, train_labels: datasets.ClassLabel) -> datasets.Dataset:
    """Relabel an eval split whose class names are a subset of the train split's onto the train split's ids."""
    names = list(eval_ds.features["label"].names)
    if names == list(train_labels.names) or not set(names) <= set(train_labels.names):
        return eval_ds  # identical, or truly different (build_datasets reports that)
    mapping = np.array([train_labels.names.index(n) for n in names], dtype=np.int64)
    features = eval_ds.features.copy()
    features["label"] = train_labels
    return eval_ds.map(
        lambda labels: {"label": mapping[np.asarray(labels, dtype=np.int64)].tolist()},
        input_columns="label",
        batched=True,
        features=features,
        desc="align eval labels",
    )


def build_datasets(
    name_or_path: str | os.PathLike = "cifar100",
    *,
    data_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    train_augment: bool = True,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    train_split: str = "train",
    eval_split: str = "test",
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    cache_dir: str | None = None,
    validation_size: float | None = None,
    split_seed: int = 0,
    fallback_image_size: int | None = None,
) -> tuple[datasets.Dataset, datasets.Dataset, ImageDatasetInfo]:
    """Train and eval datasets ready for ``DistillationTrainer`` (with ``collate_batch``), and their metadata.

    Each row, once transformed, is ``{"pixel_values": (3, H, W) float normalised, "labels": long, "index":
    long}``; the transform runs lazily on every access (``Dataset.with_transform``), so the train split is
    freshly augmented each epoch (read the raw columns with ``dataset.with_format(None)``). ``max_*_samples``
    keep the first N rows and renumber ``index`` so it stays a dense ``0..N-1`` range.

    ``mean``/``std`` default to the known statistics of the dataset, else they are computed on (up to 10,000)
    training images.

    A source without an evaluation split (a flat image folder, a single saved ``Dataset``, a Hub dataset with
    only ``train``) gets one split off its train split when ``validation_size`` is set (a fraction, or a number
    of rows): stratified by label where every class allows it, with ``split_seed`` - fixed, not the training
    seed, so a teacher and its students are evaluated on the same held-out images. An evaluation split whose
    classes are a subset of the train split's is relabelled onto the train split's label ids.

    ``fallback_image_size`` is the resize used when the images vary in size and ``image_size`` is not given
    (e.g. the input size of the models that will read them); without either such a dataset is an error.

    Example:
        >>> train_ds, eval_ds, info = build_datasets("digits")
        >>> batch = collate_batch([train_ds[i] for i in range(8)])
        >>> batch["pixel_values"].shape, info.num_classes
        (torch.Size([8, 3, 32, 32]), 10)
    """
    source = resolve_source(name_or_path, data_dir)
    columns = dict(image_column=image_column, label_column=label_column, cache_dir=cache_dir)
    train_ds = _load_split(source, train_split, **columns)
    split_off = False
    try:
        eval_ds = _load_split(source, eval_split, **columns)
    except MissingSplitError as err:
        if not validation_size:
            raise MissingSplitError(f"{err} Set validation_size (e.g. 0.1) to split one off the train split.") from err
        train_ds, eval_ds = split_off_validation(train_ds, validation_size, split_seed)
        # Named after its origin, so results.json and the card say the eval images came out of train.
        eval_split = f"{validation_size:g} of {train_split} (seed {split_seed})"
        split_off = True
    eval_ds = _align_labels(eval_ds, train_ds.features["label"])
    if max_train_samples is not None and max_train_samples < len(train_ds):
        train_ds = add_index_column(train_ds.select(range(max_train_samples)))
    if max_eval_samples is not None and max_eval_samples < len(eval_ds):
        eval_ds = add_index_column(eval_ds.select(range(max_eval_samples)))
    class_names = list(train_ds.features["label"].names)
    if list(eval_ds.features["label"].names) != class_names:
        raise ValueError("The train and eval splits name their classes differently; they must share one label set.")

    known = source.known
    native = _native_size(train_ds)
    if image_size is None and native is None:
        image_size = fallback_image_size
    if mean is not None and std is not None:
        stats_source = "given"
    elif known is not None:
        mean, std, stats_source = mean or known.mean, std or known.std, known.stats_source
    else:
        # Images of varying size need a common size to be stacked; statistics barely depend on it.
        stats_size = image_size if image_size is not None or native is not None else 64
        computed_mean, computed_std = compute_mean_std(train_ds, image_size=stats_size)
        mean, std = mean or computed_mean, std or computed_std
        stats_source = f"computed on {min(len(train_ds), 10_000)} training images"
    info = ImageDatasetInfo(
        name=known.name if known is not None else source.name,
        num_classes=len(class_names),
        class_names=class_names,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        image_size=image_size or native,
        native_image_size=native,
        num_train=len(train_ds),
        num_eval=len(eval_ds),
        source=source.describe(),
        train_split=str(train_split if train_ds.split is None else train_ds.split),
        eval_split=str(eval_split if split_off or eval_ds.split is None else eval_ds.split),
        stats_source=stats_source,
    )
    train_tf = ImageClassificationTransform(info.mean, info.std, train=train_augment, image_size=image_size)
    eval_tf = ImageClassificationTransform(info.mean, info.std, train=False, image_size=image_size)
    return train_ds.with_transform(train_tf), eval_ds.with_transform(eval_tf), info
