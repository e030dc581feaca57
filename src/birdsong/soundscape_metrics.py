"""Soundscape metrics in plain NumPy: what field evaluations report.

Window metrics take multi-hot ``targets`` and ``scores`` of shape
``(n_windows, n_species)`` (any monotone score):

- average precision per species (equal to scikit-learn's ``average_precision_score``:
  the step-wise sum of precision at each distinct threshold times the recall gained);
- class-mean AP (cmAP): the mean over species with at least one positive window, as
  Perch and BirdSet report it (species without positives are skipped and listed);
- macro ROC-AUC over species with both positive and negative windows;
- precision-recall curves per species, for plotting.

Event metrics match detections ``(file, start, end, label, score)`` to annotated
selections one-to-one, greedily by descending score (see :func:`match_events`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import numpy as np

from .errors import parameter_error

__all__ = [
    "EventMatch",
    "average_precision",
    "class_mean_average_precision",
    "event_metrics",
    "macro_roc_auc",
    "match_events",
    "precision_recall_curve",
    "precision_recall_curves",
    "roc_auc",
    "soundscape_metrics",
]

OVERLAP_RULES = ("annotation", "iou")


def _binary(targets: np.ndarray, scores: np.ndarray, owner: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(targets).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if t.shape != s.shape:
        raise parameter_error("scores", f"the shape of targets {t.shape}", s.shape, owner=owner)
    return t > 0.5, s


def _matrix(targets: np.ndarray, scores: np.ndarray, owner: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(targets)
    s = np.asarray(scores, dtype=np.float64)
    if t.ndim != 2 or t.shape != s.shape:
        raise parameter_error(
            "scores", f"a 2-D array shaped like targets {t.shape}", s.shape, owner=owner
        )
    return t > 0.5, s


def _counts(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True/false positives at each distinct threshold, from the highest score down."""
    order = np.argsort(-score, kind="mergesort")
    s, y = score[order], positive[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    return tps, (last + 1) - tps, s[last]


def precision_recall_curve(
    targets: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall when predicting ``score >= threshold``, one species.

    Returns ``(precision, recall, thresholds)`` as scikit-learn does: thresholds
    increasing (the distinct scores), precision and recall one longer, ending at
    ``(1, 0)``. Recall is NaN throughout when there are no positives.
    """
    positive, score = _binary(targets, scores, "precision_recall_curve")
    if not score.size:
        return np.ones(1), np.zeros(1), np.zeros(0)
    tps, fps, thresholds = _counts(positive, score)
    precision = tps / (tps + fps)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tps / tps[-1] if tps[-1] else np.full(tps.shape, np.nan)
    return (np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1])


def average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one species; NaN without positive windows."""
    positive, score = _binary(targets, scores, "average_precision")
    if not positive.any():
        return float("nan")
    tps, fps, _ = _counts(positive, score)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * tps / (tps + fps)))


