"""The frontend: one Keras layer from waveform to the image MobileNetV2 sees.

``MelSpectrogram`` is the project's only spectrogram implementation. Training runs it
inside the model, the exported ``.tflite`` contains it (it converts with builtin ops
only), and the PNG images for people are rendered by it (see :mod:`birdsong.images`).

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
   one channel (the model folds MobileNetV2's three identical input channels into its
   first convolution, see :func:`birdsong.model.fold_input_channels`).

How the spectrum is computed (``spectrum``), the same numbers either way:

- ``"matmul"`` (default): built from the ops XNNPACK accelerates on CPUs. Frames are cut
  by reshaping the waveform into hop-sized blocks, slices and one concat (``tf.signal
  .frame`` would become a GATHER, which XNNPACK does not run). The DFT of each frame is
  split Cooley-Tukey style, ``n_fft = A * B``: a batched matmul per residue ``a`` over the
  ``B`` samples ``x[a + A b]`` whose weights carry the Hann window, the ``2 / sum(window)``
  scale and the twiddle factors, then one shared ``2A -> K/B`` matmul each for the real and
  imaginary parts; only the bins a mel filter uses (below ``fmax``) are computed, and
  ``re^2 + im^2`` goes straight into a mel matrix whose rows follow the DFT's output
  order and whose columns are already flipped for the image. About 47 M multiply-adds
  per 3-s window at the defaults (mel matrix included), against ~250 M for one DFT
  matmul over all bins.
- ``"rfft"``: ``tf.signal.frame`` + ``tf.signal.rfft`` (TFLite RFFT2D, not accelerated by
  XNNPACK). Layers saved before the option existed load with this path and three
  channels, exactly as they were trained.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import FeatureConfig, from_dict, to_dict
from .errors import parameter_error, require

__all__ = [
    "SPECTRUM_METHODS",
    "MelSpectrogram",
    "SpecAugment",
    "hz_to_mel",
    "mel_filterbank",
    "mel_to_hz",
]


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa's default."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(
        hz >= min_log_hz,
        min_log_mel + np.log(np.maximum(hz, 1e-12) / min_log_hz) / logstep,
        hz / f_sp,
    )


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(
        mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel
    )


def mel_filterbank(
    *, sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> np.ndarray:
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


SPECTRUM_METHODS = ("matmul", "rfft")


def _split(n_fft: int) -> tuple[int, int]:
    """``n_fft = A * B`` with ``A`` and ``B`` as close as possible (fewest multiply-adds)."""
    b = 2 ** (int(np.log2(n_fft)) // 2)
    return n_fft // b, b


class _DftPlan:
    """Constants of the ``"matmul"`` spectrum path (see the module docstring).

    For ``n = a + A b`` and ``k = B k_a + k_b``::

        X[k] = sum_a exp(-2 pi i k_a a / A) * Y[a, k_b]
        Y[a, k_b] = sum_b x[a + A b] * w[a + A b] * exp(-2 pi i (k_b b / B + k_b a / n_fft))
    """

    def __init__(
        self, c: FeatureConfig, window: np.ndarray, scale: float, filterbank: np.ndarray
    ) -> None:
        n = c.n_fft
        self.a, self.b = a_len, b_len = _split(n)
        used = np.nonzero(filterbank.any(axis=1))[0]
        bins = int(used.max()) + 1 if used.size else 1  # bins below fmax
        self.ka = -(-bins // b_len)
        a = np.arange(a_len)[:, None, None]
        b = np.arange(b_len)[None, :, None]
        kb = np.arange(b_len)[None, None, :]
        phase = -2.0 * np.pi * (kb * b / b_len + kb * a / n)
        w = (window.astype(np.float64) * scale)[a + a_len * b]
        # (A, B, 2B): per residue a, samples b -> [real | imaginary] of Y[a, k_b]
        self.stage1 = np.concatenate([w * np.cos(phase), w * np.sin(phase)], axis=-1).astype(
            np.float32
        )
        phase2 = -2.0 * np.pi * np.arange(a_len)[:, None] * np.arange(self.ka)[None] / a_len
        cos, sin = np.cos(phase2), np.sin(phase2)
        # [Yr | Yi] (2A) -> Re X, Im X at k = B k_a + k_b (k_a < ka)
        self.real = np.concatenate([cos, -sin], axis=0).astype(np.float32)
        self.imag = np.concatenate([sin, cos], axis=0).astype(np.float32)
        k = b_len * np.arange(self.ka)[None, :] + np.arange(b_len)[:, None]  # (B, ka)
        mel = np.zeros((b_len, self.ka, c.n_mels), np.float32)
        inside = k < filterbank.shape[0]
        mel[inside] = filterbank[k[inside]]
        self.mel = mel.reshape(b_len * self.ka, c.n_mels)  # rows in (k_b, k_a) order
        self.blocks = -(-n // c.hop_length)  # hop-sized blocks spanned by one frame

    def macs_per_frame(self) -> int:
        """Multiply-adds of the three matmuls for one STFT frame."""
        return int(self.stage1.size + 2 * self.real.size * self.b + self.mel.size)


@keras.saving.register_keras_serializable(package="birdsong")
class MelSpectrogram(keras.layers.Layer):
    """Waveform windows ``(batch, num_samples)`` -> images ``(batch, H, W, channels)``
    in [-1, 1].

    Parameters
    ----------
    config : FeatureConfig
        Sample rate, window length, STFT, mel and loudness settings.
    spectrum : {"matmul", "rfft"}
        How the spectrum is computed (same numbers; ``"matmul"`` is the fast one on
        CPUs, see the module docstring).
    channels : {1, 3}
        Image channels: 1, or 3 identical ones (what models made before the channel fold
        expect).
    """

    def __init__(
        self,
        config: FeatureConfig | None = None,
        *,
        spectrum: str = "matmul",
        channels: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if spectrum not in SPECTRUM_METHODS:
            raise parameter_error(
                "spectrum",
                "one of " + ", ".join(SPECTRUM_METHODS),
                spectrum,
                owner="MelSpectrogram",
            )
        if channels not in (1, 3) or isinstance(channels, bool):
            raise parameter_error("channels", "1 or 3", channels, owner="MelSpectrogram")
        self.config = config or FeatureConfig()
        self.spectrum, self.channels = spectrum, channels
        c = self.config
        self._window = np.hanning(c.n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
        self._scale = float(2.0 / self._window.sum())
        self._filterbank = mel_filterbank(
            sample_rate=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax
        )
        self._plan = (
            _DftPlan(c, self._window, self._scale, self._filterbank)
            if spectrum == "matmul"
            else None
        )

    # -- pieces, each usable on its own (tests, PNG rendering) -------------------------
    def frames(self, waveform):
        """STFT frames ``(batch, frames, n_fft)``, unwindowed.

        ``"matmul"``: hop-sized blocks, slices and a concat (builtin ops XNNPACK runs);
        ``"rfft"``: ``tf.signal.frame``.
        """
        tf = _tf()
        c = self.config
        x = tf.convert_to_tensor(waveform, tf.float32)
        if self._plan is None:
            return tf.signal.frame(x, c.n_fft, c.hop_length)
        frames, blocks, hop = c.num_frames, self._plan.blocks, c.hop_length
        need = (frames + blocks - 1) * hop
        # when the last frame's final block runs past the window, pad (zeros never used)
        x = x[:, :need] if need <= c.num_samples else tf.pad(x, [[0, 0], [0, need - c.num_samples]])
        x = tf.reshape(x, [-1, frames + blocks - 1, hop])
        x = tf.concat([x[:, j : j + frames] for j in range(blocks)], axis=-1)
        return x[..., : c.n_fft]

    def _mel(self, waveform, *, flipped: bool):
        tf = _tf()
        c = self.config
        if self._plan is None:
            spec = tf.signal.rfft(self.frames(waveform) * self._window)
            power = tf.math.square(tf.math.abs(spec) * self._scale)
            mel = tf.tensordot(power, self._filterbank, axes=1)
            return tf.reverse(mel, axis=[2]) if flipped else mel
        p = self._plan
        x = tf.reshape(self.frames(waveform), [-1, p.b, p.a])  # (batch*frames, b, a)
        y = tf.matmul(tf.transpose(x, [2, 0, 1]), p.stage1)  # (a, batch*frames, 2B)
        y = tf.reshape(y, [p.a, -1, 2, p.b])
        y = tf.reshape(tf.transpose(y, [1, 3, 2, 0]), [-1, 2 * p.a])  # [Yr | Yi] per k_b
        re, im = tf.matmul(y, p.real), tf.matmul(y, p.imag)
        power = tf.reshape(re * re + im * im, [-1, p.b * p.ka])
        mel = tf.matmul(power, p.mel[:, ::-1] if flipped else p.mel)
        return tf.reshape(mel, [-1, c.num_frames, c.n_mels])

    def power_mel(self, waveform):
        """Scaled mel power, shape ``(batch, frames, n_mels)``."""
        return self._mel(waveform, flipped=False)

    def _decibels(self, mel):
        tf = _tf()
        c = self.config
        floor = float(10.0 ** ((c.min_reference_db - c.db_range) / 10.0))
        return 10.0 * tf.math.log(tf.maximum(mel, floor)) / np.log(10.0).astype(np.float32)

    def decibels(self, waveform):
        """Mel power in dB re full scale, shape ``(batch, frames, n_mels)``."""
        return self._decibels(self.power_mel(waveform))

    def flatten_background(self, db):
        """Shift each band of ``db`` (batch, frames, mels) by its background level less
        the bands' mean background (``band_floor_percentile``; identity when 0)."""
        tf = _tf()
        c = self.config
        if not c.band_floor_percentile:
            return db
        k = max(1, int(round(c.band_floor_percentile / 100.0 * c.num_frames)))
        lowest = tf.math.top_k(-tf.transpose(db, [0, 2, 1]), k=k).values  # (b, mel, k)
        floor = -lowest[:, :, k - 1]  # the k-th lowest value of each band: (b, mel)
        shift = floor - tf.reduce_mean(floor, axis=1, keepdims=True)
        return db - tf.expand_dims(shift, 1)

    def call(self, waveform):
        tf = _tf()
        c = self.config
        db = self._decibels(self._mel(waveform, flipped=True))  # high bands first
        db = self.flatten_background(db)
        peak = tf.reduce_max(db, axis=[1, 2], keepdims=True)
        reference = tf.maximum(peak, c.min_reference_db)
        scaled = tf.clip_by_value((db - reference) / c.db_range + 1.0, 0.0, 1.0) * 2.0 - 1.0
        image = tf.transpose(scaled, [0, 2, 1])  # (b, mel, t), low frequencies at the bottom
        image = tf.image.resize(
            tf.expand_dims(image, -1), [c.image_size, c.image_size], method="bilinear"
        )
        return tf.tile(image, [1, 1, 1, 3]) if self.channels == 3 else image

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.config.image_size, self.config.image_size, self.channels)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "config": to_dict(self.config),
            "spectrum": self.spectrum,
            "channels": self.channels,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MelSpectrogram:
        config = dict(config)
        features = config.pop("config", None)
        # Saved before these options existed: the RFFT path and a 3-channel image.
        config.setdefault("spectrum", "rfft")
        config.setdefault("channels", 3)
        return cls(from_dict(FeatureConfig, features) if features else None, **config)


