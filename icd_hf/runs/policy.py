"""One declaration per training argument: does it define the run, is it bookkeeping, is it a secret?

Every place that needs the answer reads it here: the fingerprint that decides whether a folder may be resumed
(``resume.run_fingerprint``: defining keys only), the model card's training table (defining keys only), and the
run record, which masks every secret before anything is written (``mask_secrets``, ``mask_command``), as
``transformers.TrainingArguments.to_dict`` masks its ``*_token`` fields: a token given as
``--training.hub_token`` must never reach ``results.json``, a card or an export that ``icd-hf push`` uploads.
"""

from __future__ import annotations

import enum
import re
import shlex
from collections.abc import Mapping
from typing import Any


class KeyRole(enum.Enum):
    """What a training argument is to a run."""

    DEFINING = "defining"
    """Changes what the run learns: part of the fingerprint, shown on the card (the default for any key)."""
    BOOKKEEPING = "bookkeeping"
    """Changes how the run executes or is recorded, not what it learns: a resume may change it."""
    SECRET = "secret"
    """A credential: masked wherever the run is recorded."""


# The training arguments that are bookkeeping; every other key defines the run, except the secrets.
BOOKKEEPING_TRAINING_KEYS = frozenset({
    "output_dir", "logging_dir", "logging_steps", "logging_strategy", "logging_first_step", "report_to",
    "run_name", "save_strategy", "save_steps", "save_total_limit", "save_only_model", "eval_strategy",
    "eval_steps", "eval_delay", "per_device_eval_batch_size", "eval_accumulation_steps", "disable_tqdm",
    "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers",
    "dataloader_prefetch_factor", "push_to_hub", "hub_model_id", "hub_private_repo", "hub_strategy",
    "use_cpu", "log_level", "log_level_replica", "fast_path", "compile_models", "torch_compile",
    "include_num_input_tokens_seen", "restore_callback_states_from_checkpoint", "overwrite_output_dir",
})


def is_secret_key(key: str) -> bool:
    """A key whose value is a credential: ``token`` or any ``*_token`` (``hub_token``, ``push_to_hub_token``), as
    transformers decides, plus ``*_api_key`` / ``*_password`` / ``*_secret`` of the trackers."""
    name = str(key).rsplit(".", 1)[-1].lower().lstrip("-")
    return (name == "token" or name.endswith("_token") or name.endswith("api_key") or name.endswith("password")
            or name.endswith("secret"))


def training_key_role(key: str) -> KeyRole:
    """The role of the training argument ``key``."""
    if is_secret_key(key):
        return KeyRole.SECRET
    return KeyRole.BOOKKEEPING if key in BOOKKEEPING_TRAINING_KEYS else KeyRole.DEFINING


def defines_the_run(key: str) -> bool:
    return training_key_role(key) is KeyRole.DEFINING


def mask_value(key: str) -> str:
    """What a secret's value is replaced with: ``<HUB_TOKEN>``, as transformers writes it."""
    return f"<{str(key).rsplit('.', 1)[-1].lstrip('-').upper()}>"


# Hugging Face user and organisation access tokens ("hf_" + 34 letters), wherever they appear in a string.
_HF_TOKEN_RE = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")


def _mask_string(text: str) -> str:
    return _HF_TOKEN_RE.sub("<HF_TOKEN>", text)


def mask_secrets(value: Any) -> Any:
    """``value`` (a mapping, list or string, nested) with every secret masked: the value of every secret key
    (``mask_value``) and any Hugging Face token in any string. Non-secret values are returned unchanged."""
    if isinstance(value, Mapping):
        return {k: (mask_value(k) if is_secret_key(k) and v not in (None, "") else mask_secrets(v))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_secrets(v) for v in value)
    if isinstance(value, str):
        return _mask_string(value)
    return value


def mask_command(command: str | None) -> str | None:
    """A recorded command line with the value of every secret option masked (``--training.hub_token X``,
    ``--token=X``, ``--loss_overrides '{... hub_token: X}'`` strings are masked by the token pattern)."""
    if command is None:
        return None
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: mask what the token pattern finds
        return _mask_string(command)
    masked: list[str] = []
    hide_next = None
    for word in words:
        if hide_next is not None:
            masked.append(mask_value(hide_next))
            hide_next = None
            continue
        option, eq, _ = word.partition("=")
        if option.startswith("-") and is_secret_key(option):
            if eq:
                masked.append(f"{option}={mask_value(option)}")
            else:
                masked.append(word)
                hide_next = option
            continue
        masked.append(_mask_string(word))
    # Unchanged commands keep their own spelling (shlex.join would re-quote them).
    return command if masked == words else shlex.join(masked)
