"""The classifier: waveform -> frontend -> MobileNetV2 -> pooling -> dropout -> softmax.

The backbone is called with ``training=False`` so its BatchNorm layers stay in inference
mode in both phases (the Keras transfer-learning recipe). Layers are named so that the
training code can find them: ``frontend``, ``spec_augment``, ``backbone``, ``pool``,
``dropout``, ``species``.

The frontend emits one image channel. MobileNetV2 was made for RGB; fed a grey image
repeated over three channels, its first convolution computes the same as one over a
single channel with the kernel summed over its input channels, at a third of the work.
:func:`fold_input_channels` makes that backbone from a 3-channel one (pretrained weights
load into the 3-channel form, which is what their files hold).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from .config import TrainConfig
from .errors import InvalidParameterError, ModelError, parameter_error, require

__all__ = [
    "build_model",
    "feature_extractor",
    "fold_input_channels",
    "head_model",
    "load_keras_model",
    "set_fine_tuning",
]

log = logging.getLogger(__name__)


def _resolve_weights(weights: str | None) -> str | None:
    if weights is None or weights.lower() in ("none", "random", ""):
        return None
    if weights.lower() == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise InvalidParameterError(
            "The 'weights' parameter must be 'imagenet', 'none' or the path of a weights "
            f"file. Got {weights!r} instead (no such file)."
        )
    return str(path)


def fold_input_channels(backbone, *, alpha: float):
    """A one-channel copy of a 3-channel MobileNetV2 ``include_top=False`` backbone.

    Every weight is copied; the first convolution's kernel (``Conv1``, zero padding, no
    bias) is summed over its three input channels, so ``folded(image)`` equals
    ``backbone(tile(image, 3 channels))`` up to float rounding. Layer names (and the
    model's name) are kept, so ``set_fine_tuning`` finds the same layers.
    """
    keras = require("keras", purpose="build the model")
    height, width, channels = backbone.input_shape[1:]
    if channels != 3:
        raise InvalidParameterError(
            f"The 'backbone' parameter must take 3 input channels. Got {channels} instead."
        )
    folded = keras.applications.MobileNetV2(
        input_shape=(height, width, 1),
        alpha=alpha,
        include_top=False,
        weights=None,
        name=backbone.name,
    )
    source = {layer.name: layer for layer in backbone.layers}
    for layer in folded.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        weights = source[layer.name].get_weights()
        if layer.name == "Conv1":
            weights = [weights[0].sum(axis=2, keepdims=True)]
        if weights:
            layer.set_weights(weights)
    return folded


def build_model(
    labels: Sequence[str], config: TrainConfig | None = None, *, load_weights: bool = True
):
    """Build the full waveform-to-species model (uncompiled).

    ``config.weights``: ``"imagenet"`` (downloaded by Keras), ``None``/``"none"``
    (random initialisation), or a path to a MobileNetV2 ``include_top=False`` weights
    file such as ``mobilenet_v2_..._no_top.h5`` or a ``.weights.h5``.
    ``load_weights=False`` builds the same architecture without loading them (a
    checkpoint will supply every weight).
    """
    keras = require("keras", purpose="build the model")
    from .features import MelSpectrogram, SpecAugment

    config = config or TrainConfig()
    if len(labels) < 2:
        raise parameter_error("labels", "a list of at least 2 species", list(labels))
    f, aug = config.features, config.augment
    weights = _resolve_weights(config.weights)
    pretrained = config.pretrained
    if not load_weights:
        weights = None
    size = f.image_size
    try:
        # Weights files hold the 3-channel (RGB) network: load there, then fold.
        backbone = keras.applications.MobileNetV2(
            input_shape=(size, size, 3 if weights else 1),
            alpha=config.alpha,
            include_top=False,
            weights=weights,
            name="backbone",
        )
    except Exception as exc:  # download failure, wrong file, shape mismatch
        hint = (
            " (no internet? pass --weights none, or a local weights file)"
            if weights == "imagenet"
            else ""
        )
        raise ModelError(
            f"Cannot load MobileNetV2 weights {config.weights!r} for alpha="
            f"{config.alpha}: {exc}{hint}"
        ) from exc
    if weights:
        backbone = fold_input_channels(backbone, alpha=config.alpha)
    backbone.trainable = False
    if not pretrained:
        # Keras's MobileNetV2 uses BatchNorm momentum 0.999, tuned for ImageNet-length
        # runs; from scratch on a small dataset the moving statistics would barely move
        # in the few hundred steps of a run, and validation would see wrong statistics.
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9
    waveform = keras.Input((f.num_samples,), name="waveform")
    x = MelSpectrogram(f, name="frontend")(waveform)
    x = SpecAugment(
        freq_masks=aug.freq_masks,
        freq_mask_fraction=aug.freq_mask_fraction,
        time_masks=aug.time_masks,
        time_mask_fraction=aug.time_mask_fraction,
        seed=config.seed,
        name="spec_augment",
    )(x)
    # Pretrained: BatchNorm keeps ImageNet statistics (inference mode) in both phases.
    # From scratch there are no statistics worth keeping, so BatchNorm learns them.
    x = backbone(x, training=False) if pretrained else backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    activation = "sigmoid" if config.multi_label else "softmax"
    out = keras.layers.Dense(len(labels), activation=activation, name="species")(x)
    return keras.Model(waveform, out, name="birdsong")


def feature_extractor(model):
    """Waveform -> pooled backbone features (what phase 1 caches)."""
    keras = require("keras")
    return keras.Model(model.input, model.get_layer("pool").output, name="features")


def head_model(model):
    """Pooled features -> species, sharing the dropout and dense layers of ``model``."""
    keras = require("keras")
    pool = model.get_layer("pool")
    inp = keras.Input(pool.output.shape[1:], name="features")
    out = model.get_layer("species")(model.get_layer("dropout")(inp))
    return keras.Model(inp, out, name="head")


def set_fine_tuning(model, fine_tune_from: str | int, *, pretrained: bool = True) -> list[str]:
    """Unfreeze the backbone from ``fine_tune_from`` (a layer name or index) upward.

    ``"auto"`` means the whole backbone, pretrained or not: on the field benchmark,
    fine-tuning all of a pretrained MobileNetV2 at 1e-4 beat the top three blocks
    (``block_13_expand``, the earlier default) with 3 recordings per species (0.74 vs
    0.66 per-recording top-1), 10 (0.87 vs 0.84) and 27 (0.97 vs 0.96), in no more
    time (training passes ``block_13_expand`` instead when a species has a single
    recording, see :func:`birdsong.training._fine_tune_start`). For a pretrained
    backbone BatchNormalization layers stay frozen (their statistics and scales do not
    move) and run in inference mode. Returns the names of the unfrozen layers that hold
    weights.
    """
    keras = require("keras")
    backbone = model.get_layer("backbone")
    names = [layer.name for layer in backbone.layers]
    if fine_tune_from == "auto":
        fine_tune_from = 0
    if isinstance(fine_tune_from, int) or str(fine_tune_from).lstrip("-").isdigit():
        start = int(fine_tune_from)
        if not -len(names) <= start < len(names):
            raise parameter_error(
                "fine_tune_from", f"a layer index below {len(names)}", fine_tune_from
            )
        start %= len(names)
    elif fine_tune_from in names:
        start = names.index(fine_tune_from)
    else:
        blocks = sorted(
            {n.split("_")[0] + "_" + n.split("_")[1] for n in names if n.startswith("block_")},
            key=lambda s: int(s.split("_")[1]),
        )
        raise InvalidParameterError(
            f"The 'fine_tune_from' parameter must name a MobileNetV2 layer. Got "
            f"{fine_tune_from!r} instead. Examples: {blocks[-3]}_expand, Conv_1."
        )
    backbone.trainable = True
    unfrozen = []
    for i, layer in enumerate(backbone.layers):
        train = i >= start and not (
            pretrained and isinstance(layer, keras.layers.BatchNormalization)
        )
        layer.trainable = train
        if train and layer.weights:
            unfrozen.append(layer.name)
    return unfrozen


def load_keras_model(path: str | os.PathLike):
    """Load a saved ``.keras`` model (or a run directory holding ``model.keras``).

    Loads with ``safe_mode=True``: no Python code (lambdas) is deserialised.
    """
    keras = require("keras", purpose="load a Keras model")
    from . import features  # noqa: F401  (registers the custom layers)

    p = Path(path)
    if p.is_dir():
        p = p / "model.keras"
    if not p.exists():
        raise FileNotFoundError(f"No such model: {p}")
    try:
        return keras.models.load_model(p, safe_mode=True, compile=False)
    except Exception as exc:
        raise ModelError(f"{p}: cannot load this Keras model ({exc})") from exc
