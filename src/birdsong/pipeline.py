"""The ``tf.data`` pipeline: decode, window, cache, shuffle, augment, batch, prefetch.

Decoding runs in parallel (``num_parallel_calls=AUTOTUNE``; libsndfile and soxr release
the GIL). Each recording yields its windows with the most sound (see
:func:`select_windows`); the decoded windows are cached (in memory, or in files under
``cache_dir``) so later epochs skip decoding. A file that fails to decode is skipped,
recorded in a :class:`SkipLog`, and yields no windows.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Sequence

import numpy as np

from .audio import activity, frame, load_audio
from .config import AugmentConfig, FeatureConfig, TrainConfig, WindowRules
from .dataset import DatasetIndex, Recording, Skipped, model_labels, target_vectors
from .errors import AudioError, require
from .rules import choose_windows

__all__ = ["SkipLog", "annotated_windows", "make_dataset", "recording_windows", "select_windows"]

log = logging.getLogger(__name__)

#: Longest stretch of one recording read for training (seconds).
MAX_TRAIN_SECONDS = 600.0


class SkipLog:
    """Thread-safe list of files skipped while the pipeline runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, str] = {}

    def add(self, path: str, reason: str) -> None:
        with self._lock:
            if path not in self._items:
                log.warning("skipped %s: %s", path, reason)
            self._items[path] = reason

    @property
    def items(self) -> list[Skipped]:
        with self._lock:
            return [Skipped(p, r) for p, r in sorted(self._items.items())]


def select_windows(
    signal: np.ndarray, *, features: FeatureConfig, rules: WindowRules
) -> np.ndarray:
    """Windows of a recording to learn from: cut every ``rules.hop_seconds`` and chosen
    by :func:`birdsong.rules.choose_windows` (the most active ones, in time order)."""
    rules = rules.for_clip(features.clip_seconds)
    windows, _ = frame(
        signal,
        sample_rate=features.sample_rate,
        clip_seconds=features.clip_seconds,
        hop_seconds=rules.hop_seconds,
    )
    scores = activity(windows, sample_rate=features.sample_rate)
    return windows[choose_windows(scores, rules)]


def recording_windows(
    path: str | os.PathLike, config: TrainConfig, *, max_windows: int | None = None
) -> np.ndarray:
    """The windows training and int8 calibration use from one recording (cut every
    ``config.train_hop_seconds``).

    Reads at most ``MAX_TRAIN_SECONDS`` at the model rate and keeps the windows
    :func:`select_windows` prefers (``max_windows`` defaults to the rules'). Raises
    :class:`~birdsong.errors.AudioError` or ``OSError`` for a file that cannot be used.
    """
    f = config.features
    signal, _ = load_audio(path, sample_rate=f.sample_rate, max_seconds=MAX_TRAIN_SECONDS)
    rules = config.training_windows
    if max_windows is not None:
        rules = dataclasses.replace(rules, max_windows=max_windows)
    return select_windows(signal, features=f, rules=rules)


