"""Figures for run directories and reports: learning curves and confusion matrices."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._io import atomic_path
from .errors import require

__all__ = ["plot_confusion_matrix", "plot_learning_curves", "pyplot", "save_figure"]


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (no screen needed)."""
    matplotlib = require("matplotlib", purpose="draw plots and spectrogram images")
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out_png: str | os.PathLike) -> Path:
    """Save a figure atomically as PNG and close it."""
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp)
    pyplot().close(fig)
    return Path(out_png)


def plot_learning_curves(history: dict[str, list[dict[str, float]]],
                         out_png: str | os.PathLike) -> Path:
    """Accuracy and loss, training vs validation, both phases, the boundary marked."""
    plt = pyplot()
    rows = history.get("phase1", []) + history.get("phase2", [])
    boundary = len(history.get("phase1", []))
    epochs = np.arange(1, len(rows) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for ax, metric in zip(axes, ("accuracy", "loss")):
        for key, style, name in ((metric, "-o", "training"), (f"val_{metric}", "-s",
                                                               "validation")):
            values = [r.get(key, np.nan) for r in rows]
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, style, markersize=3, label=name)
        if 0 < boundary < len(rows):
            ax.axvline(boundary + 0.5, color="grey", linestyle="--", linewidth=1)
            ax.text(boundary + 0.6, ax.get_ylim()[1], " fine-tuning", va="top", fontsize=8,
                    color="grey")
        ax.set_xlabel("epoch (frozen backbone, then fine-tuning)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Learning curves")
    return save_figure(fig, out_png)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str],
                          out_png: str | os.PathLike, *, title: str = "Confusion matrix"
                          ) -> Path:
    """Row-normalised confusion matrix with counts written in the cells."""
    plt = pyplot()
    cm = np.asarray(matrix, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(labels)
    size = max(5.0, 0.55 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size), dpi=100)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true species")
    return save_figure(fig, out_png)
