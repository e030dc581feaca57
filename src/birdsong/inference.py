"""Run an exported ``.tflite`` on new recordings with the LiteRT interpreter.

Light tier: numpy, soundfile, soxr and ``ai-edge-litert`` (or ``tflite_runtime``).
TensorFlow is never imported here (an import-linter contract checks it). The model file
carries its labels, audio settings, window rules and thresholds
(:mod:`birdsong.metadata`), so ``Classifier("birds.tflite")`` needs nothing else.

A recording's answer and its timed detections follow :mod:`birdsong.rules`, the same
functions evaluation uses (see :func:`birdsong.rules.detect_events` for how detection
edges are placed: within about one hop of the truth for a model that fires as soon as
part of a song is in a window).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .audio import check_sample_rate
from .config import (
    BACKGROUND_LABELS,
    DEFAULT_SAMPLE_RATE,
    FeatureConfig,
    TrainConfig,
    WindowRules,
    check_hop,
    from_dict,
    min_hop_seconds,
    saved_rules_hop,
)
from .errors import InvalidParameterError, MissingDependencyError, ModelError, parameter_error
from .rules import ScannedRecording, detect_events, recording_scores, scan_recording

__all__ = [
    "BACKGROUND_LABELS",
    "Classifier",
    "Detection",
    "Prediction",
    "WindowScores",
    "predict",
    "resolve_model",
]

log = logging.getLogger(__name__)


def _interpreter_class():
    """LiteRT's interpreter (``ai-edge-litert``), or ``tflite_runtime`` where only that is
    installed. Never TensorFlow: the inference tier does not import it."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]

        return Interpreter
    except ImportError as exc:
        raise MissingDependencyError(
            "birdsong needs a TFLite interpreter to run models: pip install ai-edge-litert"
        ) from exc


@dataclass(frozen=True)
class Detection:
    """A stretch of a recording where one species scored at least ``min_score``."""

    start: float
    end: float
    label: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "label": self.label,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class WindowScores:
    start: float
    end: float
    scores: np.ndarray
    activity: float


@dataclass(frozen=True)
class Prediction:
    """A clip's result: the top species, every score, and per-window detail."""

    path: str | None
    label: str
    score: float
    scores: dict[str, float]
    top_k: list[tuple[str, float]]
    windows: list[WindowScores] = field(repr=False)
    detections: list[Detection]
    duration: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "label": self.label,
            "score": round(self.score, 4),
            "top_k": [[k, round(v, 4)] for k, v in self.top_k],
            "detections": [d.to_dict() for d in self.detections],
            "duration": round(self.duration, 3),
        }


