"""Classification metrics in plain NumPy (no scikit-learn needed).

All functions take integer true labels ``y_true`` of shape ``(n,)`` and class scores
``scores`` of shape ``(n, n_classes)`` (probabilities or any monotone score).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "classification_metrics",
    "confusion_matrix",
    "is_collapsed",
    "roc_auc_ovr",
    "top_k_accuracy",
]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of true class i predicted as j."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def top_k_accuracy(y_true: np.ndarray, scores: np.ndarray, k: int) -> float:
    if len(y_true) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(y_true)[:, None], axis=1)))


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(score.size, dtype=np.float64)
    sorted_scores = score[order]
    i = 0
    while i < score.size:  # average ranks over ties
        j = i
        while j + 1 < score.size and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_auc_ovr(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, list[float]]:
    """Macro one-vs-rest ROC-AUC over classes that have positives and negatives."""
    y_true = np.asarray(y_true, int)
    per_class = [_binary_auc(y_true == c, scores[:, c]) for c in range(scores.shape[1])]
    valid = [a for a in per_class if not np.isnan(a)]
    return (float(np.mean(valid)) if valid else float("nan")), per_class


def classification_metrics(
    y_true: Sequence[int] | np.ndarray, scores: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """Top-1 accuracy (and top-3 with more than 3 classes), macro-F1, per-species
    precision/recall/F1/support, macro ROC-AUC, the confusion matrix, and the chance
    levels to read them against (``chance_accuracy``: guessing uniformly;
    ``majority_accuracy``: always naming the commonest class), as a JSON-ready dict."""
    y_true = np.asarray(y_true, int)
    scores = np.asarray(scores, np.float64)
    n_classes = len(labels)
    y_pred = scores.argmax(axis=1) if len(y_true) else np.zeros(0, int)
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    macro_auc, auc = roc_auc_ovr(y_true, scores)
    per_species = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "roc_auc": None if np.isnan(auc[i]) else float(auc[i]),
        }
        for i, label in enumerate(labels)
    }
    out: dict[str, Any] = {
        "n": int(len(y_true)),
        "top1_accuracy": top_k_accuracy(y_true, scores, 1),
    }
    if n_classes > 3:
        out["top3_accuracy"] = top_k_accuracy(y_true, scores, 3)
    return out | {
        "chance_accuracy": 1.0 / n_classes if n_classes else float("nan"),
        "majority_accuracy": float(support.max() / support.sum())
        if support.sum()
        else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "macro_roc_auc": macro_auc,
        "per_species": per_species,
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
    }


def is_collapsed(scores: np.ndarray, *, tolerance: float = 1e-3) -> bool:
    """True when a model gives (nearly) the same output for every input: one class wins
    every window and no class's score varies by more than ``tolerance``. Such a model
    has learnt nothing, whatever its accuracy on an unbalanced set says."""
    s = np.asarray(scores, np.float64)
    if s.ndim != 2 or s.shape[0] < 2:
        return False
    same_winner = np.unique(s.argmax(axis=1)).size == 1
    return bool(same_winner and float(np.ptp(s, axis=0).max()) <= tolerance)
