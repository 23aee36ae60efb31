"""What a model expects as input, and the image processor that gives it: one module for training and export.

``input_spec_of`` finds the size and normalisation a model (a run folder, a ``save_pretrained`` folder, a Hub id or
a zoo/timm name) was trained with; ``build_image_processor`` turns an ``InputSpec`` into the
``preprocessor_config.json`` saved next to a student, so ``pipeline()`` feeds it what training fed it. Training
(``model_pair.py``) and export (``hub/export.py``, ``hub/onnx_export.py``) both use them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from torch import nn

from .hub_ids import has_hub_id_form
from .models.modeling_hf_adapter import InputSpec, Triple, needs_adapter, unwrap_model
from .runs import RunResults, find_run_results, resolve_model_dir

logger = logging.getLogger(__name__)

PROCESSOR_NAME = "preprocessor_config.json"


def spec_from_results(results: RunResults) -> InputSpec:
    """The input an icd-hf run trained its student with: the run's image size and its data's mean/std."""
    dataset = results.dataset
    missing = [k for k in ("mean", "std") if not dataset.get(k)]
    if missing:
        raise KeyError(f"results.json dataset has no {'/'.join(missing)}; the image processor needs them.")
    if not results.image_size:
        raise KeyError("results.json gives no image size: set dataset.image_size (e.g. 32 for CIFAR).")
    return _record_spec(results)


def _record_spec(results: RunResults) -> InputSpec:
    dataset = results.dataset
    return InputSpec(results.image_size, _triple(dataset["mean"]), _triple(dataset["std"]), str(results.source))



def _triple(values: Any) -> Triple | None:
    if values is None:
        return None
    values = [float(v) for v in (values if isinstance(values, (list, tuple)) else [values] * 3)]
    if len(values) == 1:
        values = values * 3
    return (values[0], values[1], values[2]) if len(values) == 3 else None


def _processor_size(config: dict[str, Any]) -> int | None:
    """The side of the tensor an image processor produces (its crop when it crops, else its resize)."""
    for key, enabled in (("crop_size", config.get("do_center_crop")), ("size", config.get("do_resize", True))):
        size = config.get(key)
        if not enabled or size is None:
            continue
        if isinstance(size, int):
            return size
        if isinstance(size, dict):
            if "height" in size and "width" in size:
                return max(int(size["height"]), int(size["width"]))
            if size.get("shortest_edge"):
                return int(size["shortest_edge"])
    return None


def spec_from_processor_config(config: dict[str, Any], source: str) -> InputSpec:
    """``InputSpec`` from a ``preprocessor_config.json`` mapping (any transformers image processor)."""
    normalise = config.get("do_normalize", True)
    mean = _triple(config.get("image_mean")) if normalise else (0.0, 0.0, 0.0)
    std = _triple(config.get("image_std")) if normalise else (1.0, 1.0, 1.0)
    return InputSpec(_processor_size(config), mean, std, source)


def _local_processor_config(folder: Path) -> dict[str, Any] | None:
    path = folder / PROCESSOR_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def _hub_processor_config(repo_id: str) -> dict[str, Any] | None:
    """The Hub (or cached) ``preprocessor_config.json`` of ``repo_id``; ``None`` when it has none or is offline."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    try:
        return json.loads(Path(hf_hub_download(repo_id, PROCESSOR_NAME)).read_text())
    except (EntryNotFoundError, LocalEntryNotFoundError):  # no processor, or offline and not cached: a normal case
        return None
    except (HfHubHTTPError, OSError) as err:  # unreachable Hub: fall back to the model's config, and say so
        logger.warning("could not read %s's image processor from the Hub (%s); using its config", repo_id, err)
        return None


def _results_spec(folder: Path) -> InputSpec | None:
    """The size and normalisation an icd-hf run trained with, from its ``results.json``."""
    results = find_run_results(folder)
    if results is None or not (results.dataset.get("mean") and results.dataset.get("std")):
        return None
    return _record_spec(results)


def _timm_spec(model: nn.Module) -> InputSpec | None:
    """timm models: pretrained weights come with their data config; ViT-like ones run at their patch grid's size
    (even "dynamic" ones need a side divisible by the patch; ``*_image_size`` overrides it)."""
    timm_model = getattr(model, "timm_model", None)
    if timm_model is None:
        return None
    fixed = getattr(getattr(timm_model, "patch_embed", None), "img_size", None)
    tag = getattr(model.config, "timm_model_name", "").partition(".")[2]
    if tag and getattr(timm_model, "pretrained_cfg", None):
        cfg = timm_model.pretrained_cfg
        size = cfg.get("input_size", (3, None, None))[-1]
        return InputSpec(size, _triple(cfg.get("mean")), _triple(cfg.get("std")), f"timm pretrained_cfg of {tag}")
    if fixed is not None:
        side = max(fixed) if isinstance(fixed, (tuple, list)) else int(fixed)
        return InputSpec(side, None, None, "timm patch grid")
    return None


def input_spec_of(source: str | None, model: nn.Module | None = None, image_size: int | None = None) -> InputSpec:
    """What the model loaded from ``source`` (a run folder, a ``save_pretrained`` folder, a Hub id or a zoo/timm
    name) expects, from the first of:

    1. its image processor (``preprocessor_config.json`` next to the weights, or on the Hub);
    2. the ``results.json`` of the icd-hf run that trained it (runs from before processors were saved);
    3. the model: a ``transformers`` config's ``image_size`` (ViTs only run at their patch grid) or a timm
       model's pretrained data config / fixed grid;
    4. nothing known: the data's size and normalisation.

    ``image_size`` (the ``teacher_image_size`` / ``student_image_size`` option) overrides the size.
    """
    spec: InputSpec | None = None
    if source is not None:
        path = Path(source)
        if path.is_dir():
            folder = Path(resolve_model_dir(path))
            processor = _local_processor_config(folder)
            if processor is not None:
                spec = spec_from_processor_config(processor, str(folder / PROCESSOR_NAME))
            else:
                spec = _results_spec(folder)
        elif not source.startswith("timm/") and has_hub_id_form(source):
            processor = _hub_processor_config(source)
            if processor is not None:
                spec = spec_from_processor_config(processor, f"{source} image processor")
    if spec is None and model is not None:
        model = unwrap_model(model)
        spec = _timm_spec(model)
        if spec is None and needs_adapter(model):
            size = getattr(model.config, "image_size", None)
            if isinstance(size, (list, tuple)):
                size = max(size)
            if isinstance(size, int):
                spec = InputSpec(size, None, None, f"{type(model.config).__name__}.image_size")
    spec = spec or InputSpec()
    return spec.with_image_size(image_size, "image size option")


def build_image_processor(spec: InputSpec) -> Any:
    """The image processor saved with an exported student: square resize to its size, its normalisation.

    A ``ViTImageProcessor`` for every architecture: it does exactly what training fed the student (the whole
    image resized to a square, not a shortest-edge resize and crop), and every ``transformers`` install knows it.
    """
    from transformers import ViTImageProcessor

    if spec.image_size is None or spec.mean is None or spec.std is None:
        raise ValueError(f"build_image_processor needs a resolved InputSpec (see InputSpec.resolved), got {spec}.")
    return ViTImageProcessor(
        do_resize=True,
        size={"height": spec.image_size, "width": spec.image_size},
        resample=2,  # PIL.Image.BILINEAR, as the training resize
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(spec.mean),
        image_std=list(spec.std),
    )
