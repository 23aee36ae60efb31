"""Logit-correlation analysis: does the student reproduce the teacher's correlations between classes?

Paper figure 1, after CRD (Tian et al., "Contrastive Representation Distillation", ICLR 2020, figure 2): over a
test set, compute the ``C x C`` Pearson correlation between class logits (across samples) for the teacher and
for each student, and look at the difference. A student that captured the teacher's structure has a
difference near zero everywhere; the headline number is the mean absolute value of that difference.

Plots are drawn on a bare ``matplotlib.figure.Figure`` (rendered by Agg), never through ``pyplot``, so they work
headless and do not change the process-wide backend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "correlation_difference",
    "logits_correlation",
    "plot_correlation_difference",
    "plot_correlation_differences",
]


def logits_correlation(logits: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Pearson correlation between the columns (classes) of ``logits`` ``(N, C)`` across the ``N`` samples.

    Computed in float64. A class whose logit never varies has no defined correlation; its off-diagonal entries
    are set to 0 (a NaN would poison every average) and its diagonal entry to 1, like every other class.

    Returns:
        ``(C, C)`` float64 tensor, symmetric, ones on the diagonal.
    """
    x = torch.as_tensor(logits).detach().to("cpu", torch.float64)
    if x.ndim != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(x.shape)}.")
    if x.shape[0] < 2:
        raise ValueError(f"Pearson correlation needs at least 2 samples, got {x.shape[0]}.")
    centred = x - x.mean(dim=0, keepdim=True)
    norms = centred.norm(dim=0)
    constant = norms <= 1e-12 * (1.0 + x.abs().amax(dim=0))
    unit = centred / torch.where(constant, torch.ones_like(norms), norms)
    unit[:, constant] = 0.0
    corr = (unit.T @ unit).clamp_(-1.0, 1.0)
    corr.fill_diagonal_(1.0)
    return corr


def correlation_difference(
    teacher_logits: torch.Tensor | np.ndarray, student_logits: torch.Tensor | np.ndarray
) -> dict[str, Any]:
    """Difference between the student's and the teacher's logit-correlation matrices on the same samples.

    Returns:
        ``diff_matrix``: ``student_corr - teacher_corr`` ``(C, C)``; ``mean_abs_diff``: mean of ``|diff|`` over
        all ``C*C`` entries (the headline; the diagonal is always 0); ``mean_abs_diff_offdiag``: the same over
        the ``C*(C-1)`` off-diagonal entries; ``max_abs_diff``; ``teacher_corr`` and ``student_corr``.
    """
    teacher_logits = torch.as_tensor(teacher_logits)
    student_logits = torch.as_tensor(student_logits)
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(
            f"Teacher and student logits differ in shape ({tuple(teacher_logits.shape)} vs "
            f"{tuple(student_logits.shape)}); compute both on the same samples with the same label space."
        )
    teacher_corr = logits_correlation(teacher_logits)
    student_corr = logits_correlation(student_logits)
    diff = student_corr - teacher_corr
    abs_diff = diff.abs()
    c = diff.shape[0]
    offdiag = abs_diff[~torch.eye(c, dtype=torch.bool)]
    return {
        "diff_matrix": diff,
        "mean_abs_diff": float(abs_diff.mean()),
        "mean_abs_diff_offdiag": float(offdiag.mean()) if offdiag.numel() else 0.0,
        "max_abs_diff": float(abs_diff.max()),
        "teacher_corr": teacher_corr,
        "student_corr": student_corr,
    }


def _abs_matrix(matrix: torch.Tensor | np.ndarray) -> np.ndarray:
    return np.abs(torch.as_tensor(matrix).detach().to("cpu", torch.float64).numpy())


def plot_correlation_differences(
    diffs: Mapping[str, torch.Tensor | np.ndarray],
    path: str | os.PathLike[str],
    *,
    vmax: float | None = None,
    title: str | None = None,
    panel_size: float = 3.2,
    dpi: int = 150,
) -> Path:
    """Heatmaps of ``|student_corr - teacher_corr|``, one panel per student, side by side on a shared colour scale.

    Args:
        diffs: ``{label: diff_matrix}`` in panel order (e.g. ``{"KD": ..., "CRD": ..., "ICD": ...}``).
        path: PNG to write (parent folders are created).
        vmax: top of the colour scale; default the largest ``|diff|`` over all panels, so panels compare.
        title: figure title.
        panel_size: inches per panel.
        dpi: resolution.

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure

    if not diffs:
        raise ValueError("Nothing to plot: pass at least one {label: diff_matrix}.")
    matrices = {label: _abs_matrix(m) for label, m in diffs.items()}
    top = vmax if vmax is not None else max(float(m.max()) for m in matrices.values())
    top = top if top > 0 else 1.0  # identical correlations everywhere: keep a valid colour range
    fig = Figure(figsize=(panel_size * len(matrices) + 0.9, panel_size + 0.7), layout="constrained")
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    image = None
    for ax, (label, matrix) in zip(axes, matrices.items()):
        image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=top, interpolation="nearest")
        ax.set_title(f"{label}\nmean |Δ| = {matrix.mean():.4f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=list(axes), shrink=0.85, label="|corr(student) − corr(teacher)|")
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def plot_correlation_difference(
    diff: torch.Tensor | np.ndarray, path: str | os.PathLike[str], *, label: str = "student", **kwargs: Any
) -> Path:
    """Heatmap of one student's ``|diff_matrix|`` (see :func:`plot_correlation_differences` for ``kwargs``)."""
    return plot_correlation_differences({label: diff}, path, **kwargs)
