"""icd-hf: Invariant Consistency Distillation and its baselines, the Hugging Face way."""

from . import losses, models  # noqa: F401  (importing registers the models with the Auto classes)
from .version import __version__

__all__ = ["__version__", "losses", "models"]
