"""Run an exported ``.tflite`` on new recordings with the LiteRT interpreter.

Light tier: numpy, soundfile, soxr and ``ai-edge-litert`` (falling back to
``tflite_runtime``, and to ``tf.lite`` only when neither exists). TensorFlow is never
imported here. The model file carries its labels and audio settings
(:mod:`birdsong.metadata`), so ``Classifier("birds.tflite")`` needs nothing else.

Timing of detections: windows of ``clip_seconds`` start every ``hop`` seconds
(``hop = clip_seconds - overlap``). When window k detects a species and window k-1 did
not, the song most likely began in the part of window k that k-1 did not cover, its
last ``hop`` seconds: the event starts at ``start_k + clip_seconds - hop``. Likewise it
ends at ``start_m + hop`` when window m is the last to detect it. An event confined to
one window is centred on that window, ``hop`` long. Events touching the start or end of
the recording extend to it. For a model that fires as soon as part of a song is in a
window, the edges land within one hop of the truth; a less sensitive model shifts them
inwards by at most the share of a window it needs to see.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .audio import (
    MAX_ABS_SAMPLE,
    Window,
    activity,
    check_sample_rate,
    frame,
    resample,
    stream_windows,
)
from .config import FeatureConfig, from_dict
from .errors import (
    InvalidParameterError,
    MissingDependencyError,
    ModelError,
    parameter_error,
)

#: Class names (case-insensitive, leading/trailing "_" ignored) that mean "no bird":
#: a model trained with such a folder says so in the gaps of a long recording, and
#: these classes never become detections.
BACKGROUND_LABELS = frozenset({"background", "noise", "silence", "no_bird", "nocall"})

__all__ = ["BACKGROUND_LABELS", "Classifier", "Detection", "Prediction", "WindowScores", "predict",
           "resolve_model"]

log = logging.getLogger(__name__)


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
        return Interpreter
    except ImportError:
        pass
    try:  # last resort; heavy
        import tensorflow as tf

        log.warning("ai-edge-litert is not installed; using tf.lite (slow start)")
        return tf.lite.Interpreter
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
        return {"start": round(self.start, 3), "end": round(self.end, 3),
                "label": self.label, "score": round(self.score, 4)}


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
        return {"path": self.path, "label": self.label, "score": round(self.score, 4),
                "top_k": [[k, round(v, 4)] for k, v in self.top_k],
                "detections": [d.to_dict() for d in self.detections],
                "duration": round(self.duration, 3)}


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

    def __init__(self, model: str | os.PathLike, *, labels: Sequence[str] | None = None,
                 sample_rate: int | None = None, num_threads: int | None = None,
                 allow_non_probabilities: bool = False) -> None:
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
            raise ModelError(f"{path}: not a TFLite model (no TFL3 identifier; truncated, "
                             "corrupt or another format)")
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
                raise ModelError(f"{path}: this .tflite has no birdsong metadata; pass "
                                 "labels=[...] (and sample_rate=) or export it with "
                                 f"`birdsong export`. ({exc})") from exc
        if self.info is not None:
            self.labels = tuple(labels) if labels else self.info.labels
            settings = self.info.settings
            try:
                self.features = (from_dict(FeatureConfig, settings["features"])
                                 if "features" in settings else
                                 _plain_features(self.info.sample_rate, self.info.num_samples))
            except (InvalidParameterError, TypeError, ValueError, AttributeError,
                    KeyError) as exc:
                raise ModelError(f"{path}: the audio settings in its metadata "
                                 f"('settings.features') are unusable ({exc})") from exc
        else:  # no metadata: labels given (checked above), sample rate given or 32 kHz
            self.labels = tuple(labels or ())
            self.features = None
        try:
            self._interpreter = _interpreter_class()(model_content=data,
                                                     num_threads=num_threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: the interpreter cannot load this model ({exc})") \
                from exc
        inp = self._interpreter.get_input_details()
        out = self._interpreter.get_output_details()
        if len(inp) != 1 or len(out) != 1 or len(inp[0]["shape"]) != 2:
            raise ModelError(f"{path}: expected one waveform input (1, samples) and one "
                             f"score output; got inputs {[list(d['shape']) for d in inp]}")
        self._input, self._output = inp[0], out[0]
        num_samples = int(self._input["shape"][1])
        if self.features is None:
            rate = int(sample_rate or 32000)
            try:
                self.features = _plain_features(rate, num_samples)
            except InvalidParameterError as exc:
                raise ModelError(f"{path}: an input of {num_samples} samples at {rate} Hz is "
                                 f"not a usable audio window ({exc}); pass the model's "
                                 "sample_rate=") from exc
        if self.features.num_samples != num_samples:
            raise ModelError(f"{path}: metadata says {self.features.num_samples} samples per "
                             f"window but the input takes {num_samples}")
        n_out = int(self._output["shape"][-1])
        if n_out != len(self.labels):
            raise ModelError(f"{path}: the model scores {n_out} classes but has "
                             f"{len(self.labels)} labels")
        settings = self.info.settings if self.info else {}
        # read_metadata checked the types (metadata.SETTINGS_SCHEMA)
        self.min_activity = float(settings.get("train", {}).get("min_activity", 0.2))
        self._lock = threading.Lock()

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @property
    def clip_seconds(self) -> float:
        return self.features.clip_seconds

    def __repr__(self) -> str:
        return (f"Classifier({str(self.path)!r}, {len(self.labels)} species, "
                f"{self.sample_rate} Hz, {self.clip_seconds:g} s windows)")

    # ------------------------------------------------------------------ core scoring
    def _quantize_io(self, x: np.ndarray, detail: dict, inverse: bool = False) -> np.ndarray:
        scale, zero = detail.get("quantization", (0.0, 0))
        if not scale:
            return x
        if inverse:
            return (x.astype(np.float32) - zero) * scale
        info = np.iinfo(detail["dtype"])
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])

    def predict_windows(self, windows: np.ndarray, *,
                        starts: Sequence[float] | None = None) -> np.ndarray:
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
            raise InvalidParameterError(
                f"The 'windows' parameter must have shape (n, {self.features.num_samples}). "
                f"Got {w.shape} instead.")
        if starts is not None and len(starts) != w.shape[0]:
            raise InvalidParameterError(f"The 'starts' parameter must hold one time per "
                                        f"window ({w.shape[0]}). Got {len(starts)} instead.")
        out = np.empty((w.shape[0], len(self.labels)), np.float32)
        it = self._interpreter
        with self._lock:
            for i in range(w.shape[0]):
                try:
                    it.set_tensor(self._input["index"],
                                  self._quantize_io(w[i:i + 1], self._input))
                    it.invoke()
                except (ValueError, RuntimeError) as exc:
                    raise ModelError(f"{self.path}: the model failed to run ({exc})") from exc
                out[i] = self._quantize_io(it.get_tensor(self._output["index"])[0],
                                           self._output, inverse=True)
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
            raise ModelError(f"{self.path}: the model's output for {window(i)} is not a "
                             f"number (NaN or infinite): {scores[i].tolist()}")
        if self.allow_non_probabilities:
            return
        tol = _PROBABILITY_TOLERANCE
        bad = ((scores < -tol) | (scores > 1 + tol)).any(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise ModelError(f"{self.path}: the model's scores for {window(i)} are not "
                             f"probabilities in [0, 1] (min {scores[i].min():.4g}, max "
                             f"{scores[i].max():.4g}); pass allow_non_probabilities=True "
                             "to use them as they are")

    # ------------------------------------------------------------------- recordings
    def _windows(self, source, sample_rate: int | None, hop: float,
                 block_seconds: float) -> Iterator[Window]:
        if isinstance(source, np.ndarray):
            if sample_rate is None:
                raise InvalidParameterError("The 'sample_rate' parameter is needed with an "
                                            "array source. Got None instead.")
            rate = check_sample_rate(sample_rate)
            signal = _check_array(source)
            if signal.ndim == 2:
                signal = signal.mean(axis=1 if signal.shape[1] <= 8 else 0, dtype=np.float32)
            signal = resample(signal, rate, self.sample_rate)
            windows, starts = frame(signal, sample_rate=self.sample_rate,
                                    clip_seconds=self.clip_seconds, hop_seconds=hop)
            total = signal.size / self.sample_rate
            for w, s in zip(windows, starts):
                yield Window(float(s), min(float(s) + self.clip_seconds, total), w)
            return
        yield from stream_windows(source, sample_rate=self.sample_rate,
                                  clip_seconds=self.clip_seconds, hop_seconds=hop,
                                  block_seconds=block_seconds)

    def predict(self, source: str | os.PathLike | BinaryIO | np.ndarray, *,
                sample_rate: int | None = None, overlap: float = 0.0, top_k: int = 3,
                min_score: float = 0.5, batch_windows: int = 32,
                block_seconds: float = 60.0) -> Prediction:
        """Classify a clip or a long recording.

        Parameters
        ----------
        source : path, binary file object, or np.ndarray [shape=(n,) or (n, channels)]
            Any format :func:`birdsong.load_audio` reads; an array needs ``sample_rate``.
        overlap : float
            Seconds shared by consecutive windows (0 <= overlap < clip_seconds).
        top_k : int
            How many species to list in ``Prediction.top_k``.
        min_score : float
            Windows whose best score reaches this become detections; consecutive
            windows of one species merge into one event.

        The clip's scores are the mean over its windows with sound (those whose
        activity reaches the model's ``min_activity``; the most active one if none),
        the same rule as in training and evaluation. Long files are read in blocks of
        ``block_seconds``, so memory stays bounded whatever the length.
        """
        if not 0.0 <= overlap < self.clip_seconds:
            raise InvalidParameterError(f"The 'overlap' parameter must be in [0, "
                                        f"{self.clip_seconds:g}). Got {overlap!r} instead.")
        if not 0.0 <= min_score <= 1.0:
            raise InvalidParameterError(f"The 'min_score' parameter must be in [0, 1]. "
                                        f"Got {min_score!r} instead.")
        if not isinstance(top_k, int) or top_k < 1:
            raise InvalidParameterError(f"The 'top_k' parameter must be an int >= 1. "
                                        f"Got {top_k!r} instead.")
        if not isinstance(batch_windows, int) or batch_windows < 1:
            raise InvalidParameterError(f"The 'batch_windows' parameter must be an int >= 1. "
                                        f"Got {batch_windows!r} instead.")
        if not (isinstance(block_seconds, (int, float)) and np.isfinite(block_seconds)
                and block_seconds > 0):
            raise InvalidParameterError(f"The 'block_seconds' parameter must be a number > 0. "
                                        f"Got {block_seconds!r} instead.")
        hop = self.clip_seconds - overlap
        results: list[WindowScores] = []
        for batch in _batched(self._windows(source, sample_rate, hop, block_seconds),
                              batch_windows):
            stack = np.stack([w.samples for w in batch])
            scores = self.predict_windows(stack)
            act = activity(stack, sample_rate=self.sample_rate, noise_floor_db=None)
            results += [WindowScores(w.start, w.end, s, float(a))
                        for w, s, a in zip(batch, scores, act)]
        return self._summarise(source, results, hop=hop, top_k=top_k, min_score=min_score)

    def _summarise(self, source, results: list[WindowScores], *, hop: float, top_k: int,
                   min_score: float) -> Prediction:
        all_scores = np.stack([r.scores for r in results])
        acts = np.array([r.activity for r in results])
        chosen = acts >= self.min_activity
        if not chosen.any():
            chosen = acts == acts.max()
        clip = all_scores[chosen].mean(axis=0)
        order = np.argsort(-clip, kind="stable")
        scores = {self.labels[i]: float(clip[i]) for i in range(len(self.labels))}
        if isinstance(source, np.ndarray):
            name = None
        elif isinstance(source, (str, os.PathLike)):
            name = os.fspath(source)
        else:
            name = str(getattr(source, "name", "<file object>"))
        return Prediction(
            path=name, label=self.labels[order[0]], score=float(clip[order[0]]),
            scores=scores, top_k=[(self.labels[i], float(clip[i])) for i in order[:top_k]],
            windows=results, detections=self._detections(results, hop, min_score),
            duration=float(results[-1].end))

    def _detections(self, results: list[WindowScores], hop: float, min_score: float
                    ) -> list[Detection]:
        clip = self.clip_seconds
        total = results[-1].end
        events: list[Detection] = []
        runs: list[list[Any]] = []  # [label index, first, last, best score]
        background = {i for i, name in enumerate(self.labels)
                      if name.strip("_ ").lower() in BACKGROUND_LABELS}
        for k, r in enumerate(results):
            best = int(np.argmax(r.scores))
            if r.scores[best] < min_score or best in background:
                continue
            if runs and runs[-1][0] == best and runs[-1][2] == k - 1:
                runs[-1][2], runs[-1][3] = k, max(runs[-1][3], float(r.scores[best]))
            else:
                runs.append([best, k, k, float(r.scores[best])])
        for label, first, last, score in runs:
            s0, s1 = results[first].start, results[last].start
            start = 0.0 if first == 0 else s0 + clip - hop
            end = total if last == len(results) - 1 else s1 + hop
            if start >= end:  # one window alone: centre it
                centre = (s0 + s1 + clip) / 2
                start, end = max(0.0, centre - hop / 2), min(total, centre + hop / 2)
            events.append(Detection(start, min(end, total), self.labels[label], score))
        return events


def _check_array(source: np.ndarray) -> np.ndarray:
    """A waveform array as float32: (n,) or (n, channels)/(channels, n), finite samples."""
    if source.dtype.kind not in "biuf":
        raise InvalidParameterError(f"The 'source' array must hold real numbers. Got dtype "
                                    f"{source.dtype} instead.")
    if source.ndim not in (1, 2) or source.size == 0:
        raise InvalidParameterError("The 'source' array must be a non-empty waveform of shape "
                                    f"(n,) or (n, channels). Got shape {source.shape} instead.")
    if not np.isfinite(source).all():
        raise InvalidParameterError("The 'source' array must be finite. Got NaN or infinite "
                                    "samples.")
    peak = float(np.abs(source).max())
    if peak > MAX_ABS_SAMPLE:
        raise InvalidParameterError(f"The 'source' array must hold audio samples (about "
                                    f"[-1, 1]). Got a magnitude of {peak:.3g} instead.")
    return np.asarray(source, np.float32)


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
    if isinstance(value, bool) or not isinstance(value, int | np.integer) \
            or not 1 <= int(value) <= limit:
        raise parameter_error(name, f"an int in [1, {limit}] (4 per CPU, at least 64)",
                              value)
    return int(value)


def min_hop_seconds(clip_seconds: float) -> float:
    """The shortest hop between windows: 1/20 of a window (95 % overlap). Beyond that,
    windows are near copies that only cost time (a 3-s model at overlap 2.999 s would
    cut 57,000 windows from a minute)."""
    return clip_seconds / 20


def hop_for_overlap(clip_seconds: float, overlap: object, *, name: str = "overlap"
                    ) -> float:
    """The hop ``clip_seconds - overlap``, after checking ``overlap`` (named ``name``)
    lies in [0, clip_seconds - min_hop_seconds(clip_seconds)]."""
    top = clip_seconds - min_hop_seconds(clip_seconds)
    ok = (isinstance(overlap, int | float | np.floating | np.integer)
          and not isinstance(overlap, bool) and np.isfinite(overlap)
          and 0.0 <= float(overlap) <= top + 1e-9)
    if not ok:
        raise parameter_error(name, f"a number of seconds in [0, {top:g}] (windows of "
                              f"{clip_seconds:g} s at least {min_hop_seconds(clip_seconds):g}"
                              " s apart)", overlap)
    return clip_seconds - float(overlap)


def _check_given_labels(labels: object) -> tuple[str, ...]:
    """Labels passed to :class:`Classifier`: a non-empty sequence of unique,
    non-blank strings."""
    if isinstance(labels, str) or not isinstance(labels, Sequence) or not labels:
        raise parameter_error("labels", "a non-empty sequence of str", labels,
                              owner="Classifier")
    bad = [x for x in labels if not isinstance(x, str) or not x.strip()]
    if bad:
        raise parameter_error("labels", "non-blank strings", bad[:5], owner="Classifier")
    seen: set[str] = set()
    dupes = sorted({x for x in labels if x in seen or seen.add(x)})
    if dupes:
        raise parameter_error("labels", "unique (one per score)", dupes[:5],
                              owner="Classifier")
    return tuple(labels)


def _plain_features(sample_rate: int, num_samples: int) -> FeatureConfig:
    """Window settings for a model whose file says only its rate and input length."""
    n_fft = 1024
    while n_fft > 64 and n_fft > num_samples:
        n_fft //= 2
    return FeatureConfig(sample_rate=sample_rate, clip_seconds=num_samples / sample_rate,
                         n_fft=n_fft, fmin=min(50.0, sample_rate / 4),
                         fmax=min(15000.0, sample_rate / 2))


def _batched(items: Iterable[Window], n: int) -> Iterator[list[Window]]:
    batch: list[Window] = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


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
        "DATA_DIR -o runs/NAME`).")


def load_classifier(model: str | os.PathLike | None = None, **kwargs: Any) -> Classifier:
    """A cached :class:`Classifier` for the resolved model (reused across calls)."""
    path = resolve_model(model)
    if path.is_dir():
        path = path / "model.tflite"
    if path.suffix == ".keras":
        raise ModelError(f"{path}: a Keras model; export it first with `birdsong export "
                         f"{path.parent} -o birds.tflite`")
    if not path.exists():
        raise FileNotFoundError(f"No such model: {path}")
    key = (str(path.resolve()), path.stat().st_mtime, tuple(sorted(kwargs.items())))
    with _CACHE_LOCK:
        clf = _CACHE.get(key)  # type: ignore[call-overload]
        if clf is None:
            clf = Classifier(path, **kwargs)
            _CACHE[key] = clf  # type: ignore[index]
    return clf


def predict(source: str | os.PathLike | BinaryIO | np.ndarray, *,
            model: str | os.PathLike | None = None, **kwargs: Any) -> Prediction:
    """Classify a recording with ``model`` (see :func:`resolve_model` for the default).

    Keyword arguments go to :meth:`Classifier.predict` (``sample_rate``, ``overlap``,
    ``top_k``, ``min_score``).
    """
    return load_classifier(model).predict(source, **kwargs)
