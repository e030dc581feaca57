"""Export a trained model to one self-describing ``.tflite`` file.

The exported model takes one raw waveform window ``(1, num_samples)`` at the model's
sample rate (the frontend is inside) and returns species probabilities ``(1, n)``.
TFLite Model Metadata carries the labels, the audio properties and birdsong's settings
(:mod:`birdsong.metadata`); ``labels.txt`` is also written beside the file.

Variants (``quantize``):

- ``none``: float32 (default);
- ``float16``: float16 weights (half the size; computed in float32 on CPUs);
- ``dynamic``: int8 weights, activations quantised on the fly;
- ``int8``: int8 weights and activations calibrated on a representative set of training
  windows. The frontend (RFFT, log) has no int8 kernels, so it stays float32 and the
  converter inserts (de)quantise steps around the integer backbone; input and output
  stay float32, which MediaPipe and :class:`~birdsong.inference.Classifier` expect.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_write_bytes, atomic_write_text, check_output_file
from ._version import __version__
from .config import TrainConfig, to_dict
from .errors import InvalidParameterError, ModelError, parameter_error, require

__all__ = ["QUANTIZATIONS", "agreement_with_float32", "convert", "export_model",
           "model_settings", "representative_windows"]

log = logging.getLogger(__name__)

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")


def representative_windows(run_dir: str | os.PathLike, config: TrainConfig, *,
                           split: str = "train", limit: int = 200, seed: int = 0
                           ) -> np.ndarray:
    """Up to ``limit`` windows with sound from one side of a run's split."""
    from .errors import AudioError
    from .pipeline import recording_windows
    from .rundir import RunDir

    run = RunDir(run_dir)
    paths = [r.path for r in run.read_split().side(split)]
    rng = np.random.default_rng(seed)
    rng.shuffle(paths)
    out: list[np.ndarray] = []
    for p in paths:
        try:
            out.extend(recording_windows(p, config, max_windows=4))
        except (AudioError, OSError):
            continue
        if len(out) >= limit:
            break
    if not out:
        raise ModelError(f"{run.path}: no {split} recording could be read for calibration")
    return np.stack(out[:limit])


def _frontend_tensors(tf, flat: bytes) -> list[str]:
    """Names of the frontend's tensors in a float32 conversion (kept float in int8)."""
    interpreter = tf.lite.Interpreter(model_content=flat)
    return [t["name"] for t in interpreter.get_tensor_details() if "frontend" in t["name"]]


def convert(model, *, quantize: str = "none",
            representative: np.ndarray | None = None) -> bytes:
    """Convert a Keras waveform model to TFLite flatbuffer bytes (builtin ops only)."""
    import contextlib
    import io

    tf = require("tensorflow", purpose="export TFLite models")
    if quantize not in QUANTIZATIONS:
        raise parameter_error("quantize", f"one of {', '.join(QUANTIZATIONS)}", quantize)
    quiet = contextlib.redirect_stdout(io.StringIO())  # Keras prints every traced variable
    with quiet:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
        if quantize != "int8":
            with contextlib.redirect_stdout(io.StringIO()):
                return converter.convert()
        if representative is None or len(representative) == 0:
            raise InvalidParameterError("The 'representative' parameter must hold calibration "
                                        "windows for int8 export. Got none instead.")

        def gen() -> Iterator[list[np.ndarray]]:
            for w in representative:
                yield [w[None].astype(np.float32)]

        with contextlib.redirect_stdout(io.StringIO()):
            frontend = _frontend_tensors(tf, converter.convert())
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = gen
            # Left to itself the converter quantises the waveform and the log-mel maths
            # too (top-1 agreement with float32 fell to ~25 %); keep the frontend float.
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=gen,
                debug_options=tf.lite.experimental.QuantizationDebugOptions(
                    denylisted_nodes=frontend))
            return debugger.get_nondebug_quantized_model()
    except InvalidParameterError:
        raise
    except Exception as exc:
        raise ModelError(f"TFLite conversion failed ({quantize}): {exc}") from exc


