"""Image-classification data for distillation: loaders (Hub, original files, folders), transforms, collator.

Quick use::

    from icd_hf.data import build_datasets, collate_batch

    train_ds, eval_ds, info = build_datasets("cifar100", data_dir="/data/cifar-100-python")
    trainer = DistillationTrainer(..., train_dataset=train_ds, eval_dataset=eval_ds, data_collator=collate_batch)
"""

from .builder import (
    DatasetUnavailableError,
    DataSource,
    add_index_column,
    as_uint8_tensor,
    build_datasets,
    compute_mean_std,
    load_image_dataset,
    resolve_source,
    split_off_validation,
)
from .collate import DistillationCollator, collate_batch
from .images import dataset_from_arrays, decode_to_uint8, encode_ppm, resize_uint8
from .info import KNOWN_DATASETS, ImageDatasetInfo, KnownDataset, canonical_dataset_name
from .sources import (
    LAYOUTS,
    DatasetLayout,
    MissingSplitError,
    detect_layout,
    load_cifar100_python,
    load_digits_dataset,
    load_image_folder,
    load_saved_dataset,
    load_stl10_binary,
    load_tiny_imagenet_folder,
    register_layout,
)
from .transforms import (
    ImageClassificationTransform,
    normalize,
    random_crop,
    random_horizontal_flip,
    to_uint8_batch,
)

__all__ = [
    "KNOWN_DATASETS",
    "LAYOUTS",
    "DataSource",
    "DatasetLayout",
    "DatasetUnavailableError",
    "DistillationCollator",
    "ImageClassificationTransform",
    "ImageDatasetInfo",
    "KnownDataset",
    "MissingSplitError",
    "add_index_column",
    "as_uint8_tensor",
    "build_datasets",
    "canonical_dataset_name",
    "collate_batch",
    "compute_mean_std",
    "dataset_from_arrays",
    "decode_to_uint8",
    "detect_layout",
    "encode_ppm",
    "load_cifar100_python",
    "load_digits_dataset",
    "load_image_dataset",
    "load_image_folder",
    "load_saved_dataset",
    "load_stl10_binary",
    "load_tiny_imagenet_folder",
    "normalize",
    "random_crop",
    "random_horizontal_flip",
    "register_layout",
    "resize_uint8",
    "resolve_source",
    "split_off_validation",
    "to_uint8_batch",
]
