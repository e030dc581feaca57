"""The frontend: one Keras layer from waveform to the image MobileNetV2 sees.

``MelSpectrogram`` is the project's only spectrogram implementation. Training runs it
inside the model, the exported ``.tflite`` contains it (it converts with builtin ops
only: STFT via RFFT, a matmul with the mel filterbank, log, resize), and the PNG images
for people are rendered by it (see :mod:`birdsong.images`).

Pipeline for a batch of windows ``(batch, num_samples)``:

1. STFT (periodic Hann window, ``n_fft``, hop ``stft_hop_seconds``, no centre padding),
   magnitude scaled by ``2 / sum(window)`` so a full-scale sine peaks near 0 dB;
2. power -> mel with a Slaney-scale triangular filterbank (peak 1, librosa's
   ``htk=False, norm=None``) between ``fmin`` and ``fmax``;
3. dB: ``10 log10(mel)``, floored at ``min_reference_db - db_range`` (digital silence
   becomes exactly -1 in the image);
4. loudness: relative to ``max(window peak, min_reference_db)`` over ``db_range`` dB,
   clipped to [-1, 1] (a near-silent window is not stretched to full contrast);
5. image: low frequencies at the bottom, resized (bilinear) to ``image_size`` square,
   repeated over 3 channels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import FeatureConfig, from_dict, to_dict
from .errors import require

__all__ = ["MelSpectrogram", "SpecAugment", "hz_to_mel", "mel_filterbank", "mel_to_hz"]

def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa's default."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz,
                    min_log_mel + np.log(np.maximum(hz, 1e-12) / min_log_hz) / logstep,
                    hz / f_sp)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)),
                    f_sp * mel)


def mel_filterbank(*, sample_rate: int, n_fft: int, n_mels: int, fmin: float,
                   fmax: float) -> np.ndarray:
    """Triangular mel filters, shape ``(n_fft // 2 + 1, n_mels)``, each peaking at 1.

    Equal to ``librosa.filters.mel(..., htk=False, norm=None).T``.
    """
    fft_hz = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    return np.maximum(0, np.minimum(lower, upper)).T.astype(np.float32)


def _keras():
    return require("keras", purpose="build the spectrogram frontend")


def _tf():
    return require("tensorflow", purpose="build the spectrogram frontend")


keras = _keras()


@keras.saving.register_keras_serializable(package="birdsong")
class MelSpectrogram(keras.layers.Layer):
    """Waveform windows ``(batch, num_samples)`` -> images ``(batch, H, W, 3)`` in [-1, 1].

    Parameters
    ----------
    config : FeatureConfig
        Sample rate, window length, STFT, mel and loudness settings.
    """

    def __init__(self, config: FeatureConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config or FeatureConfig()
        c = self.config
        self._window = np.hanning(c.n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
        self._scale = float(2.0 / self._window.sum())
        self._filterbank = mel_filterbank(sample_rate=c.sample_rate, n_fft=c.n_fft,
                                          n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)

    # -- pieces, each usable on its own (tests, PNG rendering) -------------------------
    def power_mel(self, waveform):
        """Scaled mel power, shape ``(batch, frames, n_mels)``."""
        tf = _tf()
        c = self.config
        x = tf.convert_to_tensor(waveform, tf.float32)
        frames = tf.signal.frame(x, c.n_fft, c.hop_length)  # (b, t, n_fft)
        spec = tf.signal.rfft(frames * self._window)
        power = tf.math.square(tf.math.abs(spec) * self._scale)
        return tf.tensordot(power, self._filterbank, axes=1)

    def decibels(self, waveform):
        """Mel power in dB re full scale, shape ``(batch, frames, n_mels)``."""
        tf = _tf()
        c = self.config
        floor = float(10.0 ** ((c.min_reference_db - c.db_range) / 10.0))
        mel = self.power_mel(waveform)
        return 10.0 * tf.math.log(tf.maximum(mel, floor)) / np.log(10.0).astype(np.float32)

    def call(self, waveform):
        tf = _tf()
        c = self.config
        db = self.decibels(waveform)
        peak = tf.reduce_max(db, axis=[1, 2], keepdims=True)
        reference = tf.maximum(peak, c.min_reference_db)
        scaled = tf.clip_by_value((db - reference) / c.db_range + 1.0, 0.0, 1.0) * 2.0 - 1.0
        image = tf.reverse(tf.transpose(scaled, [0, 2, 1]), axis=[1])  # (b, mel, t)
        image = tf.image.resize(tf.expand_dims(image, -1), [c.image_size, c.image_size],
                                method="bilinear")
        return tf.tile(image, [1, 1, 1, 3])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.config.image_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "config": to_dict(self.config)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MelSpectrogram:
        config = dict(config)
        features = config.pop("config", None)
        return cls(from_dict(FeatureConfig, features) if features else None, **config)


@keras.saving.register_keras_serializable(package="birdsong")
class SpecAugment(keras.layers.Layer):
    """Random frequency and time masks on spectrogram images, only while training.

    Masked bands are set to each image's mean value (a flat, unremarkable patch rather
    than an artificial black edge). At inference, and so in the exported model, the
    layer is the identity.
    """

    def __init__(self, *, freq_masks: int = 1, freq_mask_fraction: float = 0.05,
                 time_masks: int = 2, time_mask_fraction: float = 0.1, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.freq_masks, self.freq_mask_fraction = freq_masks, freq_mask_fraction
        self.time_masks, self.time_mask_fraction = time_masks, time_mask_fraction
        self.seed = seed
        self._rng = keras.random.SeedGenerator(seed)

    def _masks(self, images, count: int, fraction: float, axis: int):
        ops = keras.ops
        size = ops.shape(images)[axis]
        batch = ops.shape(images)[0]
        keep = ops.ones((batch, size), dtype="float32")
        max_width = max(1, int(fraction * images.shape[axis]))
        pos = ops.arange(size, dtype="float32")[None, :]
        for _ in range(count):
            width = keras.random.randint((batch, 1), 0, max_width + 1, seed=self._rng)
            start = keras.random.uniform((batch, 1), seed=self._rng) * ops.cast(
                size - width, "float32")
            width = ops.cast(width, "float32")
            inside = ops.logical_and(pos >= start, pos < start + width)
            keep = keep * (1.0 - ops.cast(inside, "float32"))
        shape = [batch, 1, 1, 1]
        shape[axis] = size
        return ops.reshape(keep, shape)

    def call(self, images, training=None):
        if not training or (self.freq_masks == 0 and self.time_masks == 0):
            return images
        keep = (self._masks(images, self.freq_masks, self.freq_mask_fraction, 1)
                * self._masks(images, self.time_masks, self.time_mask_fraction, 2))
        mean = keras.ops.mean(images, axis=(1, 2, 3), keepdims=True)
        return images * keep + mean * (1.0 - keep)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "freq_masks": self.freq_masks,
                "freq_mask_fraction": self.freq_mask_fraction, "time_masks": self.time_masks,
                "time_mask_fraction": self.time_mask_fraction, "seed": self.seed}
