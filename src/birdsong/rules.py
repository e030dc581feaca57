"""The rules a model runs by: which windows of a recording count, and how their scores
become the recording's answer.

One implementation, used by training (which windows to learn from), evaluation and
:class:`~birdsong.inference.Classifier` alike, with the :class:`~birdsong.config.WindowRules`
saved inside every model. Light tier: numpy and :mod:`birdsong.audio` only.

A recording is scanned once (:func:`scan_recording`): windows of ``clip_seconds`` every
``hop_seconds``, each scored by the model and given the energy of its 25-ms frames. Only
when the whole recording has been read is the noise floor known (the 20th percentile of
every frame), and with it each window's activity, so the answer does not depend on how
many windows were scored at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from .audio import (
    MAX_ABS_SAMPLE,
    Window,
    activity_from_energy,
    check_sample_rate,
    frame,
    frame_energy_db,
    resample,
    stream_windows,
)
from .config import FeatureConfig, WindowRules, is_background
from .errors import InvalidParameterError, parameter_error

__all__ = [
    "ScannedRecording",
    "aggregate",
    "choose_windows",
    "detect_events",
    "iter_windows",
    "recording_scores",
    "scan_recording",
]

Source = str | os.PathLike | BinaryIO | np.ndarray
Scorer = Callable[[np.ndarray], np.ndarray]


def choose_windows(activity: np.ndarray, rules: WindowRules) -> np.ndarray:
    """Indices (in time order) of the windows that count.

    Windows whose activity reaches ``rules.min_activity``, at most ``rules.max_windows``
    of them, the most active first; when none qualifies, the single most active window
    (a short clip that is all song still counts).
    """
    act = np.asarray(activity, dtype=np.float64).reshape(-1)
    if act.size == 0:
        raise InvalidParameterError(
            "The 'activity' parameter must hold at least one window. Got none instead."
        )
    order = np.argsort(-act, kind="stable")
    keep = order[act[order] >= rules.min_activity][: rules.max_windows]
    if keep.size == 0:
        keep = order[:1]
    return np.sort(keep)


def aggregate(scores: np.ndarray, rules: WindowRules, *, exclusive: bool = True) -> np.ndarray:
    """A recording's scores from its chosen windows' scores ``(n, n_classes)``.

    ``mean``: the mean score; ``mean_log``: the geometric mean (mean log-probability),
    renormalised to sum to 1 when the classes are ``exclusive`` (softmax);
    ``max``: each class's highest window score.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] == 0:
        raise parameter_error("scores", "an array of shape (n >= 1, n_classes)", s.shape)
    if rules.aggregation == "mean":
        return s.mean(axis=0)
    if rules.aggregation == "max":
        return s.max(axis=0)
    g = np.exp(np.log(np.clip(s, 1e-7, 1.0)).mean(axis=0))
    return g / g.sum() if exclusive else g


@dataclass(frozen=True)
class ScannedRecording:
    """Every window of one recording, scored.

    Attributes
    ----------
    starts, ends : np.ndarray [shape=(n,)]
        Window start and end in seconds (the last end is clipped to the recording).
    scores : np.ndarray [shape=(n, n_classes)]
    activity : np.ndarray [shape=(n,)]
        Share of each window's frames 10 dB above the whole recording's noise floor.
    """

    starts: np.ndarray
    ends: np.ndarray
    scores: np.ndarray
    activity: np.ndarray

    @property
    def duration(self) -> float:
        return float(self.ends[-1]) if self.ends.size else 0.0


