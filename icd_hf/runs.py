"""The layout of a run directory and the provenance recorded with it, shared by training, export and evaluation.

A run directory (``output_dir`` of a recipe) holds ``student/`` - the trained model in ``save_pretrained``
layout (for a teacher run, the teacher) - and ``results.json``; checkpoints sit next to them.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

RESULTS_NAME = "results.json"
EXPORT_DIRNAME = "student"


def git_commit() -> str:
    """Short commit hash of the icd-hf checkout, or ``"unknown"`` outside a git checkout."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name(device: torch.device | str | None = None) -> str:
    """Human-readable name of ``device`` (default: CUDA when available, else the CPU)."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