def annotated_windows(
    recording: Recording,
    config: TrainConfig,
    labels: Sequence[str],
    *,
    max_windows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Windows and per-window targets of a recording labelled by an annotation table.

    Windows every ``train_hop_seconds``; each gets every species whose selection
    covers half of it or half of the selection. All windows with a species are kept
    (at most ``max_windows``), and as many "no bird" windows, the most active first
    (the hardest negatives); a partly annotated recording gives no negatives.
    """
    from .annotation_index import window_labels

    f = config.features
    rules = config.training_windows
    limit = max_windows or rules.max_windows
    signal, _ = load_audio(recording.path, sample_rate=f.sample_rate, max_seconds=MAX_TRAIN_SECONDS)
    windows, starts = frame(
        signal,
        sample_rate=f.sample_rate,
        clip_seconds=f.clip_seconds,
        hop_seconds=rules.hop_seconds,
    )
    targets = window_labels(
        recording.annotations, starts, clip_seconds=f.clip_seconds, labels=labels
    )
    positive = np.flatnonzero(targets.any(axis=1))[:limit]
    negative = np.flatnonzero(~targets.any(axis=1)) if recording.complete else np.zeros(0, int)
    if negative.size:
        act = activity(windows, sample_rate=f.sample_rate)[negative]
        negative = negative[np.argsort(-act, kind="stable")][: max(1, min(limit, positive.size))]
    keep = np.sort(np.concatenate([positive, negative]).astype(int))
    return windows[keep], targets[keep].astype(np.float32)


def _loader(
    config: TrainConfig,
    skips: SkipLog,
    max_windows: int,
    labels: Sequence[str],
    recordings: dict[str, Recording],
):
    f = config.features
    n = len(labels)

    def load(path: bytes, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        name = os.fsdecode(path)
        rec = recordings.get(name)
        try:
            if rec is not None and rec.strong:
                return annotated_windows(rec, config, labels, max_windows=max_windows)
            windows = recording_windows(name, config, max_windows=max_windows)
            return windows, np.tile(target[None], (len(windows), 1)).astype(np.float32)
        except (AudioError, OSError) as exc:
            skips.add(name, str(exc))
        except Exception as exc:  # a bad file must never stop a run: skip and report it
            skips.add(name, f"{type(exc).__name__}: {exc}")
        return np.zeros((0, f.num_samples), np.float32), np.zeros((0, n), np.float32)

    return load


def _resample_about_centre(x, spread: float, n: int):
    """``x`` (``n`` samples) read at a rate drawn from 1 +- ``spread`` about its centre,
    by linear interpolation: pitch and tempo move together; where a faster reading runs
    off either end, silence."""
    tf = require("tensorflow")
    rate = tf.random.uniform([], 1.0 - spread, 1.0 + spread)
    centre = (n - 1) / 2.0
    pos = centre + (tf.range(n, dtype=tf.float32) - centre) * rate
    inside = tf.cast((pos >= 0.0) & (pos <= n - 1.0), x.dtype)
    pos = tf.clip_by_value(pos, 0.0, n - 1.0)
    left = tf.cast(tf.floor(pos), tf.int32)
    right = tf.minimum(left + 1, n - 1)
    frac = pos - tf.floor(pos)
    a, b = tf.gather(x, left), tf.gather(x, right)
    return (a + (b - a) * frac) * inside


def _augment_fn(aug: AugmentConfig, features: FeatureConfig, seed: int):
    tf = require("tensorflow")
    n = features.num_samples
    shift = int(aug.time_shift_seconds * features.sample_rate)

    def augment(x, y, w):
        if aug.speed_perturbation > 0:
            x = _resample_about_centre(x, aug.speed_perturbation, n)
        if shift > 0:
            x = tf.roll(x, tf.random.uniform([], -shift, shift + 1, tf.int32), axis=0)
        if aug.gain_db > 0:
            x = x * tf.pow(10.0, tf.random.uniform([], -aug.gain_db, aug.gain_db) / 20.0)
        if aug.noise_probability > 0:
            rms = tf.sqrt(tf.reduce_mean(tf.square(x)) + 1e-12)
            snr = tf.random.uniform([], *aug.noise_snr_db)
            noise = tf.random.normal([n]) * rms / tf.pow(10.0, snr / 20.0)
            use = tf.cast(tf.random.uniform([]) < aug.noise_probability, tf.float32)
            x = x + use * noise
        if aug.band_limit_probability > 0:
            # a cutoff above the spectrogram's top edge would change nothing the model sees
            high = min(aug.band_limit_hz[1], features.fmax)
            cutoff = tf.random.uniform([], min(aug.band_limit_hz[0], high), high)
            spectrum = tf.signal.rfft(x)
            keep = tf.cast(
                tf.linspace(0.0, features.sample_rate / 2, n // 2 + 1) <= cutoff, tf.complex64
            )
            limited = tf.signal.irfft(spectrum * keep, fft_length=[n])
            use = tf.random.uniform([]) < aug.band_limit_probability
            x = tf.where(use, limited, x)
        return x, y, w

    return augment


def _overlay_fn(aug: AugmentConfig, *, multi_label: bool):
    """Mix another window of the batch into a share of the windows, quieter by a level
    drawn from ``aug.overlay_db``; the label stays the window's own (a multi-label
    target gains the other window's species)."""
    tf = require("tensorflow")
    low, high = aug.overlay_db

    def overlay(x, y, w):
        batch = tf.shape(x)[0]
        perm = tf.random.shuffle(tf.range(batch))
        other, other_y = tf.gather(x, perm), tf.gather(y, perm)
        rms = tf.sqrt(tf.reduce_mean(tf.square(x), axis=1, keepdims=True) + 1e-12)
        other_rms = tf.sqrt(tf.reduce_mean(tf.square(other), axis=1, keepdims=True) + 1e-12)
        level = tf.random.uniform([batch, 1], low, high)
        gain = rms / other_rms * tf.pow(10.0, -level / 20.0)
        use = tf.cast(tf.random.uniform([batch, 1]) < aug.overlay_probability, tf.float32)
        x = x + use * gain * other
        if multi_label:
            y = tf.maximum(y, use * other_y)
        return x, y, w

    return overlay


def _mixup_fn(alpha: float):
    tf = require("tensorflow")

    def mixup(x, y, w):
        a = tf.random.gamma([], alpha)
        b = tf.random.gamma([], alpha)
        lam = a / (a + b)
        perm = tf.random.shuffle(tf.range(tf.shape(x)[0]))
        return (
            lam * x + (1 - lam) * tf.gather(x, perm),
            lam * y + (1 - lam) * tf.gather(y, perm),
            lam * w + (1 - lam) * tf.gather(w, perm),
        )

    return mixup


def make_dataset(
    index: DatasetIndex,
    config: TrainConfig,
    *,
    training: bool,
    skips: SkipLog,
    class_weights: Sequence[float] | None = None,
    cache_dir: str | None = None,
    with_ids: bool = False,
    batch_size: int | None = None,
    max_windows: int | None = None,
    repeat: int = 1,
):
    """Build the ``tf.data.Dataset`` of ``(waveform, target, sample_weight)`` batches.

    ``target`` is the recording's row of :func:`~birdsong.dataset.target_vectors` over
    the model's classes (:func:`~birdsong.dataset.model_labels`): one-hot for a softmax
    model; for a multi-label model all zeros on a "no bird" recording.

    Parameters
    ----------
    training : bool
        Shuffle windows and apply waveform augmentation, overlays and mixup from
        ``config.augment``
        (SpecAugment masks are a layer inside the model, active only in training).
    class_weights : sequence of float, optional
        Per-species weight applied as the sample weight (balances unbalanced species);
        a window without any species present weighs 1.
    with_ids : bool
        Yield ``(waveform, one_hot, recording_id)`` instead, unshuffled and unaugmented:
        for evaluation and feature extraction, to aggregate windows per recording.
    repeat : int
        In training, pass over the (cached) windows this many times per iteration of
        the dataset, each pass shuffled and augmented anew.
    """
    tf = require("tensorflow", purpose="build the training pipeline")
    f = config.features
    labels = model_labels(index.labels, multi_label=config.multi_label)
    n_classes = len(labels)
    # bytes, not str: a file name that is not valid UTF-8 must reach the loader intact
    paths = [os.fsencode(r.path) for r in index.recordings]
    targets = target_vectors(index.recordings, labels).reshape(-1, len(labels))
    ids = list(range(len(paths)))
    n_classes = len(labels)
    weights = tf.constant(
        class_weights if class_weights is not None else [1.0] * n_classes, tf.float32
    )
    load = _loader(
        config,
        skips,
        max_windows or config.windows.max_windows,
        labels,
        {os.fspath(r.path): r for r in index.recordings},
    )

    def decode(path, y, rid):
        windows, targets = tf.numpy_function(
            load, [path, y], [tf.float32, tf.float32], stateful=False
        )
        windows = tf.ensure_shape(windows, [None, f.num_samples])
        targets = tf.ensure_shape(targets, [None, n_classes])
        return windows, targets, tf.fill([tf.shape(windows)[0]], rid)

    def weight(y):
        return tf.where(tf.reduce_max(y) > 0, tf.gather(weights, tf.argmax(y)), 1.0)

    ds = tf.data.Dataset.from_tensor_slices(
        (
            tf.constant(paths, tf.string),
            tf.constant(targets, tf.float32),
            tf.constant(ids, tf.int32),
        )
    )
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
    ds = ds.cache(cache_dir or "")
    batch = batch_size or config.batch_size
    if with_ids:
        return ds.batch(batch).prefetch(tf.data.AUTOTUNE)
    ds = ds.map(lambda x, y, rid: (x, y, weight(y)))
    if training:
        if repeat > 1:
            ds = ds.repeat(repeat)
        ds = ds.shuffle(4096, seed=config.seed, reshuffle_each_iteration=True)
        aug = config.augment
        ds = ds.map(_augment_fn(aug, f, config.seed), num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch)
        if (aug.overlay_probability or 0.0) > 0:  # None: a bare AugmentConfig, off
            ds = ds.map(
                _overlay_fn(aug, multi_label=config.multi_label),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        if aug.mixup_alpha > 0:
            ds = ds.map(_mixup_fn(aug.mixup_alpha), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.batch(batch)
    return ds.prefetch(tf.data.AUTOTUNE)
