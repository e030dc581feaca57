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
  windows. The frontend (log-mel maths) stays float32 and the converter inserts
  (de)quantise steps around the integer backbone; input and output stay float32, which
  MediaPipe and :class:`~birdsong.inference.Classifier` expect. ``INT8_RECIPES`` name
  which other layers stay float (``convert(..., int8_recipe=...)``);
  ``benchmarks/speed.py`` measures each one's speed and top-1 agreement with float32.

Every variant is converted for one window at a time (a static batch of 1): all shapes
are then known to the converter, and the frontend's reshapes and matmuls run inside
XNNPACK.
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

__all__ = [
    "INT8_RECIPES",
    "QUANTIZATIONS",
    "agreement_with_float32",
    "convert",
    "export_model",
    "model_settings",
    "representative_windows",
]

log = logging.getLogger(__name__)

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")


def representative_windows(
    run_dir: str | os.PathLike,
    config: TrainConfig,
    *,
    split: str = "train",
    limit: int = 200,
    seed: int = 0,
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


# int8 recipes: which tensors stay float32 (names containing any of these parts), with
# "debugger" adding those tf.lite.experimental.QuantizationDebugger finds losing most.
INT8_RECIPES: dict[str, tuple[str, ...]] = {
    "frontend-float": ("frontend",),
    "ends-float": ("frontend", "Conv1", "Conv_1", "out_relu", "pool", "species"),
    "debugger": ("frontend",),
}
# Measured by benchmarks/speed.py (2026-12-02, demo data, offline backbone, 362 windows of
# validation and unseen birds): at 224 px frontend-float and ends-float agreed with float32
# on 99.2 %, debugger on 98.3 %; at 128 px only debugger reached 99 % (99.2 %; the others
# 97 %). float16 agrees on 99.4-100 %. int8 sits at the edge of 99 %: check the agreement
# that `birdsong export` prints before shipping it.
DEFAULT_INT8_RECIPE = "frontend-float"
# TensorFlow's quantisation-debugger guide: rmse/scale ~0.29 (1/sqrt(12)) is an ideal
# int8 tensor; above 0.7 it is losing information.
_SUSPECT_RMSE_PER_SCALE = 0.7


def _tensors_named(flat: bytes, parts: tuple[str, ...]) -> list[str]:
    """Names of the tensors of a float32 conversion whose names contain any of ``parts``."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flat)
    return [
        t["name"] for t in interpreter.get_tensor_details() if any(p in t["name"] for p in parts)
    ]


def _suspects(debugger) -> list[str]:
    """Tensors whose int8 error is large for their quantisation step (rmse/scale)."""
    import csv
    import io

    debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    dump.seek(0)
    out = []
    for row in csv.DictReader(dump):
        try:
            scale, mse = float(row["scale"]), float(row["mean_squared_error"])
        except (KeyError, ValueError):
            continue
        if scale > 0 and np.sqrt(mse) / scale > _SUSPECT_RMSE_PER_SCALE:
            out.append(row["tensor_name"])
    return out


def _one_window(model):
    """The model with a static batch of one window (what LiteRT, MediaPipe and
    :class:`~birdsong.inference.Classifier` feed): every shape in the graph is then known
    at conversion, so no shape arithmetic runs outside XNNPACK at inference."""
    keras = require("keras", purpose="export TFLite models")
    inp = keras.Input(batch_shape=(1, *model.input_shape[1:]), name="waveform")
    return keras.Model(inp, model(inp, training=False), name=model.name)


def convert(
    model,
    *,
    quantize: str = "none",
    representative: np.ndarray | None = None,
    int8_recipe: str = DEFAULT_INT8_RECIPE,
) -> bytes:
    """Convert a Keras waveform model to TFLite flatbuffer bytes (builtin ops only).

    The model is converted for one window at a time (a static batch of 1). ``int8_recipe``
    (a key of :data:`INT8_RECIPES`) chooses which layers stay float32 in an ``int8``
    export.
    """
    import contextlib
    import io

    tf = require("tensorflow", purpose="export TFLite models")
    if quantize not in QUANTIZATIONS:
        raise parameter_error("quantize", f"one of {', '.join(QUANTIZATIONS)}", quantize)
    if int8_recipe not in INT8_RECIPES:
        raise parameter_error("int8_recipe", f"one of {', '.join(INT8_RECIPES)}", int8_recipe)
    quiet = contextlib.redirect_stdout(io.StringIO())  # Keras prints every traced variable
    with quiet:
        converter = tf.lite.TFLiteConverter.from_keras_model(_one_window(model))
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
            raise InvalidParameterError(
                "The 'representative' parameter must hold calibration "
                "windows for int8 export. Got none instead."
            )

        def gen() -> Iterator[list[np.ndarray]]:
            for w in representative:
                yield [w[None].astype(np.float32)]

        def debug_set() -> Iterator[list[np.ndarray]]:
            for w in representative[:32]:
                yield [w[None].astype(np.float32)]

        debug = tf.lite.experimental
        with contextlib.redirect_stdout(io.StringIO()):
            # Left to itself the converter quantises the waveform and the log-mel maths
            # too (top-1 agreement with float32 fell to ~25 %); the frontend stays float.
            keep = _tensors_named(converter.convert(), INT8_RECIPES[int8_recipe])
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = gen
            debugger = debug.QuantizationDebugger(
                converter=converter,
                debug_dataset=debug_set,
                debug_options=debug.QuantizationDebugOptions(denylisted_nodes=keep),
            )
            if int8_recipe == "debugger":
                keep = keep + _suspects(debugger)
                log.info("int8: %d tensors kept float32 after the quantisation debugger", len(keep))
                debugger = debug.QuantizationDebugger(
                    converter=converter,
                    debug_dataset=debug_set,
                    debug_options=debug.QuantizationDebugOptions(denylisted_nodes=keep),
                )
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


def model_settings(
    config: TrainConfig, *, quantize: str = "none", thresholds: dict[str, float] | None = None
) -> dict[str, Any]:
    """birdsong's settings block in a model's metadata: the audio features, the window
    rules (how a recording's answer is made), the output (softmax or one sigmoid per
    species), per-species detection thresholds and how the model was trained, once
    each."""
    training = to_dict(config)
    features, windows = training.pop("features"), training.pop("windows")
    settings = {
        "features": features,
        "windows": windows,
        "output": "sigmoid" if config.multi_label else "softmax",
        "training": training,
        "quantization": quantize,
        "birdsong_version": __version__,
    }
    if thresholds:
        settings["thresholds"] = {k: round(float(v), 6) for k, v in thresholds.items()}
    return settings


def export_model(
    run_dir: str | os.PathLike,
    output: str | os.PathLike,
    *,
    quantize: str = "none",
    model: Any | None = None,
    representative: np.ndarray | None = None,
    remember: bool = True,
    int8_recipe: str = "auto",
) -> Path:
    """Export a run directory's model to ``output`` (``.tflite``) with metadata.

    Writes atomically (no half-written file under the final name), writes
    ``labels.txt`` beside it, and (``remember``) records it as this machine's latest
    model. For ``int8`` the calibration windows default to 200 training windows of the
    run, and ``int8_recipe="auto"`` converts every recipe of :data:`INT8_RECIPES` and
    keeps the one whose top-1 agrees best with float32 on the run's validation windows
    (agreement decides, not habit: which layers must stay float differs from model to
    model). A quantized export carries its measured agreement in its metadata
    (``settings["agreement_with_float32"]``; ``birdsong info`` shows it).
    """
    from .metadata import add_metadata
    from .registry import remember_model

    run_dir, output = Path(run_dir), Path(output)
    # before converting: not a folder, not a file of the run itself (e.g. its model.keras)
    check_output_file(output, inputs=[p for p in run_dir.glob("*") if p.is_file()], name="output")
    if int8_recipe != "auto" and int8_recipe not in INT8_RECIPES:
        raise parameter_error(
            "int8_recipe", f"'auto' or one of {', '.join(INT8_RECIPES)}", int8_recipe
        )
    keras_model, config, labels = _run_parts(run_dir, model)
    if quantize == "int8" and representative is None:
        representative = representative_windows(run_dir, config, seed=config.seed)
    recipes = (
        (list(INT8_RECIPES) if int8_recipe == "auto" else [int8_recipe])
        if quantize == "int8"
        else [DEFAULT_INT8_RECIPE]
    )
    flats = {
        r: convert(keras_model, quantize=quantize, representative=representative, int8_recipe=r)
        for r in recipes
    }
    agreement = (
        _agreements(run_dir, keras_model, config, labels, flats) if quantize != "none" else {}
    )
    chosen = max(recipes, key=lambda r: agreement.get(r, {}).get("top1_agreement", 0.0))
    flat = flats[chosen]
    f = config.features
    from .rundir import RunDir

    settings = model_settings(
        config, quantize=quantize, thresholds=RunDir(run_dir).read_thresholds()
    )
    if quantize == "int8":
        settings["int8_recipe"] = chosen
    if agreement.get(chosen):
        settings["agreement_with_float32"] = agreement[chosen]
    flat = add_metadata(
        flat,
        labels=labels,
        sample_rate=f.sample_rate,
        num_samples=f.num_samples,
        channels=1,
        name=f"birdsong {len(labels)}-species classifier",
        version=__version__,
        description=(
            f"Bird song classifier ({len(labels)} species). Input: "
            f"{f.clip_seconds:g} s mono float32 waveform at "
            f"{f.sample_rate} Hz in [-1, 1]. Output: probabilities."
        ),
        settings=settings,
    )
    atomic_write_bytes(output, flat)
    atomic_write_text(
        output.with_name("labels.txt")
        if output.name != "labels.txt"
        else output.with_suffix(".labels.txt"),
        "\n".join(labels) + "\n",
    )
    if remember:
        try:
            remember_model(output)
        except OSError as exc:
            log.warning("could not record %s as the latest model: %s", output, exc)
    log.info("exported %s (%s, %.2f MB)", output, quantize, output.stat().st_size / 1e6)
    return output


def _scores_of(flat: bytes, windows: np.ndarray, labels: list[str], sample_rate: int) -> np.ndarray:
    import tempfile

    from .inference import Classifier

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "variant.tflite"
        path.write_bytes(flat)
        return Classifier(path, labels=labels, sample_rate=sample_rate).predict_windows(windows)


def _agreements(
    run_dir: Path, keras_model, config: TrainConfig, labels: list[str], flats: dict[str, bytes]
) -> dict[str, dict[str, float]]:
    """Top-1 agreement of each quantized flatbuffer with the float32 conversion on up to
    200 validation windows of the run; empty when the run has none."""
    try:
        windows = representative_windows(
            run_dir, config, split="validation", limit=200, seed=config.seed + 1
        )
    except ModelError as exc:
        log.warning("no validation windows to measure the quantized model against: %s", exc)
        return {}
    rate = config.features.sample_rate
    ref = _scores_of(convert(keras_model), windows, labels, rate)
    out = {}
    for name, flat in flats.items():
        got = _scores_of(flat, windows, labels, rate)
        out[name] = {
            "windows": int(len(windows)),
            "top1_agreement": float(np.mean(ref.argmax(1) == got.argmax(1))),
            "max_abs_difference": float(np.abs(ref - got).max()),
        }
    return out


def agreement_with_float32(
    run_dir: str | os.PathLike, model_path: str | os.PathLike, *, limit: int = 200
) -> dict[str, float]:
    """Top-1 agreement of an exported variant with the float32 export on held-out
    (validation) windows of the run, plus the largest score difference."""
    import tempfile

    from .inference import Classifier

    run_dir = Path(run_dir)
    keras_model, config, labels = _run_parts(run_dir, None)
    windows = representative_windows(
        run_dir, config, split="validation", limit=limit, seed=config.seed + 1
    )
    with tempfile.TemporaryDirectory() as tmp:
        ref_path = Path(tmp) / "float32.tflite"
        ref_path.write_bytes(convert(keras_model))
        reference = Classifier(ref_path, labels=labels, sample_rate=config.features.sample_rate)
        ref = reference.predict_windows(windows)
    got = Classifier(model_path).predict_windows(windows)
    return {
        "windows": int(len(windows)),
        "top1_agreement": float(np.mean(ref.argmax(1) == got.argmax(1))),
        "max_abs_difference": float(np.abs(ref - got).max()),
    }
