"""What can be checked about a run's folder and its Hub access before any data or model loads.

``prepare_experiment`` (and ``icd-hf launch``'s validation) call ``preflight``: an ``output_dir`` that cannot be
written (a file in its place, a read-only file system, no permission) and an unreachable Hub are each one clear
line in seconds, instead of an ``[Errno ...]`` after the models load or a minute of the Hub client's retries.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .config import ConfigError
from .hub_ids import has_hub_id_form

if TYPE_CHECKING:
    from .config import ExperimentConfig

__all__ = ["HubOfflineError", "check_hub_reachable", "check_output_dir", "hub_ids_needed", "preflight"]

# Seconds the one probe of the Hub may take: the Hub answers a HEAD in well under a second when it is reachable.
HUB_PROBE_TIMEOUT_S = 10.0


class HubOfflineError(ConnectionError):
    """The run loads something from the Hugging Face Hub, and the Hub cannot be reached from here."""


def preflight(cfg: ExperimentConfig) -> None:
    """Every check of ``cfg`` that needs no data and no model: its ``output_dir`` can be written, and the Hub
    answers when the run needs it.

    Raises:
        ConfigError: ``output_dir`` cannot be a writable folder.
        HubOfflineError: the run needs the Hub and the Hub cannot be reached.
    """
    check_output_dir(cfg.output_dir)
    check_hub_reachable(cfg)


def check_output_dir(output_dir: str | os.PathLike[str] | None) -> None:
    """``output_dir`` is a folder this process can write into, or can be created as one.

    The nearest existing folder on its path gets a probe file (created and deleted at once): that is the only
    check that sees a read-only file system, a missing permission and an ACL alike, for root too.

    Raises:
        ConfigError: a file where a folder of the path should be, or a folder that cannot be written.
    """
    if output_dir is None:
        return
    path = Path(output_dir).expanduser()
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == path else f"cannot be created: {existing} is a file"
        raise ConfigError(f"output_dir {str(output_dir)!r} {where}, not a folder. Pass --output_dir a folder path "
                          f"(new or one of your runs).")
    try:
        fd, probe = tempfile.mkstemp(prefix=".icd-hf-write-check-", dir=existing)
    except OSError as err:
        what = "cannot be written" if existing == path else f"cannot be created in {existing}"
        raise ConfigError(
            f"output_dir {str(output_dir)!r} {what} ({err.strerror or err}). Pass --output_dir a folder you can "
            f"write to (e.g. under your home directory or the working directory)."
        ) from None
    os.close(fd)
    os.unlink(probe)


def _needs_hub(ref: str | None) -> bool:
    """Whether loading ``ref`` (a student, a teacher checkpoint) reads the Hub: an ``org/name`` that is no local
    path, or timm's pretrained weights (``timm/<name>.<tag>``); a fresh ``timm/<name>`` needs nothing."""
    if not ref or Path(ref).expanduser().exists() or not has_hub_id_form(ref):
        return False
    return not ref.startswith("timm/") or "." in ref.partition("/")[2]


def hub_ids_needed(cfg: ExperimentConfig) -> list[str]:
    """What ``cfg`` loads from the Hub, as the error names it (``'org/name'``, ``the dataset 'org/name'``): the
    student, the teachers and the dataset, each where it is no local path.

    Raises:
        ValueError, FileNotFoundError: the dataset names nothing loadable (``resolve_source``'s own errors).
    """
    from .data import resolve_source

    needed = [repr(cfg.student)] if _needs_hub(cfg.student) else []
    needed += [repr(s.checkpoint) for s in cfg.teacher_sources() if _needs_hub(s.checkpoint)]
    source = resolve_source(cfg.dataset, cfg.data_dir)
    if source.layout is None:  # no layout: its location is a Hub dataset id
        needed.append(f"the dataset {str(source.location)!r}")
    return list(dict.fromkeys(needed))


@functools.lru_cache(maxsize=1)
def hub_connection_error(endpoint: str, timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Why ``endpoint`` cannot be reached (``None``: it answered), from one HEAD request without retries; asked
    once per process."""
    from huggingface_hub import get_session

    try:
        # Any answer, an error status included, means the Hub is reachable; only the transport can fail here.
        get_session().head(endpoint, timeout=timeout)
    except Exception as err:  # noqa: BLE001 - DNS, refused, timeout, proxy, TLS: each client has its own class
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return f"{type(err).__name__}{': ' + text[:200] if text else ''}"
    return None


def check_hub_reachable(cfg: ExperimentConfig) -> None:
    """Fail fast, with how to work offline, when ``cfg`` loads from the Hub and the Hub cannot be reached.

    Without this, each model and dataset load retries the connection for most of a minute before its error.
    Nothing is asked when ``HF_HUB_OFFLINE`` is set (the loaders then read the cache) or nothing is on the Hub.

    Raises:
        HubOfflineError: naming what the run loads from the Hub and the two ways to run without it.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return
    needed = hub_ids_needed(cfg)
    if not needed:
        return
    reason = hub_connection_error(constants.ENDPOINT)
    if reason is None:
        return
    raise HubOfflineError(
        f"The Hugging Face Hub ({constants.ENDPOINT}) cannot be reached ({reason}), and this run loads "
        f"{', '.join(needed)} from it. Work offline with HF_HUB_OFFLINE=1 (what is already in the "
        f"Hugging Face cache loads from there), or give local folders instead (a run or save_pretrained folder for "
        f"a model, --data_dir for a dataset)."
    )
