"""Figures for run directories and reports: learning curves and confusion matrices.

Drawn with matplotlib's object API (``matplotlib.figure.Figure`` and the Agg canvas),
never through pyplot: the caller's backend (a notebook's inline plots, a GUI) is left
exactly as it was, and no figure lingers in pyplot's global list.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_path
from .errors import require

__all__ = [
    "new_figure",
    "plot_confusion_matrix",
    "plot_learning_curves",
    "plot_precision_recall",
    "save_figure",
]


def new_figure(*, figsize: tuple[float, float], dpi: int = 100):
    """A matplotlib ``Figure`` on its own Agg canvas (no pyplot, no global state)."""
    require("matplotlib", purpose="draw plots and spectrogram images")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, output: str | os.PathLike) -> Path:
    """Save a figure atomically as PNG."""
    fig.tight_layout()
    with atomic_path(output, suffix=".png") as tmp:
        fig.savefig(tmp)
    return Path(output)


def plot_learning_curves(
    history: dict[str, list[dict[str, float]]], out_png: str | os.PathLike
) -> Path:
    """Accuracy and loss, training vs validation, both phases, the boundary marked."""
    rows = history.get("phase1", []) + history.get("phase2", [])
    boundary = len(history.get("phase1", []))
    epochs = np.arange(1, len(rows) + 1)
    fig = new_figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    score = "accuracy" if any("accuracy" in r for r in rows) else "auc"  # multi-label: AUC
    for ax, metric in zip(axes, (score, "loss")):
        for key, style, name in ((metric, "-o", "training"), (f"val_{metric}", "-s", "validation")):
            values = [r.get(key, np.nan) for r in rows]
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, style, markersize=3, label=name)
        if 0 < boundary < len(rows):
            ax.axvline(boundary + 0.5, color="grey", linestyle="--", linewidth=1)
            ax.text(
                boundary + 0.6, ax.get_ylim()[1], " fine-tuning", va="top", fontsize=8, color="grey"
            )
        ax.set_xlabel("epoch (frozen backbone, then fine-tuning)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Learning curves")
    return save_figure(fig, out_png)


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]],
    labels: Sequence[str],
    out_png: str | os.PathLike,
    *,
    title: str = "Confusion matrix",
) -> Path:
    """Row-normalised confusion matrix with counts written in the cells."""
    cm = np.asarray(matrix, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(labels)
    size = max(5.0, 0.55 * n + 2.5)
    fig = new_figure(figsize=(size + 1, size))
    ax = fig.subplots()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    f"{int(cm[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true species")
    return save_figure(fig, out_png)


def plot_precision_recall(
    curves: dict[str, Any], thresholds: dict[str, float], output: str | os.PathLike
) -> Path:
    """One precision-recall curve per species (window level), each species' detection
    threshold marked on its curve."""
    names = list(curves)
    cols = min(4, max(1, len(names)))
    rows = max(1, int(np.ceil(len(names) / cols)))
    fig = new_figure(figsize=(3.2 * cols, 2.9 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, name in zip(axes, names):
        c = curves[name]
        precision, recall = np.asarray(c.get("precision", [])), np.asarray(c.get("recall", []))
        if precision.size:
            ax.plot(recall, precision, linewidth=1.5)
            t = np.asarray(c.get("thresholds", []))
            if t.size and name in thresholds:
                k = int(np.argmin(np.abs(t - thresholds[name])))
                ax.plot(
                    recall[k],
                    precision[k],
                    "o",
                    color="C3",
                    label=f"threshold {thresholds[name]:.2f}",
                )
                ax.legend(fontsize=7, loc="lower left")
        else:
            ax.text(0.5, 0.5, "no positive windows", ha="center", va="center", fontsize=8)
        ap = c.get("ap")
        ax.set_title(f"{name}" + (f" (AP {ap:.2f})" if isinstance(ap, float) else ""), fontsize=9)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall", fontsize=8)
        ax.set_ylabel("precision", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.axis("off")
    fig.suptitle("Precision-recall per species (windows)")
    return save_figure(fig, output)