def roc_auc(targets: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC of one species (Mann-Whitney, ties count half); NaN unless the windows
    hold both positives and negatives."""
    positive, score = _binary(targets, scores, "roc_auc")
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based, ties averaged
    ranks = average_rank[inverse.reshape(-1)]
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def class_mean_average_precision(
    targets: np.ndarray, scores: np.ndarray
) -> tuple[float, np.ndarray]:
    """cmAP: mean AP over species with a positive window. Returns ``(cmap, per_species)``
    with NaN for the species skipped (and NaN overall when all are)."""
    t, s = _matrix(targets, scores, "class_mean_average_precision")
    per = np.array([average_precision(t[:, k], s[:, k]) for k in range(t.shape[1])])
    valid = per[~np.isnan(per)]
    return (float(valid.mean()) if valid.size else float("nan")), per


def macro_roc_auc(targets: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean ROC-AUC over species with positive and negative windows; ``(macro, per)``."""
    t, s = _matrix(targets, scores, "macro_roc_auc")
    per = np.array([roc_auc(t[:, k], s[:, k]) for k in range(t.shape[1])])
    valid = per[~np.isnan(per)]
    return (float(valid.mean()) if valid.size else float("nan")), per


def precision_recall_curves(
    targets: np.ndarray, scores: np.ndarray, labels: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per species: ``precision``, ``recall``, ``thresholds`` (lists) and ``ap``, ready to
    plot or save as JSON; species without positives have ``ap`` None."""
    t, s = _matrix(targets, scores, "precision_recall_curves")
    _labels(labels, t.shape[1], "precision_recall_curves")
    out: dict[str, dict[str, Any]] = {}
    for k, label in enumerate(labels):
        precision, recall, thresholds = precision_recall_curve(t[:, k], s[:, k])
        ap = average_precision(t[:, k], s[:, k])
        out[label] = {
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "thresholds": thresholds.tolist(),
            "ap": _json(ap),
        }
    return out


def _labels(labels: Sequence[str], n: int, owner: str) -> None:
    if len(labels) != n:
        raise parameter_error(
            "labels", f"{n} names (one per score column)", len(labels), owner=owner
        )


def _json(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def soundscape_metrics(
    targets: np.ndarray, scores: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """Window-level soundscape metrics as a JSON-ready dict.

    Keys: ``n_windows``, ``cmap``, ``macro_roc_auc``, ``per_species`` (``ap``,
    ``roc_auc``, ``positives``; None where undefined), ``skipped_for_cmap`` (species
    without positive windows) and ``labels``.
    """
    t, s = _matrix(targets, scores, "soundscape_metrics")
    _labels(labels, t.shape[1], "soundscape_metrics")
    cmap, ap = class_mean_average_precision(t, s)
    macro, auc = macro_roc_auc(t, s)
    positives = t.sum(axis=0)
    return {
        "n_windows": int(t.shape[0]),
        "cmap": _json(cmap),
        "macro_roc_auc": _json(macro),
        "per_species": {
            label: {"ap": _json(ap[k]), "roc_auc": _json(auc[k]), "positives": int(positives[k])}
            for k, label in enumerate(labels)
        },
        "skipped_for_cmap": [label for k, label in enumerate(labels) if positives[k] == 0],
        "labels": list(labels),
    }


# --------------------------------------------------------------------------- event level
@dataclass(frozen=True)
class EventMatch:
    """Result of :func:`match_events`.

    ``pairs`` holds ``(detection index, annotation index)`` of each true positive;
    ``false_positives``/``false_negatives`` the unmatched detection/annotation indices.
    """

    pairs: tuple[tuple[int, int], ...]
    false_positives: tuple[int, ...]
    false_negatives: tuple[int, ...]


def _key(file: object) -> str:
    return PurePath(str(file or "").replace("\\", "/")).name


def _overlap(det: np.ndarray, ann: np.ndarray, rule: str) -> np.ndarray:
    """(n_det, n_ann) overlap fractions of ``[start, end]`` rows."""
    inter = np.clip(
        np.minimum(det[:, None, 1], ann[None, :, 1]) - np.maximum(det[:, None, 0], ann[None, :, 0]),
        0.0,
        None,
    )
    if rule == "iou":
        union = (det[:, None, 1] - det[:, None, 0]) + (ann[None, :, 1] - ann[None, :, 0]) - inter
        return inter / np.maximum(union, 1e-12)
    return inter / np.maximum(ann[None, :, 1] - ann[None, :, 0], 1e-12)


def _check_rule(min_overlap: float, overlap: str, owner: str) -> None:
    if not (isinstance(min_overlap, numbers.Real) and 0 < min_overlap <= 1):
        raise parameter_error("min_overlap", "a fraction in (0, 1]", min_overlap, owner=owner)
    if overlap not in OVERLAP_RULES:
        raise parameter_error("overlap", f"one of {OVERLAP_RULES}", overlap, owner=owner)


def match_events(
    detections: Sequence[Any],
    annotations: Sequence[Any],
    *,
    min_overlap: float = 0.5,
    overlap: str = "annotation",
) -> EventMatch:
    """Match detections to annotated selections one-to-one.

    Detections are taken in order of descending ``score`` (ties: input order); each is
    matched to the not-yet-matched selection of the same file and label that it
    overlaps most, provided the overlap is at least ``min_overlap`` (1e-9 s of
    rounding allowed), measured as:

    - ``"annotation"`` (default): the fraction of the *selection* the detection
      covers. A window-sized detection finds a short song inside it; a detection
      spanning several songs still counts once, the other songs stay missed.
    - ``"iou"``: intersection over union of the two spans (stricter on length).

    Parameters
    ----------
    detections : sequence
        Objects with ``start``, ``end``, ``label`` and ``score``, optionally ``file``
        (e.g. :class:`birdsong.inference.Detection`, or :class:`Annotation` read back
        from a Raven table with a score). Files are compared by file name (no folder);
        leave ``file`` empty on both sides for a single recording.
    annotations : sequence
        Objects with ``file``, ``start``, ``end``, ``label`` (the reference).
    min_overlap : float, default 0.5
        Fraction in (0, 1].
    overlap : {"annotation", "iou"}, default "annotation"

    Returns
    -------
    EventMatch
    """
    _check_rule(min_overlap, overlap, "match_events")
    ann = np.array([[float(a.start), float(a.end)] for a in annotations]).reshape(-1, 2)
    groups: dict[tuple[str, str], list[int]] = {}
    for j, a in enumerate(annotations):
        groups.setdefault((_key(getattr(a, "file", "")), str(a.label)), []).append(j)
    members = {key: np.array(idx, dtype=np.int64) for key, idx in groups.items()}
    scores = np.array([float(getattr(d, "score", 0.0) or 0.0) for d in detections])
    taken = np.zeros(len(ann), bool)
    pairs: list[tuple[int, int]] = []
    unmatched: list[int] = []
    for i in np.argsort(-scores, kind="mergesort").tolist():
        d = detections[i]
        idx = members.get((_key(getattr(d, "file", "")), str(d.label)))
        if idx is not None:
            idx = idx[~taken[idx]]
        if idx is not None and idx.size:
            span = np.array([[float(d.start), float(d.end)]])
            fraction = _overlap(span, ann[idx], overlap)[0]
            ok = (fraction > 0) & (fraction + 1e-9 >= min_overlap)
            if ok.any():
                j = int(idx[np.flatnonzero(ok)[np.argmax(fraction[ok])]])
                taken[j] = True
                pairs.append((i, j))
                continue
        unmatched.append(i)
    return EventMatch(
        tuple(pairs), tuple(sorted(unmatched)), tuple(int(j) for j in np.nonzero(~taken)[0])
    )


def event_metrics(
    detections: Sequence[Any],
    annotations: Sequence[Any],
    *,
    labels: Sequence[str] | None = None,
    min_overlap: float = 0.5,
    overlap: str = "annotation",
    min_score: float | None = None,
) -> dict[str, Any]:
    """Event-level precision, recall and F1 per species, and over all species (micro).

    Matching as :func:`match_events`. ``min_score`` drops detections scoring below it
    first. ``labels`` limits and orders the species reported (default: every label seen,
    sorted); detections and selections of other species are left out.

    Returns
    -------
    dict
        ``per_species``: label -> ``tp``, ``fp``, ``fn``, ``precision``, ``recall``,
        ``f1`` (None where the denominator is 0); ``overall``: the same summed over
        species; ``min_overlap`` and ``overlap``.
    """
    _check_rule(min_overlap, overlap, "event_metrics")
    dets = [d for d in detections if min_score is None or float(d.score) >= min_score]
    seen = sorted({str(x.label) for x in (*dets, *annotations)})
    names = list(labels) if labels is not None else seen
    wanted = set(names)
    dets = [d for d in dets if str(d.label) in wanted]
    anns = [a for a in annotations if str(a.label) in wanted]
    match = match_events(dets, anns, min_overlap=min_overlap, overlap=overlap)
    tp = _count((str(anns[j].label) for _, j in match.pairs), names)
    fp = _count((str(dets[i].label) for i in match.false_positives), names)
    fn = _count((str(anns[j].label) for j in match.false_negatives), names)
    per = {label: _prf(tp[label], fp[label], fn[label]) for label in names}
    overall = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return {
        "per_species": per,
        "overall": overall,
        "min_overlap": float(min_overlap),
        "overlap": overlap,
    }


def _count(items: Iterable[str], names: Sequence[str]) -> dict[str, int]:
    out = dict.fromkeys(names, 0)
    for label in items:
        out[label] += 1
    return out


def _prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}
