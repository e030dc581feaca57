"""The one frontend: librosa parity, loudness rules, TFLite conversion with builtin ops,
Keras vs LiteRT equality, and the PNG images rendered by it."""

from __future__ import annotations

import numpy as np
import pytest

librosa = pytest.importorskip("librosa")
tf = pytest.importorskip("tensorflow")

from birdsong.config import FeatureConfig  # noqa: E402
from birdsong.features import MelSpectrogram, SpecAugment, mel_filterbank  # noqa: E402


def _noise(n, seed=0, amp=0.1):
    return (amp * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_filterbank_equals_librosa():
    c = FeatureConfig()
    ours = mel_filterbank(sample_rate=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels,
                          fmin=c.fmin, fmax=c.fmax)
    ref = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin,
                              fmax=c.fmax, htk=False, norm=None).T
    np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("config", [FeatureConfig(), FeatureConfig(
    sample_rate=22050, clip_seconds=2.0, n_fft=512, stft_hop_seconds=0.01, n_mels=64,
    fmin=100.0, fmax=11000.0, image_size=96)])
def test_mel_power_agrees_with_librosa(config):
    """Tolerance: relative 1e-4 of each window's peak (float32 FFTs on both sides)."""
    x = _noise(config.num_samples)
    layer = MelSpectrogram(config)
    ours = np.asarray(layer.power_mel(x[None]))[0] / layer._scale ** 2
    ref = librosa.feature.melspectrogram(
        y=x, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        center=False, power=2.0, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax,
        htk=False, norm=None).T
    assert ours.shape == ref.shape == (config.num_frames, config.n_mels)
    assert np.abs(ours - ref).max() <= 1e-4 * ref.max()


def test_image_shape_range_and_full_scale_sine():
    c = FeatureConfig()
    layer = MelSpectrogram(c)
    t = np.arange(c.num_samples) / c.sample_rate
    sine = np.sin(2 * np.pi * 3000 * t).astype(np.float32)[None]
    assert abs(float(np.max(layer.decibels(sine)))) < 1.0  # ~0 dB re full scale
    img = np.asarray(layer(np.concatenate([sine, _noise(c.num_samples)[None]])))
    assert img.shape == (2, 224, 224, 3)
    assert img.min() >= -1.0 and img.max() <= 1.0
    assert np.array_equal(img[..., 0], img[..., 2])


def test_low_frequencies_at_the_bottom_of_the_image():
    c = FeatureConfig(image_size=64)
    t = np.arange(c.num_samples) / c.sample_rate
    low = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)[None]
    img = np.asarray(MelSpectrogram(c)(low))[0, :, :, 0]
    rows = img.mean(axis=1)
    assert rows.argmax() > 40  # bright row near the bottom (row 63 = lowest band)


def test_silence_stays_dark_and_quiet_clips_are_not_stretched():
    c = FeatureConfig(image_size=64)
    layer = MelSpectrogram(c)
    silent = np.asarray(layer(np.zeros((1, c.num_samples), np.float32)))
    assert silent.max() == -1.0
    loud = _noise(c.num_samples, amp=0.3)
    quiet = loud * 10 ** (-70 / 20)  # 70 dB quieter, below min_reference_db
    img_loud, img_quiet = np.asarray(layer(np.stack([loud, quiet])))
    assert img_loud.mean() > -0.5
    assert img_quiet.mean() < img_loud.mean() - 0.5  # not normalised up to full contrast
    # above the reference floor, loudness does not matter (per-window reference)
    img_half = np.asarray(layer((loud * 0.5)[None]))[0]
    assert np.abs(img_half - img_loud).max() < 1e-3


def test_tflite_builtin_ops_and_litert_parity():
    keras = pytest.importorskip("keras")
    from ai_edge_litert.interpreter import Interpreter

    c = FeatureConfig(image_size=96)
    inp = keras.Input((c.num_samples,))
    model = keras.Model(inp, MelSpectrogram(c)(inp))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops
    flat = conv.convert()
    it = Interpreter(model_content=flat)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    for seed, amp in ((0, 0.1), (1, 0.001), (2, 0.9)):
        x = _noise(c.num_samples, seed, amp)[None]
        it.set_tensor(i["index"], x)
        it.invoke()
        assert np.abs(it.get_tensor(o["index"]) - np.asarray(model(x))).max() <= 1e-4


def test_layer_round_trips_through_keras_config():
    c = FeatureConfig(image_size=48, n_mels=32)
    layer = MelSpectrogram(c, name="frontend")
    clone = MelSpectrogram.from_config(layer.get_config())
    assert clone.config == c
    x = _noise(c.num_samples)[None]
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(clone(x)))


def test_spec_augment_masks_only_in_training():
    layer = SpecAugment(freq_masks=2, freq_mask_fraction=0.2, time_masks=2,
                        time_mask_fraction=0.2, seed=3)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    y = np.asarray(layer(x, training=True))
    changed = (y != x).mean()
    assert 0.0 < changed < 0.7