def recording_scores(
    scan: ScannedRecording, rules: WindowRules, *, exclusive: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The recording's scores and the indices of the windows that made them."""
    chosen = choose_windows(scan.activity, rules)
    return aggregate(scan.scores[chosen], rules, exclusive=exclusive), chosen


def _check_array(source: np.ndarray) -> np.ndarray:
    """A waveform array as float32: (n,) or (n, channels)/(channels, n), finite samples."""
    if source.dtype.kind not in "biuf":
        raise InvalidParameterError(
            f"The 'source' array must hold real numbers. Got dtype {source.dtype} instead."
        )
    if source.ndim not in (1, 2) or source.size == 0:
        raise InvalidParameterError(
            "The 'source' array must be a non-empty waveform of shape "
            f"(n,) or (n, channels). Got shape {source.shape} instead."
        )
    if not np.isfinite(source).all():
        raise InvalidParameterError(
            "The 'source' array must be finite. Got NaN or infinite samples."
        )
    peak = float(np.abs(source).max())
    if peak > MAX_ABS_SAMPLE:
        raise InvalidParameterError(
            f"The 'source' array must hold audio samples (about "
            f"[-1, 1]). Got a magnitude of {peak:.3g} instead."
        )
    return np.asarray(source, np.float32)


def iter_windows(
    source: Source,
    *,
    features: FeatureConfig,
    hop_seconds: float,
    sample_rate: int | None = None,
    block_seconds: float = 10.0,
) -> Iterator[Window]:
    """The windows of a file (streamed in bounded memory) or of a waveform array
    (which needs its ``sample_rate``), at the model's rate."""
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise parameter_error("sample_rate", "given with an array source", None)
        rate = check_sample_rate(sample_rate)
        signal = _check_array(source)
        if signal.ndim == 2:
            signal = signal.mean(axis=1 if signal.shape[1] <= 8 else 0, dtype=np.float32)
        signal = resample(signal, rate, features.sample_rate)
        windows, starts = frame(
            signal,
            sample_rate=features.sample_rate,
            clip_seconds=features.clip_seconds,
            hop_seconds=hop_seconds,
        )
        total = signal.size / features.sample_rate
        for w, s in zip(windows, starts):
            yield Window(float(s), min(float(s) + features.clip_seconds, total), w)
        return
    yield from stream_windows(
        source,
        sample_rate=features.sample_rate,
        clip_seconds=features.clip_seconds,
        hop_seconds=hop_seconds,
        block_seconds=block_seconds,
    )


def scan_recording(
    source: Source,
    scorer: Scorer,
    *,
    features: FeatureConfig,
    hop_seconds: float,
    sample_rate: int | None = None,
    batch_windows: int = 8,
    block_seconds: float = 10.0,
) -> ScannedRecording:
    """Score every window of a recording with ``scorer`` and measure its activity.

    ``scorer`` maps windows ``(n, num_samples)`` to scores ``(n, n_classes)``; it is
    called with at most ``batch_windows`` windows at a time, and the result does not
    depend on that number. Memory stays bounded by ``block_seconds`` of audio plus a
    few numbers per window.
    """
    starts: list[float] = []
    ends: list[float] = []
    scores: list[np.ndarray] = []
    energy: list[np.ndarray] = []
    batch: list[Window] = []

    def flush() -> None:
        stack = np.stack([w.samples for w in batch])
        scores.append(np.asarray(scorer(stack), dtype=np.float32))
        energy.append(frame_energy_db(stack, sample_rate=features.sample_rate))
        starts.extend(w.start for w in batch)
        ends.extend(w.end for w in batch)
        batch.clear()

    for window in iter_windows(
        source,
        features=features,
        hop_seconds=hop_seconds,
        sample_rate=sample_rate,
        block_seconds=block_seconds,
    ):
        batch.append(window)
        if len(batch) == batch_windows:
            flush()
    if batch:
        flush()
    return ScannedRecording(
        np.asarray(starts),
        np.asarray(ends),
        np.concatenate(scores),
        activity_from_energy(np.concatenate(energy)),
    )


def detect_events(
    starts: np.ndarray,
    scores: np.ndarray,
    *,
    thresholds: np.ndarray,
    labels: tuple[str, ...] | list[str],
    multi_label: bool,
    clip_seconds: float,
    hop_seconds: float,
    duration: float,
) -> list[tuple[float, float, int, float]]:
    """Timed events ``(start, end, class index, best score)`` from window scores.

    A window names a species when its score reaches that species' threshold; a softmax
    model names at most one per window (its best), a multi-label model any number.
    "No bird" classes never become events. Consecutive windows naming one species merge.

    Timing: each window answers for its middle ``hop`` seconds, the part of the
    recording that is nearer its centre than any other window's (with ``hop >=
    clip_seconds``, for the whole window). An event is the union of the middles of the
    windows that name the species: windows k to m give ``start_k + (clip - hop) / 2``
    to ``start_m + (clip + hop) / 2``, a single window its middle ``hop`` seconds.
    Events touching the first or last window extend to the start or end of the
    recording.

    Why not narrower: the rule before assumed a window names a species as soon as it
    holds a song's first note and timed events by that, one hop long for a run of one
    or two windows. The demo's models seldom fire on a song's first notes, so many
    detections of the right species covered less than half of their song. On the demo
    soundscapes (``benchmarks/event_rules.py``, seeds 0-2, same windows and thresholds)
    event F1 went from 0.36 to 0.55 from scratch and from 0.18 to 0.61 pretrained.
    """
    scores = np.asarray(scores)
    active = scores >= np.asarray(thresholds)[None, :]
    if not multi_label:
        best = scores.argmax(axis=1)
        active &= np.arange(scores.shape[1])[None, :] == best[:, None]
    for i, name in enumerate(labels):
        if is_background(name):
            active[:, i] = False
    margin = max(0.0, (clip_seconds - hop_seconds) / 2)  # the part a neighbour answers for
    events: list[tuple[float, float, int, float]] = []
    for label in np.flatnonzero(active.any(axis=0)):
        on = np.concatenate([[False], active[:, label], [False]])
        edges = np.flatnonzero(on[1:] != on[:-1])
        for first, stop in zip(edges[::2], edges[1::2]):
            last = stop - 1
            start = 0.0 if first == 0 else float(starts[first]) + margin
            end = (
                duration if last == len(starts) - 1 else float(starts[last]) + clip_seconds - margin
            )
            events.append(
                (
                    min(start, duration),
                    min(end, duration),
                    int(label),
                    float(scores[first : last + 1, label].max()),
                )
            )
    return sorted(events, key=lambda e: (e[0], labels[e[2]]))