@keras.saving.register_keras_serializable(package="birdsong")
class SpecAugment(keras.layers.Layer):
    """Random frequency and time masks on spectrogram images, only while training.

    Masked bands are set to each image's mean value (a flat, unremarkable patch rather
    than an artificial black edge). At inference, and so in the exported model, the
    layer is the identity.
    """

    def __init__(
        self,
        *,
        freq_masks: int = 1,
        freq_mask_fraction: float = 0.05,
        time_masks: int = 2,
        time_mask_fraction: float = 0.1,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
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
                size - width, "float32"
            )
            width = ops.cast(width, "float32")
            inside = ops.logical_and(pos >= start, pos < start + width)
            keep = keep * (1.0 - ops.cast(inside, "float32"))
        shape = [batch, 1, 1, 1]
        shape[axis] = size
        return ops.reshape(keep, shape)

    def call(self, images, training=None):
        if not training or (self.freq_masks == 0 and self.time_masks == 0):
            return images
        keep = self._masks(images, self.freq_masks, self.freq_mask_fraction, 1) * self._masks(
            images, self.time_masks, self.time_mask_fraction, 2
        )
        mean = keras.ops.mean(images, axis=(1, 2, 3), keepdims=True)
        return images * keep + mean * (1.0 - keep)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "freq_masks": self.freq_masks,
            "freq_mask_fraction": self.freq_mask_fraction,
            "time_masks": self.time_masks,
            "time_mask_fraction": self.time_mask_fraction,
            "seed": self.seed,
        }
