"""Recognising Hugging Face Hub repository ids: the one rule the loaders, the run records, the cards and the
upload share.

A Hub id is ``org/name`` in the Hub's spelling (``microsoft/resnet-50``, ``uoft-cs/cifar100``). The same string
can also be a local path; where a folder of that name exists, it is the folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

__all__ = ["HUB_ID_PATTERN", "has_hub_id_form", "is_hub_id", "validate_hub_model_id"]

HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def has_hub_id_form(ref: str | None) -> bool:
    """Whether ``ref`` is spelled ``org/name`` as a Hub id is (whether or not a local path has that name too)."""
    return bool(ref) and HUB_ID_PATTERN.match(ref) is not None


def is_hub_id(ref: str | None, search_dirs: Iterable[str | Path] = ()) -> bool:
    """Whether ``ref`` names a Hub repository: ``org/name`` that is no local path (relative to the working directory
    or any of ``search_dirs``)."""
    if not has_hub_id_form(ref):
        return False
    return not any((Path(base) / ref).exists() for base in (Path("."), *search_dirs))


def validate_hub_model_id(hub_model_id: str | None) -> str:
    """Check ``hub_model_id`` is a valid ``org/name`` model repository id; return it. Cheap: call it before training.

    Raises:
        ValueError: with the reason and an example of a valid id.
    """
    if not hub_model_id or not isinstance(hub_model_id, str):
        raise ValueError("push_to_hub needs `hub_model_id` as 'org/name' (e.g. 'my-user/wrn_16_2-icd-kd-cifar100').")
    if hub_model_id.count("/") != 1:
        raise ValueError(
            f"Invalid hub_model_id {hub_model_id!r}: use the 'org/name' form with exactly one '/', e.g. "
            f"'my-user/{hub_model_id.strip('/').split('/')[-1] or 'my-model'}'."
        )
    try:
        validate_repo_id(hub_model_id)
    except HFValidationError as err:
        raise ValueError(f"Invalid hub_model_id {hub_model_id!r}: {err}") from err
    return hub_model_id
