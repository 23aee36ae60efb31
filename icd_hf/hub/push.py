"""Publish an exported run to the Hugging Face Hub (``HfApi.create_repo`` + ``upload_folder``).

Every failure after the export (no token, offline, Hub unreachable, token rejected) raises a
``HubPublishError`` that names the exported folder and the command that pushes it later: training results
are never lost to a network problem at the end of a run.
"""

from __future__ import annotations

import logging
from pathlib import Path

from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from ..hub_ids import validate_hub_model_id
from ..runs import RunResults
from .card import DEFAULT_LICENSE
from .export import export_for_hub, is_exported_folder, refresh_card

logger = logging.getLogger(__name__)

DEFAULT_EXPORT_DIRNAME = "hub_export"


def _network_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the Hub could not be reached", whichever HTTP client huggingface_hub uses."""
    errors: list[type[BaseException]] = [OfflineModeIsEnabled, ConnectionError, TimeoutError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "ConnectionError"),
                         ("requests", "Timeout")):
        try:
            errors.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


class HubPublishError(RuntimeError):
    """Publishing failed after the export; ``export_dir`` holds the complete folder to push later."""

    def __init__(self, message: str, export_dir: Path | None = None) -> None:
        super().__init__(message)
        self.export_dir = export_dir


class HubNotLoggedInError(HubPublishError):
    """No Hugging Face token was found, or the Hub rejected it."""


class HubUnreachableError(HubPublishError):
    """Offline mode is on, or the Hub could not be reached."""


def _push_later(export_dir: Path, hub_model_id: str) -> str:
    return (
        f"The exported folder is at {export_dir}; push it later with "
        f"`icd-hf push {export_dir} --hub_model_id {hub_model_id}`."
    )


def _default_commit_message(export_dir: Path) -> str:
    results = RunResults.read(export_dir)
    student = results.student.name
    version = (results.hub_export or {}).get("icd_hf_version", "")
    if results.teacher:
        return f"Upload {student} distilled from {results.teacher.name} with {results.method} (icd-hf {version})"
    return f"Upload {student} trained on {results.dataset_name} (icd-hf {version})"


def prepare_export(
    run_dir: str | Path,
    hub_model_id: str,
    *,
    out_dir: str | Path | None = None,
    paper_dir: str | Path | None = None,
    teacher_hub_id: str | None = None,
    measure_latency: bool = True,
    license: str = DEFAULT_LICENSE,
    onnx: bool = False,
    int8: bool = False,
    data_dir: str | Path | None = None,
) -> Path:
    """The folder to upload: ``run_dir`` itself if it is already an export (its card re-rendered when it names
    another repository), else a fresh export in ``out_dir`` (default ``RUN_DIR/hub_export``), with the ONNX files
    when ``onnx`` (see ``export_for_hub``)."""
    run_dir = Path(run_dir)
    if is_exported_folder(run_dir):
        record = RunResults.read(run_dir).hub_export or {}
        if record.get("hub_model_id") != hub_model_id and record.get("converted_from"):
            from .convert import refresh_converted_card  # an `icd-hf convert` folder keeps its own card

            refresh_converted_card(run_dir, hub_model_id=hub_model_id)
        elif record.get("hub_model_id") != hub_model_id:
            refresh_card(run_dir, hub_model_id=hub_model_id, paper_dir=paper_dir)
        return run_dir
    return export_for_hub(
        run_dir,
        out_dir if out_dir is not None else run_dir / DEFAULT_EXPORT_DIRNAME,
        hub_model_id=hub_model_id,
        paper_dir=paper_dir,
        teacher_hub_id=teacher_hub_id,
        measure_latency=measure_latency,
        overwrite=True,
        license=license,
        onnx=onnx,
        int8=int8,
        data_dir=data_dir,
    )


def push_to_hub(
    run_dir: str | Path,
    hub_model_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    out_dir: str | Path | None = None,
    paper_dir: str | Path | None = None,
    teacher_hub_id: str | None = None,
    measure_latency: bool = True,
    onnx: bool = False,
    int8: bool = False,
    data_dir: str | Path | None = None,
) -> str:
    """Export ``run_dir`` (see ``export_for_hub``) and upload it to the model repository ``hub_model_id``.

    Args:
        run_dir: a run directory, or a folder already written by ``export_for_hub`` / ``icd-hf export``.
        hub_model_id: ``org/name``; the repository is created if needed.
        token: a Hub token; default: the one of ``hf auth login`` / ``HF_TOKEN``.
        private: create the repository private (an existing repository keeps its visibility).
        commit_message: default ``Upload <student> distilled from <teacher> with <method> (icd-hf <version>)``.
        out_dir: where the export goes (default ``RUN_DIR/hub_export``).
        paper_dir / teacher_hub_id / measure_latency / onnx / int8 / data_dir: passed to ``export_for_hub``.

    Returns:
        The URL of the upload commit.

    Raises:
        ValueError: invalid ``hub_model_id`` (before anything is written).
        HubNotLoggedInError / HubUnreachableError / HubPublishError: after the export; ``.export_dir`` is kept.
    """
    validate_hub_model_id(hub_model_id)
    export_dir = prepare_export(
        run_dir, hub_model_id, out_dir=out_dir, paper_dir=paper_dir, teacher_hub_id=teacher_hub_id,
        measure_latency=measure_latency, onnx=onnx, int8=int8, data_dir=data_dir,
    )
    token = token or get_token()
    if not token:
        raise HubNotLoggedInError(
            "Not logged in to the Hugging Face Hub: run `hf auth login` (`huggingface-cli login` in older versions) "
            f"or set HF_TOKEN. {_push_later(export_dir, hub_model_id)}",
            export_dir,
        )
    api = HfApi(token=token)
    try:
        api.create_repo(hub_model_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            repo_id=hub_model_id,
            folder_path=str(export_dir),
            repo_type="model",
            commit_message=commit_message or _default_commit_message(export_dir),
        )
    except _network_errors() as err:
        offline = " (HF_HUB_OFFLINE is set)" if isinstance(err, OfflineModeIsEnabled) else ""
        raise HubUnreachableError(
            f"Could not reach the Hugging Face Hub{offline}: {err}. {_push_later(export_dir, hub_model_id)}",
            export_dir,
        ) from err
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status in (401, 403):
            raise HubNotLoggedInError(
                f"The Hub rejected the token for {hub_model_id} (HTTP {status}): check that it has write access to "
                f"that namespace (`hf auth login` with a write token, or HF_TOKEN). "
                f"{_push_later(export_dir, hub_model_id)}",
                export_dir,
            ) from err
        raise HubPublishError(f"Upload to {hub_model_id} failed: {err}. {_push_later(export_dir, hub_model_id)}",
                              export_dir) from err
    url = str(getattr(commit, "commit_url", None) or commit)
    logger.info("Pushed %s to %s", export_dir, url)
    return url
