"""What every zoo configuration shares: the ``num_labels`` default that keeps a saved ``id2label``.

Imports nothing but the standard library, so it travels with the configuration files into a ``save_pretrained``
folder and loads there with ``trust_remote_code=True``.
"""

from __future__ import annotations

from typing import Any

# The benchmark's dataset is CIFAR-100.
DEFAULT_NUM_LABELS = 100


def with_default_num_labels(num_labels: int | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` for ``PretrainedConfig.__init__`` with ``num_labels`` set when it is given, or set to
    ``DEFAULT_NUM_LABELS`` when neither it nor ``id2label`` is.

    A default ``num_labels`` would overwrite the ``id2label`` of a saved config on reload, so the CIFAR-100 head
    is only a fall-back for when there is no label information at all.
    """
    if num_labels is None and kwargs.get("id2label") is None:
        num_labels = DEFAULT_NUM_LABELS
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    return kwargs