class Classifier:
    """A LiteRT interpreter for one birdsong ``.tflite`` model.

    Parameters
    ----------
    model : str or Path
        An exported ``.tflite`` (or a run directory holding ``model.tflite``).
    labels : sequence of str, optional
        Needed only for a ``.tflite`` without birdsong metadata.
    sample_rate : int, optional
        Likewise, for a model without metadata (default 32000).
    num_threads : int, optional
        Interpreter threads, 1 to :func:`max_threads` (default: LiteRT's choice).
    allow_non_probabilities : bool, default False
        Every call checks that the model's outputs are probabilities in [0, 1] and
        raises :class:`ModelError` when they are not (a model ending in logits, a
        damaged one). Set this to use such scores as they are; NaN or infinite outputs
        are an error either way.

    Calls are thread-safe: one interpreter per instance, guarded by a lock. For
    parallel throughput make one ``Classifier`` per thread.
    """

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        labels: Sequence[str] | None = None,
        sample_rate: int | None = None,
        num_threads: int | None = None,
        allow_non_probabilities: bool = False,
    ) -> None:
        from .metadata import read_labels, read_metadata

        num_threads = check_num_threads(num_threads)
        if labels is not None:
            labels = _check_given_labels(labels)
        self.allow_non_probabilities = bool(allow_non_probabilities)
        path = Path(model)
        if path.is_dir():
            path = path / "model.tflite"
        if not path.exists():
            raise FileNotFoundError(f"No such model: {path}")
        if not path.is_file():
            raise ModelError(f"{path}: not a regular file")
        self.path = path
        data = path.read_bytes()
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise ModelError(
                f"{path}: not a TFLite model (no TFL3 identifier; truncated, "
                "corrupt or another format)"
            )
        if sample_rate is not None:
            check_sample_rate(sample_rate)
        self.info = None
        try:
            self.info = read_metadata(path)
        except ModelError as exc:
            # A damaged file is called damaged (this raises, naming the path) even when
            # labels are given; a sound model without metadata runs with given labels.
            read_labels(path)
            if not labels:
                raise ModelError(
                    f"{path}: this .tflite has no birdsong metadata; pass "
                    "labels=[...] (and sample_rate=) or export it with "
                    f"`birdsong export`. ({exc})"
                ) from exc
        if self.info is not None:
            self.labels = tuple(labels) if labels else self.info.labels
            settings = self.info.settings
            try:
                self.features = (
                    from_dict(FeatureConfig, settings["features"])
                    if "features" in settings
                    else _plain_features(self.info.sample_rate, self.info.num_samples)
                )
            except (InvalidParameterError, TypeError, ValueError, AttributeError, KeyError) as exc:
                raise ModelError(
                    f"{path}: the audio settings in its metadata "
                    f"('settings.features') are unusable ({exc})"
                ) from exc
        else:  # no metadata: labels given (checked above), sample rate given or 32 kHz
            self.labels = tuple(labels or ())
            self.features = None
        try:
            self._interpreter = _interpreter_class()(model_content=data, num_threads=num_threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: the interpreter cannot load this model ({exc})") from exc
        inp = self._interpreter.get_input_details()
        out = self._interpreter.get_output_details()
        if len(inp) != 1 or len(out) != 1 or len(inp[0]["shape"]) != 2:
            raise ModelError(
                f"{path}: expected one waveform input (1, samples) and one "
                f"score output; got inputs {[list(d['shape']) for d in inp]}"
            )
        self._input, self._output = inp[0], out[0]
        num_samples = int(self._input["shape"][1])
        if self.features is None:
            rate = int(sample_rate or DEFAULT_SAMPLE_RATE)
            try:
                self.features = _plain_features(rate, num_samples)
            except InvalidParameterError as exc:
                raise ModelError(
                    f"{path}: an input of {num_samples} samples at {rate} Hz is "
                    f"not a usable audio window ({exc}); pass the model's "
                    "sample_rate="
                ) from exc
        if self.features.num_samples != num_samples:
            raise ModelError(
                f"{path}: metadata says {self.features.num_samples} samples per "
                f"window but the input takes {num_samples}"
            )
        n_out = int(self._output["shape"][-1])
        if n_out != len(self.labels):
            raise ModelError(
                f"{path}: the model scores {n_out} classes but has {len(self.labels)} labels"
            )
        settings = self.info.settings if self.info else {}
        try:
            self.rules = _rules(settings, self.features)
        except (InvalidParameterError, TypeError, ValueError) as exc:
            raise ModelError(
                f"{path}: the window rules in its metadata are unusable ({exc})"
            ) from exc
        #: One sigmoid per species (several can score high at once) or one softmax.
        self.multi_label = settings.get("output") == "sigmoid"
        #: Per-species detection thresholds chosen on validation windows, if carried.
        self.thresholds = _thresholds(path, settings.get("thresholds"), self.labels)
        self._lock = threading.Lock()

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @property
    def clip_seconds(self) -> float:
        return self.features.clip_seconds

    def __repr__(self) -> str:
        return (
            f"Classifier({str(self.path)!r}, {len(self.labels)} species, "
            f"{self.sample_rate} Hz, {self.clip_seconds:g} s windows)"
        )

    # ------------------------------------------------------------------ core scoring
    def _quantize_io(self, x: np.ndarray, detail: dict, inverse: bool = False) -> np.ndarray:
        scale, zero = detail.get("quantization", (0.0, 0))
        if not scale:
            return x
        if inverse:
            return (x.astype(np.float32) - zero) * scale
        info = np.iinfo(detail["dtype"])
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])

    def predict_windows(
        self, windows: np.ndarray, *, starts: Sequence[float] | None = None
    ) -> np.ndarray:
        """Scores ``(n, n_species)`` for windows ``(n, num_samples)`` at the model rate.

        ``starts`` (seconds, one per window) only serves to name a window in an error.

        Raises
        ------
        ModelError
            The model fails to run, gives NaN or infinite scores (naming the model file
            and the window), or scores outside [0, 1] (unless the classifier was made
            with ``allow_non_probabilities=True``).
        """
        w = np.asarray(windows, dtype=np.float32)
        if w.ndim != 2 or w.shape[1] != self.features.num_samples:
            raise parameter_error(
                "windows", f"an array of shape (n, {self.features.num_samples})", w.shape
            )
        if starts is not None and len(starts) != w.shape[0]:
            raise parameter_error("starts", f"one time per window ({w.shape[0]})", len(starts))
        out = np.empty((w.shape[0], len(self.labels)), np.float32)
        it = self._interpreter
        with self._lock:
            for i in range(w.shape[0]):
                try:
                    it.set_tensor(
                        self._input["index"], self._quantize_io(w[i : i + 1], self._input)
                    )
                    it.invoke()
                except (ValueError, RuntimeError) as exc:
                    raise ModelError(f"{self.path}: the model failed to run ({exc})") from exc
                out[i] = self._quantize_io(
                    it.get_tensor(self._output["index"])[0], self._output, inverse=True
                )
        self._check_scores(out, starts)
        return out

    def _check_scores(self, scores: np.ndarray, starts: Sequence[float] | None) -> None:
        """A model file is untrusted: its outputs must be numbers, and probabilities
        unless the caller opted out. A NaN would otherwise pass every threshold test."""

        def window(i: int) -> str:
            if starts is not None:
                return f"window at {float(starts[i]):.3f} s"
            return f"window {i}" + (f" of {len(scores)}" if len(scores) > 1 else "")

        bad = ~np.isfinite(scores).all(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise ModelError(
                f"{self.path}: the model's output for {window(i)} is not a "
                f"number (NaN or infinite): {scores[i].tolist()}"
            )
        if self.allow_non_probabilities:
            return
        tol = _PROBABILITY_TOLERANCE
        bad = ((scores < -tol) | (scores > 1 + tol)).any(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise ModelError(
                f"{self.path}: the model's scores for {window(i)} are not "
                f"probabilities in [0, 1] (min {scores[i].min():.4g}, max "
                f"{scores[i].max():.4g}); pass allow_non_probabilities=True "
                "to use them as they are"
            )

    # ------------------------------------------------------------------- recordings
    def scan(
        self,
        source: str | os.PathLike | BinaryIO | np.ndarray,
        *,
        sample_rate: int | None = None,
        hop_seconds: float | None = None,
        batch_windows: int = 8,
        block_seconds: float = 10.0,
    ) -> ScannedRecording:
        """Score every window of a recording (see :func:`birdsong.rules.scan_recording`)."""
        hop = self.rules.hop_seconds if hop_seconds is None else hop_seconds
        check_hop(hop, self.clip_seconds, name="hop_seconds")
        _positive_int("batch_windows", batch_windows)
        if not (
            isinstance(block_seconds, (int, float))
            and np.isfinite(block_seconds)
            and block_seconds > 0
        ):
            raise parameter_error("block_seconds", "a number > 0", block_seconds)
        return scan_recording(
            source,
            self.predict_windows,
            features=self.features,
            hop_seconds=hop,
            sample_rate=sample_rate,
            batch_windows=batch_windows,
            block_seconds=block_seconds,
        )

    def predict(
        self,
        source: str | os.PathLike | BinaryIO | np.ndarray,
        *,
        sample_rate: int | None = None,
        hop_seconds: float | None = None,
        overlap: float | None = None,
        top_k: int = 3,
        min_score: float | None = None,
        batch_windows: int = 8,
        block_seconds: float = 10.0,
    ) -> Prediction:
        """Classify a clip or a long recording.

        Parameters
        ----------
        source : path, binary file object, or np.ndarray [shape=(n,) or (n, channels)]
            Any format :func:`birdsong.load_audio` reads; an array needs ``sample_rate``.
        hop_seconds : float, optional
            Windows start every ``hop_seconds``; default: the hop the model carries
            in its rules (a quarter window for models trained since scoring and training
            hops were separated; half a window before). Shorter hops time detections
            more finely and cost more windows.
        overlap : float, optional
            The same choice said the other way, ``hop_seconds = clip_seconds - overlap``
            (seconds shared by consecutive windows).
        top_k : int
            How many species to list in ``Prediction.top_k``.
        min_score : float, optional
            Detection threshold for every species. Default: the per-species thresholds
            the model carries (chosen on validation windows when it was trained), else
            0.5. Consecutive windows of one species merge into one event.
        batch_windows : int
            Windows scored per interpreter call batch; the answer does not depend on it.

        The recording's answer follows the model's :class:`~birdsong.config.WindowRules`
        (the windows with sound, at most ``max_windows`` of them, aggregated), the same
        rule as evaluation applies. Long files are read in blocks of ``block_seconds``,
        so memory stays bounded whatever the length.
        """
        if overlap is not None:
            if hop_seconds is not None:
                raise InvalidParameterError("Give 'hop_seconds' or 'overlap', not both.")
            hop_seconds = hop_for_overlap(self.clip_seconds, overlap)
        if min_score is not None and not (
            isinstance(min_score, (int, float)) and 0.0 <= min_score <= 1.0
        ):
            raise parameter_error(
                "min_score", "in [0, 1] (or None: the model's thresholds)", min_score
            )
        _positive_int("top_k", top_k)
        scan = self.scan(
            source,
            sample_rate=sample_rate,
            hop_seconds=hop_seconds,
            batch_windows=batch_windows,
            block_seconds=block_seconds,
        )
        return self._summarise(source, scan, top_k=top_k, min_score=min_score)

    def _summarise(
        self, source, scan: ScannedRecording, *, top_k: int, min_score: float | None
    ) -> Prediction:
        clip, _ = recording_scores(scan, self.rules, exclusive=not self.multi_label)
        order = np.argsort(-clip, kind="stable")
        scores = {self.labels[i]: float(clip[i]) for i in range(len(self.labels))}
        if isinstance(source, np.ndarray):
            name = None
        elif isinstance(source, (str, os.PathLike)):
            name = os.fspath(source)
        else:
            name = str(getattr(source, "name", "<file object>"))
        windows = [
            WindowScores(float(s), float(e), sc, float(a))
            for s, e, sc, a in zip(scan.starts, scan.ends, scan.scores, scan.activity)
        ]
        hop = float(scan.starts[1] - scan.starts[0]) if len(scan.starts) > 1 else self.clip_seconds
        return Prediction(
            path=name,
            label=self.labels[order[0]],
            score=float(clip[order[0]]),
            scores=scores,
            top_k=[(self.labels[i], float(clip[i])) for i in order[:top_k]],
            windows=windows,
            detections=self._detections(windows, hop, min_score),
            duration=scan.duration,
        )

    def score_thresholds(self, min_score: float | None = None) -> np.ndarray:
        """Each species' detection threshold: ``min_score`` for all when given, else the
        per-species thresholds carried in the model, else 0.5."""
        if min_score is not None:
            return np.full(len(self.labels), float(min_score))
        chosen = self.thresholds or {}
        return np.array([chosen.get(label, 0.5) for label in self.labels])

    def _detections(
        self, results: list[WindowScores], hop: float, min_score: float | None
    ) -> list[Detection]:
        """Timed events by :func:`birdsong.rules.detect_events` with this model's
        thresholds and output type."""
        events = detect_events(
            np.asarray([r.start for r in results]),
            np.stack([r.scores for r in results]),
            thresholds=self.score_thresholds(min_score),
            labels=self.labels,
            multi_label=self.multi_label,
            clip_seconds=self.clip_seconds,
            hop_seconds=hop,
            duration=results[-1].end,
        )
        return [
            Detection(start, end, self.labels[label], score) for start, end, label, score in events
        ]


#: Scores this far outside [0, 1] are rounding (float16, quantised outputs), not a model
#: that gives something other than probabilities.
_PROBABILITY_TOLERANCE = 1e-3


def max_threads() -> int:
    """The most interpreter threads a :class:`Classifier` accepts: 4 per CPU, at least 64.
    (LiteRT crashes the process for absurd counts such as 100000.)"""
    return max(64, 4 * (os.cpu_count() or 1))


def check_num_threads(value: object, *, name: str = "num_threads") -> int | None:
    """``value`` if it is None or an int in [1, :func:`max_threads`], else the one
    parameter error naming ``name`` (``--threads`` on the command line)."""
    if value is None:
        return None
    limit = max_threads()
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or not 1 <= int(value) <= limit
    ):
        raise parameter_error(name, f"an int in [1, {limit}] (4 per CPU, at least 64)", value)
    return int(value)


def hop_for_overlap(clip_seconds: float, overlap: object, *, name: str = "overlap") -> float:
    """The hop ``clip_seconds - overlap``, after checking ``overlap`` (named ``name``)
    lies in [0, clip_seconds - min_hop_seconds(clip_seconds)]."""
    top = clip_seconds - min_hop_seconds(clip_seconds)
    ok = (
        isinstance(overlap, int | float | np.floating | np.integer)
        and not isinstance(overlap, bool)
        and np.isfinite(overlap)
        and 0.0 <= float(overlap) <= top + 1e-9
    )
    if not ok:
        raise parameter_error(
            name,
            f"a number of seconds in [0, {top:g}] (windows of "
            f"{clip_seconds:g} s at least {min_hop_seconds(clip_seconds):g}"
            " s apart)",
            overlap,
        )
    return clip_seconds - float(overlap)


def _check_given_labels(labels: object) -> tuple[str, ...]:
    """Labels passed to :class:`Classifier`: a non-empty sequence of unique,
    non-blank strings."""
    if isinstance(labels, str) or not isinstance(labels, Sequence) or not labels:
        raise parameter_error("labels", "a non-empty sequence of str", labels, owner="Classifier")
    bad = [x for x in labels if not isinstance(x, str) or not x.strip()]
    if bad:
        raise parameter_error("labels", "non-blank strings", bad[:5], owner="Classifier")
    seen: set[str] = set()
    dupes = sorted({x for x in labels if x in seen or seen.add(x)})
    if dupes:
        raise parameter_error("labels", "unique (one per score)", dupes[:5], owner="Classifier")
    return tuple(labels)


def _plain_features(sample_rate: int, num_samples: int) -> FeatureConfig:
    """Window settings for a model whose file says only its rate and input length."""
    n_fft = 1024
    while n_fft > 64 and n_fft > num_samples:
        n_fft //= 2
    return FeatureConfig(
        sample_rate=sample_rate,
        clip_seconds=num_samples / sample_rate,
        n_fft=n_fft,
        fmin=min(50.0, sample_rate / 4),
        fmax=min(15000.0, sample_rate / 2),
    )


def _thresholds(path: Path, value: object, labels: Sequence[str]) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0
        for v in value.values()
    ):
        raise ModelError(
            f"{path}: the field 'thresholds' of its metadata must map species "
            f"to numbers in [0, 1]. Got {value!r:.200} instead."
        )
    return {str(k): float(v) for k, v in value.items() if k in labels}


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise parameter_error(name, "an int >= 1", value)
    return value


