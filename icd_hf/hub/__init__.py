"""Publishing to the Hugging Face Hub: model cards, export of a run to a Hub-ready folder, upload.

``export_for_hub(run_dir, out_dir)`` writes a folder that ``AutoModelForImageClassification`` loads with
``trust_remote_code=True`` (or with ``import icd_hf``) and ``AutoImageProcessor`` understands, with a model
card built from ``results.json``; ``push_to_hub(run_dir, "org/name")`` exports then uploads it.
``validate_hub_model_id`` is cheap and meant to run before training. The same is on the command line as
``icd-hf export`` and ``icd-hf push``.
"""

from ..hub_ids import validate_hub_model_id
from ..paper import PaperResult, find_paper_result
from .card import LatencyReport, build_card_data, render_model_card
from .export import build_image_processor, export_for_hub, is_exported_folder, measure_cpu_latency, read_results
from .push import HubNotLoggedInError, HubPublishError, HubUnreachableError, prepare_export, push_to_hub

__all__ = [
    "HubNotLoggedInError",
    "HubPublishError",
    "HubUnreachableError",
    "LatencyReport",
    "PaperResult",
    "build_card_data",
    "build_image_processor",
    "export_for_hub",
    "find_paper_result",
    "is_exported_folder",
    "measure_cpu_latency",
    "prepare_export",
    "push_to_hub",
    "read_results",
    "render_model_card",
    "validate_hub_model_id",
]
