"""Readers for the layouts the datasets ship in, each returning one split as a ``datasets.Dataset``, and the
registry they enter with ``@register_layout``.

Every reader returns the same schema: ``image`` (``datasets.Image()``), ``label`` (``ClassLabel`` carrying the
class names) and possibly extra columns (e.g. ``coarse_label`` for CIFAR-100). A reader registers the layout it
reads: how a folder of it is recognised (marker files, or a predicate), the folder name it usually has, and the
known dataset it holds (``icd_hf.data.info.KNOWN_DATASETS``: statistics and Hub id). ``detect_layout`` and the
dataset builder only consult the registry, so a new on-disk format is one decorated reader in this file.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa

from .images import dataset_from_arrays

__all__ = [
    "EVAL_SPLIT_ALIASES",
    "LAYOUTS",
    "DatasetLayout",
    "MissingSplitError",
    "detect_layout",
    "load_cifar100_python",
    "load_digits_dataset",
    "load_image_folder",
    "load_saved_dataset",
    "load_stl10_binary",
    "load_tiny_imagenet_folder",
    "register_layout",
    "resolve_split",
]

# Any of these names means "the held-out split": each source picks the one it has.
EVAL_SPLIT_ALIASES = ("test", "validation", "valid", "val", "eval")
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}

Reader = Callable[[Path | None, str], datasets.Dataset]


@dataclass(frozen=True)
class DatasetLayout:
    """A layout a reader knows.

    Attributes:
        name: the layout's name (``"cifar100-python"``), recorded as ``<name>:<folder>`` in a run's dataset source.
        read: ``read(root, split)`` -> the split (``root`` is ``None`` for a dataset built in-process).
        matches: whether a folder is a root of this layout; ``None`` for a dataset with no files (digits).
        dirname: the name its folder usually has: a parent folder holding one is accepted too.
        dataset: the ``KNOWN_DATASETS`` entry this layout holds (its statistics and Hub id), if any.
    """

    name: str
    read: Reader
    matches: Callable[[Path], bool] | None = None
    dirname: str | None = None
    dataset: str | None = None

    @property
    def on_disk(self) -> bool:
        return self.matches is not None


# Registration order is detection order: the layouts recognised by their own files come before the generic ones
# (a saved dataset, then an image folder), which accept more.
LAYOUTS: dict[str, DatasetLayout] = {}


def register_layout(
    name: str,
    *,
    markers: tuple[str, ...] = (),
    matches: Callable[[Path], bool] | None = None,
    dirname: str | None = None,
    dataset: str | None = None,
    on_disk: bool = True,
) -> Callable[[Reader], Reader]:
    """Decorator: register ``reader`` for the layout ``name``. A folder is of that layout when it holds every
    ``markers`` entry (a name ending in ``/`` is a sub-folder), or when ``matches(folder)`` says so."""

    def decorator(reader: Reader) -> Reader:
        if name in LAYOUTS and LAYOUTS[name].read.__qualname__ != reader.__qualname__:
            raise ValueError(f"a dataset layout named {name!r} is already registered ({LAYOUTS[name].read.__name__})")
        predicate = matches if matches is not None or not markers else functools.partial(_has_markers, markers)
        LAYOUTS[name] = DatasetLayout(name, reader, predicate if on_disk else None, dirname, dataset)
        return reader

    return decorator


def layout_of_dataset(dataset: str) -> DatasetLayout | None:
    """The layout that holds the known dataset ``dataset`` (its original files, or its in-process builder)."""
    return next((layout for layout in LAYOUTS.values() if layout.dataset == dataset), None)


class MissingSplitError(ValueError):
    """The source has no such split. For an evaluation split, ``build_datasets`` can split one off the train split
    instead (``validation_size``), so this case is told apart from other bad input."""


def resolve_split(split: str, available: list[str] | tuple[str, ...], where: str) -> str:
    """Map ``split`` onto one of ``available``; any eval alias (test/validation/val/...) matches another."""
    if split in available:
        return split
    if split in EVAL_SPLIT_ALIASES:
        for alias in EVAL_SPLIT_ALIASES:
            if alias in available:
                return alias
    raise MissingSplitError(f"{where} has no split {split!r}; available splits: {sorted(available)}.")


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def _file_fingerprint(kind: str, split: str, *files: Path) -> str:
    stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return _fingerprint(kind, split, *stats)


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (
        (path / "dataset_info.json").is_file() and (path / "state.json").is_file()
    )


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _has_class_dirs(path: Path) -> bool:
    return any(d.is_dir() and any(_is_image(f) for f in d.iterdir()) for d in path.iterdir() if d.is_dir())


def _has_markers(markers: tuple[str, ...], path: Path) -> bool:
    return all((path / m).is_dir() if m.endswith("/") else (path / m).is_file() for m in markers)


def detect_layout(path: str | os.PathLike, prefer: str | None = None) -> tuple[str, Path]:
    """Recognise the dataset layout of a local directory.

    Returns ``(layout, root)`` where ``layout`` is a key of ``LAYOUTS`` and ``root`` the directory that holds
    it (``path`` itself, or a child with the layout's usual folder name, e.g. ``cifar-100-python``). When a
    parent directory holds several datasets, the ``prefer`` layout (e.g. ``"tiny-imagenet-200"``) wins.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` exists but matches no supported layout.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"Dataset path {str(path)!r} does not exist; check --data_dir / the dataset path.")
    if not path.is_dir():
        raise ValueError(
            f"Dataset path {str(path)!r} is a file; point at the directory that holds the dataset "
            "(e.g. the unpacked cifar-100-python/ folder, not the archive)."
        )
    on_disk = [layout for layout in LAYOUTS.values() if layout.on_disk]
    specific = [layout for layout in on_disk if layout.dirname]
    for layout in specific:
        if layout.matches(path):
            return layout.name, path
    for layout in sorted(specific, key=lambda layout: layout.name != prefer):
        if (path / layout.dirname).is_dir() and layout.matches(path / layout.dirname):
            return layout.name, path / layout.dirname
    for layout in on_disk:
        if not layout.dirname and layout.matches(path):
            return layout.name, path
    raise ValueError(
        f"Could not recognise the dataset layout of {str(path)!r}. Supported: the original cifar-100-python/ "
        "pickles (train, test, meta), stl10_binary/ (train_X.bin, train_y.bin, ..., class_names.txt), "
        "tiny-imagenet-200/ (wnids.txt, train/, val/), a `datasets` save_to_disk directory, or an image "
        "folder (<class>/<image>.png, optionally under train/ and test/)."
    )


# --------------------------------------------------------------------------------------------- CIFAR-100


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR files that refuses anything but plain numpy arrays.

    The official files are Python-2 pickles of dicts of lists and uint8 arrays; refusing other globals
    means a tampered file cannot run code on load.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        # Python 3 writes bytes under protocol 2 as _codecs.encode(str, "latin1"): harmless, and needed to read
        # CIFAR files re-saved by Python 3 tools.
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"Refusing to load {module}.{name} from a CIFAR pickle: the official files hold only numpy "
                "arrays and lists. Is this the original cifar-100-python download?"
            )
        if name == "_reconstruct":
            from numpy._core.multiarray import _reconstruct

            return _reconstruct
        if name == "scalar":
            from numpy._core.multiarray import scalar

            return scalar
        if module == "_codecs":
            import codecs

            return codecs.encode
        return getattr(np, name)


CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"


class CorruptDataError(pickle.UnpicklingError, ValueError):
    """A dataset file that cannot be read as what it should be (truncated, corrupt or another format).

    A ``ValueError`` so that the command lines report it as one line of bad input (exit status 2), and an
    ``UnpicklingError`` for callers that catch the unpickler's own error.
    """


def _load_pickle(path: Path) -> dict:
    """One CIFAR pickle; a truncated or corrupt file is an error naming the file, the problem and the fix."""
    fix = (f"re-download {CIFAR100_URL} and unpack it again (tar xzf), or point --data_dir at an intact "
           "cifar-100-python/ folder")
    try:
        with open(path, "rb") as f:
            # encoding="bytes": the files were written by Python 2, so their str keys come back as bytes.
            data = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, MemoryError) as err:
        size = path.stat().st_size
        what = str(err) or type(err).__name__
        if "Refusing to load" in what:
            raise CorruptDataError(f"{path}: {what}") from None
        raise CorruptDataError(
            f"{path} ({size:,} bytes) is not a readable CIFAR pickle ({what}): the file is truncated or corrupt; "
            f"{fix}."
        ) from None
    if not isinstance(data, dict):
        raise CorruptDataError(f"{path} does not hold a CIFAR dict (got {type(data).__name__}); {fix}.")
    return data


@register_layout("cifar100-python", markers=("train", "test", "meta"), dirname="cifar-100-python", dataset="cifar100")
def load_cifar100_python(root: str | os.PathLike, split: str) -> datasets.Dataset:
    """Read a split of the original ``cifar-100-python/`` pickles (``train``, ``test``, ``meta``).

    Pixels are decoded once from the ``b'data'`` rows (``(N, 3072)`` uint8, channel-planar) into HWC arrays and
    stored as PPM bytes; the 50,000-image train split builds in about a second. Columns: ``image``, ``label``
    (fine, with names), ``coarse_label`` (with names).

    Reference: Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009.
    """
    root = Path(root)
    split = resolve_split(split, ("train", "test"), f"The CIFAR-100 directory {str(root)!r}")
    data_file, meta_file = root / split, root / "meta"
    for f in (data_file, meta_file):
        if not f.is_file():
            raise FileNotFoundError(f"{f} is missing; {root} should hold the pickles train, test and meta.")
    raw, meta = _load_pickle(data_file), _load_pickle(meta_file)
    missing = [k for k in (b"data", b"fine_labels", b"coarse_labels") if k not in raw]
    if missing or b"fine_label_names" not in meta:
        raise ValueError(
            f"{data_file} / {meta_file} miss keys {missing or [b'fine_label_names']}: not the CIFAR-100 format "
            "(for CIFAR-10 the keys are b'labels' and b'label_names')."
        )
    pixels = np.asarray(raw[b"data"], dtype=np.uint8)
    if pixels.ndim != 2 or pixels.shape[1] != 3 * 32 * 32:
        raise CorruptDataError(f"{data_file}: b'data' should be (N, 3072) uint8, got {pixels.shape}.")
    if len(raw[b"fine_labels"]) != len(pixels):
        raise CorruptDataError(
            f"{data_file} holds {len(pixels)} images but {len(raw[b'fine_labels'])} labels: the file is corrupt; "
            f"re-download {CIFAR100_URL}."
        )
    images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    fine_names = [n.decode() for n in meta[b"fine_label_names"]]
    coarse_names = [n.decode() for n in meta.get(b"coarse_label_names", [])]
    coarse = np.asarray(raw[b"coarse_labels"], dtype=np.int64)
    coarse_feature = datasets.ClassLabel(names=coarse_names) if coarse_names else datasets.ClassLabel(num_classes=20)
    return dataset_from_arrays(
        images,
        np.asarray(raw[b"fine_labels"], dtype=np.int64),
        fine_names,
        extra_columns={"coarse_label": (coarse, coarse_feature)},
        split=split,
        fingerprint=_file_fingerprint("cifar100-python", split, data_file, meta_file),
    )


# ------------------------------------------------------------------------------------------------ STL-10


@register_layout(
    "stl10-binary", markers=("train_X.bin", "train_y.bin", "class_names.txt"), dirname="stl10_binary", dataset="stl10"
)
def load_stl10_binary(root: str | os.PathLike, split: str) -> datasets.Dataset:
    """Read a labelled split of the original ``stl10_binary/`` files (``{split}_X.bin``, ``{split}_y.bin``).

    The images are 96x96x3 uint8 stored column-major: read as ``(N, 3, 96, 96)`` and transposed to HWC exactly
    as torchvision does; labels are 1-based on disk and become 0-based. Class names from ``class_names.txt``.

    Reference: Coates, Lee and Ng, "An Analysis of Single-Layer Networks in Unsupervised Feature Learning",
    AISTATS 2011.
    """
    root = Path(root)
    split = resolve_split(split, ("train", "test"), f"The STL-10 directory {str(root)!r}")
    x_file, y_file, names_file = root / f"{split}_X.bin", root / f"{split}_y.bin", root / "class_names.txt"
    for f in (x_file, y_file, names_file):
        if not f.is_file():
            raise FileNotFoundError(f"{f} is missing; {root} should hold the original stl10_binary files.")
    raw = np.fromfile(x_file, dtype=np.uint8)
    if raw.size % (3 * 96 * 96):
        raise ValueError(f"{x_file} holds {raw.size} bytes, not a whole number of 3x96x96 images.")
    # Column-major on disk: (N, C, W, H) in C order, hence the (0, 3, 2, 1) transpose to (N, H, W, C).
    images = raw.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)
    labels = np.fromfile(y_file, dtype=np.uint8).astype(np.int64) - 1
    class_names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
    if len(labels) != len(images):
        raise ValueError(f"{x_file} holds {len(images)} images but {y_file} holds {len(labels)} labels.")
    return dataset_from_arrays(
        images,
        labels,
        class_names,
        split=split,
        fingerprint=_file_fingerprint("stl10-binary", split, x_file, y_file, names_file),
    )


# ----------------------------------------------------------------------------------------- Tiny ImageNet


def _image_paths_dataset(
    paths: list[str], labels: list[int], class_names: list[str], split: str, fingerprint: str
) -> datasets.Dataset:
    """A ``Dataset`` whose ``Image()`` column references files on disk (decoded lazily, nothing copied)."""
    storage = pa.StructArray.from_arrays(
        [pa.nulls(len(paths), type=pa.binary()), pa.array(paths, type=pa.string())], names=["bytes", "path"]
    )
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=class_names)})
    table = pa.table({"image": storage, "label": pa.array(labels, type=pa.int64())}).cast(features.arrow_schema)
    from datasets.table import InMemoryTable

    return datasets.Dataset(
        InMemoryTable(table),
        info=datasets.DatasetInfo(features=features),
        split=datasets.NamedSplit(split),
        fingerprint=fingerprint,
    )


def _unique_names(names: list[str], ids: list[str]) -> list[str]:
    """Make class names unique (``ClassLabel`` needs that) by appending the id to any repeated name."""
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return [n if counts[n] == 1 else f"{n} ({i})" for n, i in zip(names, ids)]


@register_layout(
    "tiny-imagenet-200", markers=("wnids.txt", "train/"), dirname="tiny-imagenet-200", dataset="tiny-imagenet"
)
def load_tiny_imagenet_folder(root: str | os.PathLike, split: str) -> datasets.Dataset:
    """Read a labelled split of the original ``tiny-imagenet-200/`` folder (``train`` or ``val``).

    Classes are the WordNet ids of ``wnids.txt`` in sorted order (the order torchvision's ``ImageFolder`` gives
    on ``train/``); their names are the first synonym in ``words.txt``. ``train`` reads
    ``train/<wnid>/images/*.JPEG``, ``val`` (also ``test``/``validation``) reads ``val/images`` labelled by
    ``val/val_annotations.txt``. Images are referenced by path and decoded on access.

    Reference: Le and Yang, "Tiny ImageNet Visual Recognition Challenge", CS231N 2015.
    """
    root = Path(root)
    split = resolve_split(split, ("train", "val"), f"The Tiny ImageNet directory {str(root)!r}")
    wnids = sorted(line.strip() for line in (root / "wnids.txt").read_text().splitlines() if line.strip())
    index = {w: i for i, w in enumerate(wnids)}
    words: dict[str, str] = {}
    words_file = root / "words.txt"
    if words_file.is_file():
        for line in words_file.read_text().splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid.strip()] = text.split(",")[0].strip()
    class_names = _unique_names([words.get(w) or w for w in wnids], wnids)
    paths: list[str] = []
    labels: list[int] = []
    if split == "train":
        for wnid in wnids:
            image_dir = root / "train" / wnid / "images"
            if not image_dir.is_dir():
                raise FileNotFoundError(f"{image_dir} is missing; every wnid in wnids.txt needs train/<wnid>/images.")
            files = sorted(f for f in os.listdir(image_dir) if _is_image(Path(f)))
            paths.extend(str(image_dir / f) for f in files)
            labels.extend([index[wnid]] * len(files))
        marker = root / "wnids.txt"
    else:
        annotations = root / "val" / "val_annotations.txt"
        if not annotations.is_file():
            raise FileNotFoundError(f"{annotations} is missing; the labelled val split needs it.")
        for line in annotations.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) < 2:
                continue
            if fields[1] not in index:
                raise ValueError(f"{annotations}: {fields[1]!r} (for {fields[0]}) is not in wnids.txt.")
            paths.append(str(root / "val" / "images" / fields[0]))
            labels.append(index[fields[1]])
        marker = annotations
    return _image_paths_dataset(
        paths, labels, class_names, split, _file_fingerprint("tiny-imagenet-200", split, marker) + str(len(paths))
    )


# --------------------------------------------------------------------------------------------- save_to_disk


@register_layout("save_to_disk", matches=_is_saved_dataset)
def load_saved_dataset(root: str | os.PathLike, split: str) -> datasets.Dataset:
    """Read one split of a ``DatasetDict`` written by ``save_to_disk``.

    A single saved ``Dataset`` (no splits) is the ``train`` split only, never silently used for evaluation too:
    asking it for another split is a ``MissingSplitError`` (``build_datasets`` then splits a validation set off).
    """
    root = Path(root)
    loaded = datasets.load_from_disk(str(root))
    if isinstance(loaded, datasets.Dataset):
        if split == "train":
            return loaded
        raise MissingSplitError(
            f"{root} holds a single saved Dataset, not a DatasetDict with splits, so it has no {split!r} split. "
            "Save DatasetDict({'train': train_ds, 'test': test_ds}).save_to_disk(path), or let build_datasets "
            "split one off (validation_size)."
        )
    return loaded[resolve_split(split, list(loaded), f"The saved DatasetDict {str(root)!r}")]


# ------------------------------------------------------------------------------------------ image folder


def _is_image_folder(path: Path) -> bool:
    """``<class>/<image>``, or that under ``train/`` (and the evaluation split folders)."""
    return _has_class_dirs(path) or any(
        (path / s).is_dir() and _has_class_dirs(path / s) for s in ("train", *EVAL_SPLIT_ALIASES)
    )


@register_layout("imagefolder", matches=_is_image_folder)
def load_image_folder(root: str | os.PathLike, split: str) -> datasets.Dataset:
    """Read an image folder: ``<class>/<image>`` (a single ``train`` split) or ``<split>/<class>/<image>``.

    The same layout as ``datasets``' ``imagefolder`` builder and torchvision's ``ImageFolder``: class names are
    the sorted sub-directory names (taken from the train split, so every split shares one label mapping).
    Images are referenced by path and decoded on access; nothing is copied into a cache.
    """
    root = Path(root)
    split_dirs = [s for s in ("train", *EVAL_SPLIT_ALIASES) if (root / s).is_dir() and _has_class_dirs(root / s)]
    if split_dirs:
        split = resolve_split(split, split_dirs, f"The image folder {str(root)!r}")
        class_root = root / ("train" if "train" in split_dirs else split)
        split_root = root / split
    else:
        if split != "train":
            raise MissingSplitError(
                f"The image folder {str(root)!r} has no split sub-folders, so it only provides 'train'. For "
                f"an evaluation split arrange it as {root}/train/<class>/... and {root}/test/<class>/..., or let "
                f"build_datasets split one off (validation_size)."
            )
        class_root = split_root = root
    class_names = sorted(d.name for d in class_root.iterdir() if d.is_dir() and not d.name.startswith("."))
    index = {n: i for i, n in enumerate(class_names)}
    paths: list[str] = []
    labels: list[int] = []
    for class_dir in sorted(d for d in split_root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        if class_dir.name not in index:
            raise ValueError(
                f"{class_dir} is a class the train split does not have; every split needs the same class folders."
            )
        files = sorted(f for f in os.listdir(class_dir) if _is_image(Path(f)))
        paths.extend(str(class_dir / f) for f in files)
        labels.extend([index[class_dir.name]] * len(files))
    if not paths:
        raise ValueError(f"No images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found under {split_root}.")
    mtimes = max(os.stat(p).st_mtime_ns for p in paths)
    return _image_paths_dataset(
        paths, labels, class_names, split, _fingerprint("imagefolder", split_root.resolve(), len(paths), mtimes)
    )


# ----------------------------------------------------------------------------------------------- digits

DIGITS_NUM_TEST = 297


@functools.lru_cache(maxsize=2)
def _digits_arrays(image_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Upsampled digits and the fixed split, computed once per process (the quick start loads them often)."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from .images import resize_uint8

    digits = load_digits()
    grey = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8)
    rgb = torch.from_numpy(grey)[:, None].expand(-1, 3, -1, -1).contiguous()
    images = resize_uint8(rgb, image_size).permute(0, 2, 3, 1).contiguous().numpy()
    train_idx, test_idx = train_test_split(
        np.arange(len(images)), test_size=DIGITS_NUM_TEST, stratify=digits.target, random_state=0, shuffle=True
    )
    images.setflags(write=False)
    return images, digits.target.astype(np.int64), np.sort(train_idx), np.sort(test_idx)


def load_digits_dataset(split: str, image_size: int = 32) -> datasets.Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes) as 32x32 RGB, split 1,500 / 297.

    The 0..16 grey levels are scaled to 0..255, upsampled bilinearly (antialiased) to ``image_size`` and
    repeated over 3 channels. The split is stratified and fixed (``random_state=0``), so it is the same on
    every machine. A small real dataset that needs no download: the default for the quick start and tests.

    Reference: Alpaydin and Kaynak, "Optical Recognition of Handwritten Digits", UCI ML repository, 1998.
    """
    split = resolve_split(split, ("train", "test"), "The digits dataset")
    images, targets, train_idx, test_idx = _digits_arrays(image_size)
    chosen = train_idx if split == "train" else test_idx
    return dataset_from_arrays(
        images[chosen],
        targets[chosen],
        [str(d) for d in range(10)],
        split=split,
        fingerprint=_fingerprint("digits", split, image_size),
    )


@register_layout("digits", dataset="digits", on_disk=False)
def _read_digits(root: Path | None, split: str) -> datasets.Dataset:
    return load_digits_dataset(split)
