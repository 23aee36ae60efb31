"""What every zoo configuration shares: the input channels, the zoo name it was built for, and the ``num_labels``
default that keeps a saved ``id2label``.

Imports only ``transformers``, so it travels with the configuration files into a ``save_pretrained`` folder and
loads there with ``trust_remote_code=True``.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

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


class ZooConfig(PretrainedConfig):
    r"""Base of the CIFAR zoo configurations: the fields every architecture has, after its own.

    Args:
        num_channels: input image channels.
        architecture_name: the zoo name the config was built for (``"wrn_40_2"``), for records and model cards.
        num_labels: number of classes (100 when neither it nor ``id2label`` is given).
        **kwargs: ``PretrainedConfig`` arguments (``id2label``, ``output_hidden_states``...).
    """

    def __init__(
        self, num_channels: int = 3, architecture_name: str | None = None, num_labels: int | None = None, **kwargs: Any
    ) -> None:
        self.num_channels = num_channels
        self.architecture_name = architecture_name
        super().__init__(**with_default_num_labels(num_labels, kwargs))
