"""Settings in physical units: frozen, keyword-only, validated when made, saved as JSON.

``FeatureConfig`` holds everything that shapes what the model hears and sees (sample
rate, window length, STFT, mel filterbank, loudness scaling, image size); it travels
inside every saved model. ``TrainConfig`` holds how a model is trained.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import InvalidParameterError, parameter_error

__all__ = [
    "AGGREGATIONS",
    "AugmentConfig",
    "BACKGROUND_LABELS",
    "SCHEDULE_FIELDS",
    "FeatureConfig",
    "TrainConfig",
    "WindowRules",
    "is_background",
    "load_config",
    "save_config",
]

#: How a recording's answer is made from the scores of its chosen windows.
AGGREGATIONS = ("mean", "mean_log", "max")
#: The model rate unless a config says otherwise (Hz): the rate BirdNET and most
#: bird-song models use, enough for songs up to ~15 kHz.
DEFAULT_SAMPLE_RATE = 32000
#: Class names (case-insensitive, leading/trailing "_" ignored) that mean "no bird": a
#: softmax model trained with such a folder says so in the gaps of a long recording,
#: these classes never become detections, and a multi-label model learns them as
#: "every species absent" instead of as a class.
BACKGROUND_LABELS = frozenset({"background", "noise", "silence", "no_bird", "nocall"})


def is_background(label: str) -> bool:
    """True for a "no bird" class name such as ``_Background`` or ``noise``."""
    return label.strip("_ ").lower() in BACKGROUND_LABELS


#: Files whose names share a match are one group, kept on one side of a split: an
#: individual bird (``ind03``) or a xeno-canto catalogue number (``XC123456``, so pieces
#: cut from one recording stay together).
DEFAULT_GROUP_PATTERN = r"ind\d+|XC\d+"
#: The shortest window hop a WindowRules accepts on its own (the window length then
#: sets the real minimum, :func:`min_hop_seconds`).
MIN_HOP_SECONDS = 0.01

C = TypeVar("C")


def _check(owner: str | None, name: str, value: Any, ok: bool, requirement: str) -> None:
    """Raise the one message template used for every bad parameter."""
    if not ok:
        raise parameter_error(name, requirement, value, owner=owner)


def _number(
    owner: str | None,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
) -> None:
    kind = int if integer else (int, float)
    is_num = isinstance(value, kind) and not isinstance(value, bool)
    _check(
        owner,
        name,
        value,
        is_num and math.isfinite(value),
        "an int" if integer else "a finite number",
    )
    if low is not None:
        if low_open:
            _check(owner, name, value, value > low, f"> {low}")
        else:
            _check(owner, name, value, value >= low, f">= {low}")
    if high is not None:
        _check(owner, name, value, value <= high, f"<= {high}")


@dataclass(frozen=True, kw_only=True)
class FeatureConfig:
    """How a waveform window becomes the image the network sees.

    Loudness: mel power is in dB relative to full scale (a full-scale sine reads about
    0 dB in its band). Each window is shown relative to its own loudest bin, but that
    reference never drops below ``min_reference_db``: a quiet or silent window stays
    dark instead of being stretched to full contrast. Values ``db_range`` dB below the
    reference map to -1, the reference maps to +1 (MobileNetV2's input range).

    ``band_floor_percentile`` (0 = off): before that, each mel band of the window is
    shifted by its own background level (this percentile of the band's values over
    time) less the mean of those levels over the bands, so a steady background (coloured
    noise, a recorder's tilt and resonances, hum) comes out flat while the overall level,
    and anything that varies in time, such as song, is kept.
    """

    sample_rate: int = DEFAULT_SAMPLE_RATE
    clip_seconds: float = 3.0
    n_fft: int = 1024
    stft_hop_seconds: float = 0.0125
    n_mels: int = 128
    fmin: float = 50.0
    fmax: float | None = None  # None: min(15000, sample_rate / 2)
    db_range: float = 80.0
    min_reference_db: float = -50.0
    # ImageNet's 224 px, not 128: over seven seeds of the hard field set the recipe made
    # 6 errors in 756 test recordings where 128 px made 17 (benchmarks/README, "Image
    # size"); 128 px runs a window 2.3x faster (benchmarks/speed.py) for users who need it
    image_size: int = 224
    band_floor_percentile: float = 0.0

    def __post_init__(self) -> None:
        own = "FeatureConfig"
        _number(own, "sample_rate", self.sample_rate, low=4000, high=384000, integer=True)
        _number(own, "clip_seconds", self.clip_seconds, low=0.1, high=60.0)
        _number(own, "n_fft", self.n_fft, low=64, high=16384, integer=True)
        _check(own, "n_fft", self.n_fft, self.n_fft & (self.n_fft - 1) == 0, "a power of two")
        _check(
            own,
            "n_fft",
            self.n_fft,
            self.n_fft <= self.num_samples,
            f"<= the samples in one clip ({self.num_samples})",
        )
        _number(own, "stft_hop_seconds", self.stft_hop_seconds, low=0.0, low_open=True)
        _check(
            own,
            "stft_hop_seconds",
            self.stft_hop_seconds,
            self.hop_length >= 1,
            "at least one sample long",
        )
        _number(own, "n_mels", self.n_mels, low=8, high=512, integer=True)
        _number(own, "fmin", self.fmin, low=0.0)
        if self.fmax is None:
            object.__setattr__(self, "fmax", min(15000.0, self.sample_rate / 2))
        _number(own, "fmax", self.fmax, low=0.0, low_open=True)
        _check(
            own,
            "fmax",
            self.fmax,
            self.fmax <= self.sample_rate / 2,
            f"<= sample_rate/2 ({self.sample_rate / 2:g})",
        )
        _check(own, "fmin", self.fmin, self.fmin < self.fmax, f"< fmax ({self.fmax:g})")
        _number(own, "db_range", self.db_range, low=10.0, high=200.0)
        _number(own, "min_reference_db", self.min_reference_db, low=-200.0, high=20.0)
        _number(own, "image_size", self.image_size, low=32, high=1024, integer=True)
        _number(own, "band_floor_percentile", self.band_floor_percentile, low=0.0, high=100.0)

    @property
    def num_samples(self) -> int:
        """Samples in one window (``clip_seconds * sample_rate``)."""
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def hop_length(self) -> int:
        """STFT hop in samples."""
        return int(round(self.stft_hop_seconds * self.sample_rate))

    @property
    def num_frames(self) -> int:
        """STFT frames in one window (no centre padding)."""
        return 1 + (self.num_samples - self.n_fft) // self.hop_length

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The frontend's image (one channel: the model folds RGB into its first conv)."""
        return (self.image_size, self.image_size, 1)


def min_hop_seconds(clip_seconds: float) -> float:
    """The shortest window hop accepted for windows of ``clip_seconds``: 1/20 of a
    window (95 % overlap). Shorter hops give near copies that only
    cost time (a 3-s model at overlap 2.999 s would cut 57,000 windows from a minute)."""
    return clip_seconds / 20


def check_hop(
    hop_seconds: Any, clip_seconds: float, *, name: str = "hop_seconds", owner: str | None = None
) -> float:
    """A window hop in seconds: a number in [min_hop_seconds(clip), clip_seconds].

    ``name`` is the parameter the caller knows (``overlap`` in ``predict``, where the
    hop is ``clip_seconds - overlap``)."""
    low = min_hop_seconds(clip_seconds)
    _number(owner, name, hop_seconds, low=0.0, low_open=True)
    _check(
        owner,
        name,
        hop_seconds,
        low - 1e-9 <= hop_seconds <= clip_seconds + 1e-9,
        f"between {low:g} and the window length {clip_seconds:g} s",
    )
    return float(hop_seconds)


@dataclass(frozen=True, kw_only=True)
class WindowRules:
    """How a recording is cut into windows, which windows count, and how their scores
    become the recording's answer. Decided once, saved with every model (its own block in
    the ``.tflite`` metadata) and applied by :func:`birdsong.rules.recording_scores` in
    training, evaluation and prediction alike, so the number in a report is the number a
    user gets.

    Parameters
    ----------
    hop_seconds : float or None
        When a recording is scored (the training report, ``evaluate``, ``predict``),
        windows of the model's ``clip_seconds`` start every ``hop_seconds``; ``None``: a
        quarter of a window (0.75 s for 3-s windows). Training cuts its own windows every
        :attr:`TrainConfig.train_hop_seconds` (half a window): scoring each recording at
        twice as many shifted windows as training gained 0.7 points on the field
        benchmark, while training on them did not help (``benchmarks/README.md``).
    min_activity : float
        Windows whose activity (share of 25-ms frames 10 dB above the recording's noise
        floor, see :func:`birdsong.audio.activity`) reaches this are "windows with sound".
        The noise floor is taken over the whole recording. When no window qualifies, the
        most active one is used.
    max_windows : int
        At most this many of the most active windows count (training learns from them;
        evaluation and prediction aggregate them).
    aggregation : {"mean", "mean_log", "max"}
        The recording's scores: the mean of the chosen windows' scores, the normalised
        geometric mean (mean log-probability), or the maximum per species.
    """

    hop_seconds: float | None = None
    min_activity: float = 0.2
    max_windows: int = 20
    aggregation: str = "mean"

    def __post_init__(self) -> None:
        own = "WindowRules"
        if self.hop_seconds is not None:
            _number(own, "hop_seconds", self.hop_seconds, low=MIN_HOP_SECONDS)
        _number(own, "min_activity", self.min_activity, low=0.0, high=1.0)
        _number(own, "max_windows", self.max_windows, low=1, high=100_000, integer=True)
        _check(
            own,
            "aggregation",
            self.aggregation,
            self.aggregation in AGGREGATIONS,
            f"one of {', '.join(AGGREGATIONS)}",
        )

    def for_clip(self, clip_seconds: float) -> WindowRules:
        """These rules with the hop resolved for windows of ``clip_seconds``."""
        if self.hop_seconds is not None:
            return self
        return dataclasses.replace(self, hop_seconds=round(clip_seconds / 4, 6))


def _range(owner, name: str, unit: str, *, positive: bool = False) -> None:
    """Check a ``(low, high)`` field of a frozen config and store it as two floats."""
    pair = getattr(owner, name)
    _check(
        type(owner).__name__,
        name,
        pair,
        isinstance(pair, (tuple, list))
        and len(pair) == 2
        and all(isinstance(v, (int, float)) and (v > 0 or not positive) for v in pair)
        and pair[0] <= pair[1],
        f"a (low, high) pair of {unit} with {'0 < ' if positive else ''}low <= high",
    )
    object.__setattr__(owner, name, (float(pair[0]), float(pair[1])))


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """Training-time augmentation; each part can be switched off with 0.

    ``band_limit_probability``: the share of training windows low-passed (a brick wall,
    as a resampler leaves it) at a cutoff drawn uniformly from ``band_limit_hz``. A
    recording made at 22.05 kHz has nothing above 11 kHz; where one species comes mostly
    from such recordings, a model could learn the empty band instead of the song. Seeing
    every species with and without its top band takes that shortcut away.

    ``overlay_probability``: the share of training windows into which another window of
    the same batch (usually another species) is mixed, ``overlay_db`` (low, high) dB
    under it by RMS. The window keeps its own label (a multi-label model gets both
    species): field recordings often hold a quieter second species. Unlike mixup, which
    blends two windows into a soft label, the bird in front stays the answer. Left at
    ``None``, :class:`TrainConfig` makes it 0.5 for a multi-label model and 0 for a
    softmax one. Multi-label models trained on folder recordings of one species each
    missed most songs that another species sang over; with overlays, event F1 on the
    demo soundscapes went from 0.61 to 0.75 from scratch and from 0.68 to 0.71
    pretrained (seeds 0-2, better in 5 of 6 runs; ``benchmarks/README.md``, "Finding
    songs in soundscapes"). For a softmax model, on the field benchmark, it did not
    help.

    ``speed_perturbation``: each training window is resampled about its centre by a
    factor drawn uniformly from 1 +- this fraction, which moves every frequency by that
    factor and the tempo with it (speech's speed perturbation). One bird of a species
    sings a few per cent higher or faster than another; with one or three recordings of
    a species, the model otherwise learns that bird's pitch. Off by default: at 0.1 on
    the field benchmark it moved nothing beyond the noise with 1 or 3 recordings per
    species (``benchmarks/README.md``), where the species differ partly by pitch.
    """

    time_shift_seconds: float = 0.5
    gain_db: float = 6.0
    noise_probability: float = 0.5
    noise_snr_db: tuple[float, float] = (10.0, 40.0)
    freq_masks: int = 1
    freq_mask_fraction: float = 0.05
    time_masks: int = 2
    time_mask_fraction: float = 0.1
    mixup_alpha: float = 0.0
    band_limit_probability: float = 0.25
    band_limit_hz: tuple[float, float] = (5000.0, 15000.0)
    overlay_probability: float | None = None
    overlay_db: tuple[float, float] = (4.0, 14.0)
    speed_perturbation: float = 0.0

    def __post_init__(self) -> None:
        own = "AugmentConfig"
        _number(own, "time_shift_seconds", self.time_shift_seconds, low=0.0)
        _number(own, "gain_db", self.gain_db, low=0.0, high=40.0)
        _number(own, "noise_probability", self.noise_probability, low=0.0, high=1.0)
        _range(self, "noise_snr_db", "dB values")
        for name in ("freq_masks", "time_masks"):
            _number(own, name, getattr(self, name), low=0, high=10, integer=True)
        for name in ("freq_mask_fraction", "time_mask_fraction"):
            _number(own, name, getattr(self, name), low=0.0, high=0.5)
        _number(own, "mixup_alpha", self.mixup_alpha, low=0.0, high=10.0)
        _number(own, "band_limit_probability", self.band_limit_probability, low=0.0, high=1.0)
        _range(self, "band_limit_hz", "frequencies in Hz", positive=True)
        if self.overlay_probability is not None:
            _number(own, "overlay_probability", self.overlay_probability, low=0.0, high=1.0)
        _range(self, "overlay_db", "dB values")
        _number(own, "speed_perturbation", self.speed_perturbation, low=0.0, high=0.5)

    @classmethod
    def off(cls) -> AugmentConfig:
        """No augmentation at all."""
        return cls(
            time_shift_seconds=0.0,
            gain_db=0.0,
            noise_probability=0.0,
            freq_masks=0,
            time_masks=0,
            mixup_alpha=0.0,
            band_limit_probability=0.0,
            overlay_probability=0.0,
            speed_perturbation=0.0,
        )


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How a classifier is trained: data selection, model, both phases, augmentation.

    ``target_precision``: after training, each species' detection threshold is chosen
    on the validation windows to maximise F1 (``None``) or as the lowest threshold that
    reaches this precision; the thresholds travel inside the exported model.

    ``validation_fraction`` of each species' recordings, in whole groups (birds, or
    recordings where the file names name no bird), are held out for early stopping,
    thresholds and the report; a species with fewer than ``validation_min_groups``
    groups trains on all of them instead. With 3 recordings per species holding one bird
    out cost 15 points on the field benchmark (0.51 vs 0.66 per-recording top-1); with
    no validation at all, both phases run their epochs and keep the lowest training loss.

    ``train_hop_seconds``: training cuts each recording into windows this far apart
    (``None``: half a window, 1.5 s for 3-s windows) and learns from the most active
    ``windows.max_windows`` of them; a recording is scored at ``windows.hop_seconds``
    (a quarter window by default). Halving the training hop as well gave 0.935 instead
    of 0.981 on one seed of the field benchmark, at 70 % more training time.

    ``multi_label``: one sigmoid per species and binary cross-entropy, so that several
    species in one window can all score high and a window with none scores low
    everywhere; "no bird" folders (``_Background``) are then no class but recordings in
    which every species is absent. Otherwise one softmax over the classes.

    The schedule fields left at ``None`` (``epochs_frozen``, ``frozen_patience``,
    ``epochs_finetune``, ``finetune_learning_rate``, ``patience``,
    ``finetune_average_epochs``) are filled in to fit
    the weights: with a pretrained backbone the head trains on cached features until its
    validation loss has not improved for 10 epochs (at most 100; an epoch there costs
    milliseconds, and a head stopped at 10 epochs was measurably under-trained, see
    ``benchmarks/README.md``), then up to 15 fine-tuning epochs at 1e-4, patience 4 (on
    the field benchmark 1e-4 gave 0.96 per-recording top-1 where 1e-5 gave 0.91); from
    scratch (``weights=None``) there is nothing worth freezing, so
    no frozen phase and up to 60 epochs of the whole network at 2e-3, patience 12 (the
    schedule that learns on the demo data). The saved ``config.json`` holds the values
    used.

    ``finetune_average_epochs``: when above 0, phase 2 keeps an exponential moving
    average of the weights over about that many epochs' steps, and validates, stops
    early and saves on the average instead of the last step's weights (0: off). Left at
    ``None`` it is 1 epoch with a pretrained backbone (on the field benchmark 0.981
    per-recording top-1 against 0.972 without; phase 2's validation loss no longer
    jumps between epochs) and off from scratch (not measured there).

    ``min_epoch_windows``: a fine-tuning epoch passes over the training windows as many
    times as it takes to see at least this many (each pass augmented anew), so that a
    tiny dataset (one recording per species: some 50 windows, two steps) still gets
    enough steps per epoch for the moving average, early stopping and augmentation to
    work on; 0 is one pass. Left at ``None`` it is 512 with a pretrained backbone (on
    the field benchmark, seeds 0-2: 1 recording per species 0.410 -> 0.537, 3 recordings
    0.840 -> 0.914, better on every seed; the full set, some 1,200 windows, is
    untouched) and 0 from scratch (not measured there).
    """

    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    windows: WindowRules = field(default_factory=WindowRules)
    train_hop_seconds: float | None = None
    # data
    validation_fraction: float = 0.2
    validation_min_groups: int = 4
    group_pattern: str | None = DEFAULT_GROUP_PATTERN
    class_weighting: bool = True
    # model
    multi_label: bool = False
    alpha: float = 1.0
    weights: str | None = "imagenet"
    dropout: float = 0.2
    # training
    epochs_frozen: int | None = None
    frozen_patience: int | None = None
    epochs_finetune: int | None = None
    batch_size: int = 32
    learning_rate: float = 1e-3
    finetune_learning_rate: float | None = None
    finetune_schedule: str = "constant"
    finetune_average_epochs: float | None = None
    min_epoch_windows: int | None = None
    fine_tune_from: str = "auto"
    patience: int | None = None
    label_smoothing: float = 0.0
    target_precision: float | None = None
    seed: int = 0

    @property
    def training_windows(self) -> WindowRules:
        """The rules training cuts and chooses its windows by: the model's rules with
        windows every ``train_hop_seconds``."""
        return dataclasses.replace(self.windows, hop_seconds=self.train_hop_seconds)

    def finetune_rate(self, epoch: int) -> float:
        """The fine-tuning learning rate of ``epoch`` (0-based) under the schedule."""
        rate = self.finetune_learning_rate
        if self.finetune_schedule == "cosine" and self.epochs_finetune > 1:
            rate *= 0.5 * (1.0 + math.cos(math.pi * epoch / self.epochs_finetune))
        return float(rate)

    @property
    def pretrained(self) -> bool:
        """True when the backbone starts from trained weights (ImageNet or a file)."""
        return self.weights is not None

    def __post_init__(self) -> None:
        own = "TrainConfig"
        _check(
            own,
            "features",
            self.features,
            isinstance(self.features, FeatureConfig),
            "a FeatureConfig",
        )
        _check(
            own,
            "augment",
            self.augment,
            isinstance(self.augment, AugmentConfig),
            "an AugmentConfig",
        )
        _check(own, "windows", self.windows, isinstance(self.windows, WindowRules), "a WindowRules")
        _check(
            own,
            "multi_label",
            self.multi_label,
            isinstance(self.multi_label, bool),
            "True or False",
        )
        if self.augment.overlay_probability is None:  # overlays teach two species at once
            overlay = MULTI_LABEL_OVERLAY if self.multi_label else 0.0
            object.__setattr__(
                self, "augment", dataclasses.replace(self.augment, overlay_probability=overlay)
            )
        clip = self.features.clip_seconds
        object.__setattr__(self, "windows", self.windows.for_clip(clip))
        check_hop(self.windows.hop_seconds, clip, name="windows.hop_seconds", owner=own)
        if self.train_hop_seconds is None:
            object.__setattr__(self, "train_hop_seconds", round(clip / 2, 6))
        check_hop(self.train_hop_seconds, clip, name="train_hop_seconds", owner=own)
        _number(own, "validation_fraction", self.validation_fraction, low=0.0, high=0.9)
        _number(
            own, "validation_min_groups", self.validation_min_groups, low=2, high=1000, integer=True
        )
        if self.group_pattern is not None:
            import re

            try:
                re.compile(self.group_pattern)
            except (re.error, TypeError):
                _check(own, "group_pattern", self.group_pattern, False, "a regular expression")
        _check(
            own,
            "alpha",
            self.alpha,
            self.alpha in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4),
            "one of 0.35, 0.5, 0.75, 1.0, 1.3, 1.4",
        )
        if isinstance(self.weights, str) and self.weights.strip().lower() in ("none", "", "random"):
            object.__setattr__(self, "weights", None)  # "random" is no pretraining either
        _check(
            own,
            "weights",
            self.weights,
            self.weights is None or isinstance(self.weights, str),
            "'imagenet', None or a path to a weights file",
        )
        _number(own, "dropout", self.dropout, low=0.0, high=0.9)
        for name, value in _schedule(self.weights is not None).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        _number(own, "epochs_frozen", self.epochs_frozen, low=0, integer=True)
        _number(own, "frozen_patience", self.frozen_patience, low=0, integer=True)
        _number(own, "epochs_finetune", self.epochs_finetune, low=0, integer=True)
        _number(own, "batch_size", self.batch_size, low=1, high=4096, integer=True)
        _number(own, "learning_rate", self.learning_rate, low=0.0, low_open=True, high=1.0)
        _number(
            own,
            "finetune_learning_rate",
            self.finetune_learning_rate,
            low=0.0,
            low_open=True,
            high=1.0,
        )
        _check(
            own,
            "finetune_schedule",
            self.finetune_schedule,
            self.finetune_schedule in FINETUNE_SCHEDULES,
            " or ".join(map(repr, FINETUNE_SCHEDULES)),
        )
        _check(
            own,
            "fine_tune_from",
            self.fine_tune_from,
            isinstance(self.fine_tune_from, str) and bool(self.fine_tune_from),
            "'auto' or the name of a MobileNetV2 layer",
        )
        _number(own, "patience", self.patience, low=0, integer=True)
        _number(own, "finetune_average_epochs", self.finetune_average_epochs, low=0.0, high=100.0)
        _number(own, "min_epoch_windows", self.min_epoch_windows, low=0, integer=True)
        _number(own, "label_smoothing", self.label_smoothing, low=0.0, high=0.5)
        if self.target_precision is not None:
            _number(
                own, "target_precision", self.target_precision, low=0.0, low_open=True, high=1.0
            )
        _number(own, "seed", self.seed, low=0, integer=True)
        _check(
            own,
            "epochs_frozen + epochs_finetune",
            self.epochs_frozen + self.epochs_finetune,
            self.epochs_frozen + self.epochs_finetune > 0,
            "> 0",
        )


#: ``AugmentConfig.overlay_probability`` of a multi-label model when left at ``None``.
MULTI_LABEL_OVERLAY = 0.5

#: How the fine-tuning learning rate moves over ``epochs_finetune``: held, or cosine
#: decay from ``finetune_learning_rate`` towards 0 (set at the start of each epoch).
FINETUNE_SCHEDULES = ("constant", "cosine")


def _schedule(pretrained: bool) -> dict[str, Any]:
    """The schedule that fits the weights (see :class:`TrainConfig`)."""
    if pretrained:
        return {
            "epochs_frozen": 100,
            "frozen_patience": 10,
            "epochs_finetune": 15,
            "finetune_learning_rate": 1e-4,
            "finetune_average_epochs": 1.0,
            "min_epoch_windows": 512,
            "patience": 4,
        }
    return {
        "epochs_frozen": 0,
        "frozen_patience": 10,
        "epochs_finetune": 60,
        "finetune_learning_rate": 2e-3,
        "finetune_average_epochs": 0.0,
        "min_epoch_windows": 0,
        "patience": 12,
    }


#: The TrainConfig fields that follow the weights when left at ``None``.
SCHEDULE_FIELDS = tuple(_schedule(True))

_NESTED: dict[str, type] = {
    "features": FeatureConfig,
    "augment": AugmentConfig,
    "windows": WindowRules,
}
#: Settings of birdsong 0.1 that moved into ``TrainConfig.windows`` (old run directories
#: and old ``.tflite`` metadata still load).
_MOVED = {
    "window_hop_seconds": "hop_seconds",
    "max_windows_per_recording": "max_windows",
    "min_activity": "min_activity",
}


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (nested configs included)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
    """Build ``cls`` from a dict, rejecting unknown keys by name."""
    if not isinstance(data, Mapping):
        raise InvalidParameterError(
            f"A {cls.__name__} must be read from a JSON object. Got {type(data).__name__}."
        )
    names = {f.name for f in dataclasses.fields(cls)}
    if cls is TrainConfig and any(k in data for k in _MOVED):
        data = dict(data)
        windows = dict(data.get("windows") or {})
        for old, new in _MOVED.items():
            if old in data:
                windows.setdefault(new, data.pop(old))
        data["windows"] = windows
    unknown = sorted(set(data) - names)
    if unknown:
        raise InvalidParameterError(
            f"Unknown {cls.__name__} setting(s): {', '.join(map(repr, unknown))}. "
            f"Known settings: {', '.join(sorted(names))}."
        )
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in data.items():
        nested = _NESTED.get(key)
        if nested is not None and hints.get(key) is nested and isinstance(value, Mapping):
            value = from_dict(nested, value)
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return cls(**values)


def save_config(config: Any, path: str | os.PathLike) -> Path:
    """Write a config as indented JSON (atomically) and return the path."""
    from ._io import atomic_write_text

    return atomic_write_text(path, json.dumps(to_dict(config), indent=2) + "\n")


def saved_rules_hop(data: Mapping[str, Any]) -> Any:
    """The window hop a saved ``TrainConfig`` (as JSON data) names, ``None`` if none.
    Before ``train_hop_seconds`` existed, training cut its windows at this hop too (0.1
    kept it at the top level as ``window_hop_seconds``, later releases in ``windows``)."""
    windows = data.get("windows")
    if isinstance(windows, Mapping) and windows.get("hop_seconds") is not None:
        return windows["hop_seconds"]
    return data.get("window_hop_seconds")


def load_config(
    cls: type[C], path: str | os.PathLike, *, missing: Mapping[str, Any] | None = None
) -> C:
    """Read a config of class ``cls`` from a JSON file; fields the file lacks take their
    value from ``missing`` where it names them (a callable there is given the file's
    settings and returns the value; ``"augment.name"`` names a field of a nested
    config the file holds), else the class default."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise InvalidParameterError(f"Cannot read {cls.__name__} from {p}: {exc}") from exc
    if missing and isinstance(data, dict):
        data = dict(data)
        for key, value in missing.items():
            *outer, name = key.split(".")
            holder = data
            for part in outer:
                holder = holder.get(part) if isinstance(holder, dict) else None
            if isinstance(holder, dict) and name not in holder:
                holder[name] = value(data) if callable(value) else value
    return from_dict(cls, data)
