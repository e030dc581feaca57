"""Run an exported ``.tflite`` on new recordings with the LiteRT interpreter.

Light tier: numpy, soundfile, soxr and ``ai-edge-litert`` (falling back to
``tflite_runtime``, and to ``tf.lite`` only when neither exists). TensorFlow is never
imported here. The model file carries its labels and audio settings
(:mod:`birdsong.metadata`), so ``Classifier("birds.tflite")`` needs nothing else.

Timing of detections: a window covers ``clip_seconds``; consecutive windows overlap by
``overlap`` seconds. Each window is credited with its central ``hop`` seconds (the part
no neighbour is closer to), so an event made of windows k..m runs from the centre-part
start of window k to the centre-part end of window m: timestamps land within one hop
of the true song edges.
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

from .audio import Window, activity, frame, resample, stream_windows
from .config import FeatureConfig, from_dict
from .errors import InvalidParameterError, MissingDependencyError, ModelError

__all__ = ["Classifier", "Detection", "Prediction", "WindowScores", "predict",
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
        Interpreter threads (default: LiteRT's choice).

    Calls are thread-safe: one interpreter per instance, guarded by a lock. For
    parallel throughput make one ``Classifier`` per thread.
    """

    def __init__(self, model: str | os.PathLike, *, labels: Sequence[str] | None = None,
                 sample_rate: int | None = None, num_threads: int | None = None) -> None:
        from .metadata import has_metadata, read_metadata

        path = Path(model)
        if path.is_dir():
            path = path / "model.tflite"
        if not path.exists():
            raise FileNotFoundError(f"No such model: {path}")
        self.path = path
        data = path.read_bytes()
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise ModelError(f"{path}: not a TFLite model (no TFL3 identifier; truncated, "
                             "corrupt or another format)")
        if has_metadata(data):
            self.info = read_metadata(data)
            self.labels = tuple(labels) if labels else self.info.labels
            settings = self.info.settings
            self.features = (from_dict(FeatureConfig, settings["features"])
                             if "features" in settings else
                             FeatureConfig(sample_rate=self.info.sample_rate,
                                           clip_seconds=self.info.num_samples
                                           / self.info.sample_rate))
        else:
            if not labels:
                raise ModelError(f"{path}: this .tflite has no birdsong metadata (labels, "
                                 "sample rate); pass labels=[...] (and sample_rate=) "
                                 "or export it with `birdsong export`")
            self.info = None
            self.labels = tuple(labels)
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
            rate = sample_rate or 32000
            self.features = FeatureConfig(sample_rate=rate, clip_seconds=num_samples / rate)
        if self.features.num_samples != num_samples:
            raise ModelError(f"{path}: metadata says {self.features.num_samples} samples per "
                             f"window but the input takes {num_samples}")
        n_out = int(self._output["shape"][-1])
        if n_out != len(self.labels):
            raise ModelError(f"{path}: the model scores {n_out} classes but has "
                             f"{len(self.labels)} labels")
        settings = self.info.settings if self.info else {}
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

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        """Scores ``(n, n_species)`` for windows ``(n, num_samples)`` at the model rate."""
        w = np.asarray(windows, dtype=np.float32)
        if w.ndim != 2 or w.shape[1] != self.features.num_samples:
            raise InvalidParameterError(
                f"The 'windows' parameter must have shape (n, {self.features.num_samples}). "
                f"Got {w.shape} instead.")
        out = np.empty((w.shape[0], len(self.labels)), np.float32)
        it = self._interpreter
        with self._lock:
            for i in range(w.shape[0]):
                it.set_tensor(self._input["index"], self._quantize_io(w[i:i + 1], self._input))
                it.invoke()
                out[i] = self._quantize_io(it.get_tensor(self._output["index"])[0],
                                           self._output, inverse=True)
        return out

    # ------------------------------------------------------------------- recordings
    def _windows(self, source, sample_rate: int | None, hop: float,
                 block_seconds: float) -> Iterator[Window]:
        if isinstance(source, np.ndarray):
            if sample_rate is None:
                raise InvalidParameterError("The 'sample_rate' parameter is needed with an "
                                            "array source. Got None instead.")
            signal = np.asarray(source, np.float32)
            if signal.ndim == 2:
                signal = signal.mean(axis=1 if signal.shape[1] <= 8 else 0)
            if signal.size == 0 or not np.isfinite(signal).all():
                raise InvalidParameterError("The 'source' array must be non-empty and finite.")
            signal = resample(signal, int(sample_rate), self.sample_rate)
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
                min_score: float = 0.5, batch_windows: int = 64,
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
        name = None if isinstance(source, np.ndarray) else str(getattr(source, "name", source))
        return Prediction(
            path=name, label=self.labels[order[0]], score=float(clip[order[0]]),
            scores=scores, top_k=[(self.labels[i], float(clip[i])) for i in order[:top_k]],
            windows=results, detections=self._detections(results, hop, min_score),
            duration=float(results[-1].end))

    def _detections(self, results: list[WindowScores], hop: float, min_score: float
                    ) -> list[Detection]:
        margin = (self.clip_seconds - hop) / 2.0
        total = results[-1].end
        events: list[Detection] = []
        current: list[Any] | None = None  # [label index, first, last, best score]
        for k, r in enumerate(results + [None]):  # type: ignore[operator]
            best = int(np.argmax(r.scores)) if r is not None else -1
            hit = r is not None and r.scores[best] >= min_score
            if current is not None and (not hit or best != current[0]):
                first, last = results[current[1]], results[current[2]]
                start = first.start + (margin if current[1] > 0 else 0.0)
                end = min(last.start + self.clip_seconds - (
                    margin if current[2] < len(results) - 1 else 0.0), total)
                events.append(Detection(start, max(end, start), self.labels[current[0]],
                                        float(current[3])))
                current = None
            if hit:
                if current is None:
                    current = [best, k, k, float(r.scores[best])]
                else:
                    current[2], current[3] = k, max(current[3], float(r.scores[best]))
        return events


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
