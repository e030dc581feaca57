"""Per-species score thresholds chosen on validation windows (pure NumPy).

A species is reported in a window when its score is ``>= threshold``. Each threshold is
one of the species' validation scores (or the ``floor``), so the precision and recall
returned are exactly what that threshold gives on the validation windows.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import parameter_error

__all__ = ["RULES", "SIGMOID_FLOOR", "Thresholds", "apply_thresholds", "choose_thresholds"]

RULES = ("f1", "precision")

#: The lowest threshold training chooses for a sigmoid (multi-label) output: below it the
#: model says the species is more likely absent than present.
SIGMOID_FLOOR = 0.5


@dataclass(frozen=True)
class Thresholds:
    """Chosen thresholds and what they give on the validation windows.

    ``precision``/``recall``/``f1`` are NaN for species that fell back to ``default``;
    ``notes`` says, per species, why a threshold is not what the rule asked for (no
    positive windows, target precision not reached); species chosen by the rule have
    no note.
    """

    labels: tuple[str, ...]
    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    positives: np.ndarray
    rule: str
    target_precision: float | None
    notes: dict[str, str]
    floor: float | None = None

    def as_mapping(self) -> dict[str, float]:
        """``{label: threshold}``."""
        return {label: float(t) for label, t in zip(self.labels, self.thresholds, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: rule, target precision and per-species threshold, precision,
        recall, f1 (None where undefined), positives and note."""

        def num(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {
            "rule": self.rule,
            "target_precision": self.target_precision,
            "floor": self.floor,
            "per_species": {
                label: {
                    "threshold": float(self.thresholds[k]),
                    "precision": num(self.precision[k]),
                    "recall": num(self.recall[k]),
                    "f1": num(self.f1[k]),
                    "positives": int(self.positives[k]),
                    "note": self.notes.get(label),
                }
                for k, label in enumerate(self.labels)
            },
        }


def _fraction(name: str, value: object, owner: str) -> float:
    if not (
        isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= float(value) <= 1
    ):
        raise parameter_error(name, "a number in [0, 1]", value, owner=owner)
    return float(value)


def choose_thresholds(
    scores: np.ndarray,
    targets: np.ndarray,
    labels: Sequence[str],
    *,
    rule: str = "f1",
    target_precision: float = 0.9,
    default: float = 0.5,
    floor: float | None = None,
) -> Thresholds:
    """Choose a threshold per species from validation windows.

    Parameters
    ----------
    scores : numpy.ndarray [shape=(n_windows, n_species)]
        Validation scores (probabilities or any monotone score).
    targets : numpy.ndarray [shape=(n_windows, n_species)]
        Multi-hot truth (> 0.5 is positive).
    labels : sequence of str
        One name per column.
    rule : {"f1", "precision"}, default "f1"
        ``"f1"``: the threshold with the highest F1 (ties: the higher threshold).
        ``"precision"``: the lowest threshold whose precision is at least
        ``target_precision``, i.e. the most recall at that precision; where no
        threshold reaches it, the one with the highest precision (ties: the higher
        recall), with a note.
    target_precision : float, default 0.9
        Used by ``rule="precision"``.
    default : float, default 0.5
        Threshold for species without positive validation windows (noted).
    floor : float or None, default None
        No threshold below this: a species whose rule picks a lower one gets ``floor``
        instead, with the precision and recall ``floor`` gives (noted). Training passes
        0.5 for sigmoid outputs, where a score under 0.5 says the species is more likely
        absent: validation windows cut from recordings labelled by folder include
        windows without a song, and these pull the best-F1 threshold down to where the
        model fires on noise (on the demo soundscapes, seed 0, thresholds of 0.09-0.46
        for three species gave 14 of the 23 false alarms).

    Returns
    -------
    Thresholds
    """
    owner = "choose_thresholds"
    if rule not in RULES:
        raise parameter_error("rule", f"one of {RULES}", rule, owner=owner)
    target = _fraction("target_precision", target_precision, owner)
    if not (
        isinstance(default, numbers.Real)
        and not isinstance(default, bool)
        and math.isfinite(default)
    ):
        raise parameter_error("default", "a finite number", default, owner=owner)
    default = float(default)
    if floor is not None:
        if not (
            isinstance(floor, numbers.Real) and not isinstance(floor, bool) and math.isfinite(floor)
        ):
            raise parameter_error("floor", "a finite number or None", floor, owner=owner)
        floor = float(floor)
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(targets) > 0.5
    if s.ndim != 2 or s.shape != t.shape:
        raise parameter_error(
            "scores", f"a 2-D array shaped like targets {t.shape}", s.shape, owner=owner
        )
    if len(labels) != s.shape[1]:
        raise parameter_error(
            "labels", f"{s.shape[1]} names (one per score column)", len(labels), owner=owner
        )
    n = s.shape[1]
    out = {key: np.full(n, np.nan) for key in ("threshold", "precision", "recall", "f1")}
    notes: dict[str, str] = {}
    for k, label in enumerate(labels):
        positive, score = t[:, k], s[:, k]
        if not positive.any():
            out["threshold"][k] = default if floor is None else max(default, floor)
            notes[label] = (
                f"no positive validation windows; default threshold {out['threshold'][k]:g}"
            )
            continue
        order = np.argsort(-score, kind="mergesort")
        ss = score[order]
        last = np.r_[np.nonzero(np.diff(ss))[0], ss.size - 1]
        tps = np.cumsum(positive[order])[last]  # at threshold ss[last], descending
        precision = tps / (last + 1)
        recall = tps / tps[-1]
        f1 = 2 * tps / (last + 1 + tps[-1])
        if rule == "f1":
            best = int(np.flatnonzero(f1 == f1.max())[0])  # first = highest threshold
        else:
            ok = np.flatnonzero(precision >= target - 1e-12)
            if ok.size:
                best = int(ok[-1])  # lowest threshold that still reaches the target
            else:
                top = np.flatnonzero(precision == precision.max())
                best = int(top[-1])
                notes[label] = (
                    f"precision {target:g} not reached; best {precision[best]:.3g} "
                    f"at threshold {ss[last[best]]:.6g}"
                )
        out["threshold"][k] = ss[last[best]]
        out["precision"][k], out["recall"][k], out["f1"][k] = (
            precision[best],
            recall[best],
            f1[best],
        )
        if floor is not None and out["threshold"][k] < floor:
            fired = score >= floor
            tp, n_fired, n_pos = (
                int((fired & positive).sum()),
                int(fired.sum()),
                int(positive.sum()),
            )
            raised = (
                f"{'best-F1' if rule == 'f1' else 'chosen'} threshold "
                f"{out['threshold'][k]:.3g} raised to the floor {floor:g}"
            )
            notes[label] = f"{notes[label]}; {raised}" if label in notes else raised
            out["threshold"][k] = floor
            out["precision"][k] = tp / n_fired if n_fired else np.nan
            out["recall"][k] = tp / n_pos
            out["f1"][k] = 2 * tp / (n_fired + n_pos)
    return Thresholds(
        tuple(labels),
        out["threshold"],
        out["precision"],
        out["recall"],
        out["f1"],
        t.sum(axis=0).astype(np.int64),
        rule,
        target if rule == "precision" else None,
        notes,
        floor,
    )


def apply_thresholds(
    scores: np.ndarray,
    thresholds: Thresholds | Mapping[str, float] | Sequence[float] | np.ndarray,
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Boolean ``scores >= threshold`` per column.

    ``thresholds`` may be a :class:`Thresholds`, a ``{label: threshold}`` mapping (then
    ``labels`` gives the column order) or one number per column.
    """
    s = np.asarray(scores, dtype=np.float64)
    if isinstance(thresholds, Thresholds):
        values = thresholds.thresholds
    elif isinstance(thresholds, Mapping):
        if labels is None:
            raise parameter_error(
                "labels",
                "the column order when thresholds is a mapping",
                labels,
                owner="apply_thresholds",
            )
        missing = [label for label in labels if label not in thresholds]
        if missing:
            raise parameter_error(
                "thresholds", "a threshold for every label", missing, owner="apply_thresholds"
            )
        values = np.array([thresholds[label] for label in labels], dtype=np.float64)
    else:
        values = np.asarray(thresholds, dtype=np.float64)
    if values.shape != s.shape[-1:]:
        raise parameter_error(
            "thresholds",
            f"{s.shape[-1]} values (one per column)",
            values.shape,
            owner="apply_thresholds",
        )
    return s >= values
