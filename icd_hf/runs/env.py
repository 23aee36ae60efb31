"""Facts about where a run executes: the code (git commit), the device and the CPU, the worker count it can use.

Recorded with every run (``RunResults.git_commit`` / ``device``) and read by the benchmarks.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

import torch


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """Short commit hash of the icd-hf checkout, ``+dirty`` when its tracked files have uncommitted changes, or
    ``"unknown"`` outside a git checkout.

    Cached: the first call names the code this process runs. Entry points call it at start, because a long run's
    checkout can move on while it trains, and the commit read at the end would then name code that never ran.
    """
    package_dir = Path(__file__).resolve().parents[1]  # icd_hf/
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=package_dir,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", str(package_dir)],
            capture_output=True, text=True, check=True, cwd=package_dir,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


@functools.lru_cache(maxsize=1)
def cpu_model_name() -> str | None:
    """The CPU's model as the OS names it (``/proc/cpuinfo``'s ``model name``), ``None`` where it does not say.

    Recorded with every run: the same code and seed give different accuracies on CPUs with different kernels
    (AVX2 vs AVX-512/AMX), so a number without its CPU cannot be reproduced.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:  # not Linux
        pass
    return platform.processor() or None


def device_name(device: torch.device | str | None = None) -> str:
    """Human-readable name of ``device`` (default: CUDA when available, else the CPU), for a CPU with its model."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = cpu_model_name()
    return f"cpu ({f'{model}, ' if model else ''}{platform.machine()}, {os.cpu_count()} cores)"


def available_cpus() -> int:
    """CPUs this process may use (its affinity set where the OS has one), the figure DataLoader warns against."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def effective_num_workers(requested: int) -> int:
    """``dataloader_num_workers`` capped at the machine's CPUs: more workers than cores only slow a run down and
    make torch warn on every DataLoader it builds (three times per epoch)."""
    return max(0, min(int(requested), available_cpus()))