def _run_parts(run_dir: Path, model: Any | None) -> tuple[Any, TrainConfig, list[str]]:
    from .model import load_keras_model
    from .rundir import RunDir

    config, labels = RunDir(run_dir).read()
    return (model if model is not None else load_keras_model(run_dir)), config, labels


def model_settings(config: TrainConfig, *, quantize: str = "none",
                   thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """birdsong's settings block in a model's metadata: the audio features, the window
    rules (how a recording's answer is made), the output (softmax or one sigmoid per
    species), per-species detection thresholds and how the model was trained, once
    each."""
    training = to_dict(config)
    features, windows = training.pop("features"), training.pop("windows")
    settings = {"features": features, "windows": windows,
                "output": "sigmoid" if config.multi_label else "softmax",
                "training": training, "quantization": quantize,
                "birdsong_version": __version__}
    if thresholds:
        settings["thresholds"] = {k: round(float(v), 6) for k, v in thresholds.items()}
    return settings


def export_model(run_dir: str | os.PathLike, output: str | os.PathLike, *,
                 quantize: str = "none", model: Any | None = None,
                 representative: np.ndarray | None = None, remember: bool = True) -> Path:
    """Export a run directory's model to ``output`` (``.tflite``) with metadata.

    Writes atomically (no half-written file under the final name), writes
    ``labels.txt`` beside it, and (``remember``) records it as this machine's latest
    model.
    For ``int8`` the calibration windows default to 200 training windows of the run.
    """
    from .metadata import add_metadata
    from .registry import remember_model

    run_dir, output = Path(run_dir), Path(output)
    # before converting: not a folder, not a file of the run itself (e.g. its model.keras)
    check_output_file(output, inputs=[p for p in run_dir.glob("*") if p.is_file()],
                      name="output")
    keras_model, config, labels = _run_parts(run_dir, model)
    if quantize == "int8" and representative is None:
        representative = representative_windows(run_dir, config, seed=config.seed)
    flat = convert(keras_model, quantize=quantize, representative=representative)
    f = config.features
    from .rundir import RunDir

    settings = model_settings(config, quantize=quantize,
                              thresholds=RunDir(run_dir).read_thresholds())
    flat = add_metadata(flat, labels=labels, sample_rate=f.sample_rate,
                        num_samples=f.num_samples, channels=1,
                        name=f"birdsong {len(labels)}-species classifier",
                        version=__version__,
                        description=(f"Bird song classifier ({len(labels)} species). Input: "
                                     f"{f.clip_seconds:g} s mono float32 waveform at "
                                     f"{f.sample_rate} Hz in [-1, 1]. Output: probabilities."),
                        settings=settings)
    atomic_write_bytes(output, flat)
    atomic_write_text(output.with_name("labels.txt") if output.name != "labels.txt"
                      else output.with_suffix(".labels.txt"), "\n".join(labels) + "\n")
    if remember:
        try:
            remember_model(output)
        except OSError as exc:
            log.warning("could not record %s as the latest model: %s", output, exc)
    log.info("exported %s (%s, %.2f MB)", output, quantize, output.stat().st_size / 1e6)
    return output


def agreement_with_float32(run_dir: str | os.PathLike, model_path: str | os.PathLike, *,
                           limit: int = 200) -> dict[str, float]:
    """Top-1 agreement of an exported variant with the float32 export on held-out
    (validation) windows of the run, plus the largest score difference."""
    import tempfile

    from .inference import Classifier

    run_dir = Path(run_dir)
    keras_model, config, labels = _run_parts(run_dir, None)
    windows = representative_windows(run_dir, config, split="validation", limit=limit,
                                     seed=config.seed + 1)
    with tempfile.TemporaryDirectory() as tmp:
        ref_path = Path(tmp) / "float32.tflite"
        ref_path.write_bytes(convert(keras_model))
        reference = Classifier(ref_path, labels=labels,
                               sample_rate=config.features.sample_rate)
        ref = reference.predict_windows(windows)
    got = Classifier(model_path).predict_windows(windows)
    return {"windows": int(len(windows)),
            "top1_agreement": float(np.mean(ref.argmax(1) == got.argmax(1))),
            "max_abs_difference": float(np.abs(ref - got).max())}
