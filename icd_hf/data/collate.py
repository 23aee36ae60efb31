"""Collate transformed rows into the batch ``DistillationTrainer`` expects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["DistillationCollator", "collate_batch"]


@dataclass
class DistillationCollator:
    """Stack rows ``{"pixel_values", "labels", "index"}`` into ``(B, 3, H, W)`` float, ``(B,)`` long, ``(B,)`` long.

    ``index`` is each sample's position in its dataset; losses with a memory bank (CRD) need it, so it is
    required unless ``require_index=False``. Rows come from a dataset prepared by ``build_datasets`` (or any
    dataset whose transform yields those keys).
    """

    require_index: bool = True

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("Cannot collate an empty batch.")
        first = features[0]
        if "pixel_values" not in first or "labels" not in first:
            raise KeyError(
                f"Rows need 'pixel_values' and 'labels' (got {sorted(first)}); set the dataset's transform with "
                "icd_hf.data.build_datasets or ImageClassificationTransform, and pass remove_unused_columns=False "
                "to the TrainingArguments."
            )
        batch = {
            "pixel_values": torch.stack([torch.as_tensor(f["pixel_values"]) for f in features]).float(),
            "labels": torch.as_tensor([int(f["labels"]) for f in features], dtype=torch.long),
        }
        if "index" in first:
            batch["index"] = torch.as_tensor([int(f["index"]) for f in features], dtype=torch.long)
        elif self.require_index:
            raise KeyError(
                "Rows have no 'index' (the sample's position, needed by CRD's memory bank); add it with "
                "icd_hf.data.add_index_column(dataset) or use DistillationCollator(require_index=False)."
            )
        return batch


collate_batch = DistillationCollator()