def _rules(settings: dict, features: FeatureConfig) -> WindowRules:
    """The model's window rules: its own block, the training settings of a 0.1 model, or
    the defaults for a model that says nothing."""
    if isinstance(settings.get("windows"), dict):
        rules = from_dict(WindowRules, settings["windows"]).for_clip(features.clip_seconds)
        check_hop(rules.hop_seconds, features.clip_seconds, name="windows.hop_seconds")
        return rules
    if isinstance(settings.get("train"), dict):  # birdsong 0.1: its training windows
        train = {"train_hop_seconds": saved_rules_hop(settings["train"]), **settings["train"]}
        rules = from_dict(TrainConfig, train).training_windows
        if rules.hop_seconds and rules.hop_seconds > features.clip_seconds:
            rules = dataclasses.replace(rules, hop_seconds=None)
        return rules.for_clip(features.clip_seconds)
    return WindowRules().for_clip(features.clip_seconds)


# -------------------------------------------------------------- default model
_CACHE: dict[tuple[str, float], Classifier] = {}
_CACHE_LOCK = threading.Lock()


def resolve_model(model: str | os.PathLike | None = None) -> Path:
    """Which model ``predict`` uses: ``model``, else ``$BIRDSONG_MODEL``, else the model
    most recently trained or exported on this machine."""
    from .registry import latest_model

    if model is not None:
        return Path(model)
    env = os.environ.get("BIRDSONG_MODEL")
    if env:
        return Path(env)
    latest = latest_model()
    if latest is not None:
        return latest
    raise ModelError(
        "No model given and none found: pass model='birds.tflite', set the BIRDSONG_MODEL "
        "environment variable, or train one first (`birdsong demo`, or `birdsong train "
        "DATA_DIR -o runs/NAME`)."
    )


def load_classifier(model: str | os.PathLike | None = None, **kwargs: Any) -> Classifier:
    """A cached :class:`Classifier` for the resolved model (reused across calls)."""
    path = resolve_model(model)
    if path.is_dir():
        path = path / "model.tflite"
    if path.suffix == ".keras":
        raise ModelError(
            f"{path}: a Keras model; export it first with `birdsong export "
            f"{path.parent} -o birds.tflite`"
        )
    if not path.exists():
        raise FileNotFoundError(f"No such model: {path}")
    key = (str(path.resolve()), path.stat().st_mtime, tuple(sorted(kwargs.items())))
    with _CACHE_LOCK:
        clf = _CACHE.get(key)  # type: ignore[call-overload]
        if clf is None:
            clf = Classifier(path, **kwargs)
            _CACHE[key] = clf  # type: ignore[index]
    return clf


def predict(
    source: str | os.PathLike | BinaryIO | np.ndarray,
    *,
    model: str | os.PathLike | None = None,
    sample_rate: int | None = None,
    hop_seconds: float | None = None,
    overlap: float | None = None,
    top_k: int = 3,
    min_score: float | None = None,
) -> Prediction:
    """Classify a recording with ``model`` (see :func:`resolve_model` for the default).

    The classifier is loaded once and reused across calls. The other parameters are
    those of :meth:`Classifier.predict`.
    """
    return load_classifier(model).predict(
        source,
        sample_rate=sample_rate,
        hop_seconds=hop_seconds,
        overlap=overlap,
        top_k=top_k,
        min_score=min_score,
    )
