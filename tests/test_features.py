"""The one frontend: librosa parity, loudness rules, TFLite conversion with builtin ops,
Keras vs LiteRT equality, the fast (matmul) spectrum against the RFFT one, and models
saved before the fast path existed."""

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
    ours = mel_filterbank(
        sample_rate=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax
    )
    ref = librosa.filters.mel(
        sr=c.sample_rate,
        n_fft=c.n_fft,
        n_mels=c.n_mels,
        fmin=c.fmin,
        fmax=c.fmax,
        htk=False,
        norm=None,
    ).T
    np.testing.assert_allclose(ours, ref, atol=1e-6)


OTHER = FeatureConfig(
    sample_rate=22050,
    clip_seconds=2.0,
    n_fft=512,
    stft_hop_seconds=0.01,
    n_mels=64,
    fmin=100.0,
    fmax=11000.0,
    image_size=96,
)
# Frame layouts the block framing must get right: blocks past the window's end (padded),
# a hop longer than a frame (one block per frame), a hop that divides n_fft.
PADDED = FeatureConfig(
    sample_rate=16000,
    clip_seconds=1.0,
    n_fft=512,
    stft_hop_seconds=0.0315,
    n_mels=48,
    fmax=7600.0,
    image_size=32,
)
LONG_HOP = FeatureConfig(
    sample_rate=16000,
    clip_seconds=1.0,
    n_fft=256,
    stft_hop_seconds=0.04,
    n_mels=32,
    fmax=8000.0,
    image_size=32,
)
EVEN_HOP = FeatureConfig(
    sample_rate=16000,
    clip_seconds=1.0,
    n_fft=2048,
    stft_hop_seconds=0.016,
    n_mels=64,
    image_size=48,
)


@pytest.mark.parametrize("spectrum", ["matmul", "rfft"])
@pytest.mark.parametrize("config", [FeatureConfig(), OTHER, PADDED])
def test_mel_power_agrees_with_librosa(config, spectrum):
    """Tolerance: relative 1e-4 of each window's peak (float32 FFTs on both sides)."""
    x = _noise(config.num_samples)
    layer = MelSpectrogram(config, spectrum=spectrum)
    ours = np.asarray(layer.power_mel(x[None]))[0] / layer._scale**2
    ref = librosa.feature.melspectrogram(
        y=x,
        sr=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        center=False,
        power=2.0,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
        htk=False,
        norm=None,
    ).T
    assert ours.shape == ref.shape == (config.num_frames, config.n_mels)
    assert np.abs(ours - ref).max() <= 1e-4 * ref.max()


def test_image_shape_range_and_full_scale_sine():
    c = FeatureConfig()
    layer = MelSpectrogram(c)
    t = np.arange(c.num_samples) / c.sample_rate
    sine = np.sin(2 * np.pi * 3000 * t).astype(np.float32)[None]
    assert abs(float(np.max(layer.decibels(sine)))) < 1.0  # ~0 dB re full scale
    img = np.asarray(layer(np.concatenate([sine, _noise(c.num_samples)[None]])))
    assert img.shape == (2, c.image_size, c.image_size, 1)
    assert img.min() >= -1.0 and img.max() <= 1.0
    three = np.asarray(MelSpectrogram(c, channels=3)(sine))
    assert three.shape == (1, c.image_size, c.image_size, 3)
    assert np.array_equal(three[..., 0], three[..., 2])
    np.testing.assert_array_equal(three[..., :1], img[:1])


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


@pytest.mark.parametrize("batch", [None, 1])
@pytest.mark.parametrize("spectrum", ["matmul", "rfft"])
def test_tflite_builtin_ops_and_litert_parity(spectrum, batch):
    keras = pytest.importorskip("keras")
    from ai_edge_litert.interpreter import Interpreter

    c = FeatureConfig(image_size=96)
    inp = keras.Input(batch_shape=(batch, c.num_samples))
    model = keras.Model(inp, MelSpectrogram(c, spectrum=spectrum)(inp))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops
    flat = conv.convert()
    it = Interpreter(model_content=flat)
    it.allocate_tensors()
    ops = {d["op_name"] for d in it._get_ops_details()}
    if spectrum == "matmul":  # ops XNNPACK runs: no RFFT2D, no GATHER from tf.signal.frame
        assert not ops & {"RFFT2D", "GATHER", "COMPLEX_ABS"}, ops
        assert "BATCH_MATMUL" in ops
    else:
        assert "RFFT2D" in ops
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    for seed, amp in ((0, 0.1), (1, 0.001), (2, 0.9)):
        x = _noise(c.num_samples, seed, amp)[None]
        it.set_tensor(i["index"], x)
        it.invoke()
        assert np.abs(it.get_tensor(o["index"]) - np.asarray(model(x))).max() <= 1e-4


@pytest.mark.parametrize("config", [FeatureConfig(), OTHER, PADDED, LONG_HOP, EVEN_HOP])
def test_matmul_spectrum_equals_rfft_spectrum(config):
    """The fast path gives the RFFT path's numbers: mel power within 1e-5 of each window's
    peak, frames exactly, images within 1e-4 (quiet, loud, tonal and silent windows)."""
    fast = MelSpectrogram(config)
    old = MelSpectrogram(config, spectrum="rfft")
    t = np.arange(config.num_samples) / config.sample_rate
    x = np.stack(
        [
            _noise(config.num_samples, 0, 0.1),
            _noise(config.num_samples, 1, 1e-3),
            (0.9 * np.sin(2 * np.pi * 2000 * t)).astype(np.float32),
            np.zeros(config.num_samples, np.float32),
        ]
    )
    np.testing.assert_array_equal(np.asarray(fast.frames(x)), np.asarray(old.frames(x)))
    p_fast, p_old = np.asarray(fast.power_mel(x)), np.asarray(old.power_mel(x))
    assert p_fast.shape == p_old.shape == (4, config.num_frames, config.n_mels)
    peak = p_old.max(axis=(1, 2), keepdims=True) + 1e-30
    assert (np.abs(p_fast - p_old) / peak).max() <= 1e-5
    assert np.abs(np.asarray(fast(x)) - np.asarray(old(x))).max() <= 1e-4


def test_fast_path_computes_a_fraction_of_a_full_dft():
    c = FeatureConfig()
    plan = MelSpectrogram(c)._plan
    full_dft = c.n_fft * 2 * (c.n_fft // 2 + 1) + (c.n_fft // 2 + 1) * c.n_mels
    assert plan.macs_per_frame() < full_dft / 4
    assert plan.ka * plan.b < c.n_fft // 2 + 1  # bins above fmax are never computed


def test_bad_layer_options_are_named():
    from birdsong.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="'spectrum'.*'fft'"):
        MelSpectrogram(FeatureConfig(), spectrum="fft")
    with pytest.raises(InvalidParameterError, match="'channels'.*2"):
        MelSpectrogram(FeatureConfig(), channels=2)


@pytest.mark.parametrize("spectrum,channels", [("matmul", 1), ("rfft", 3)])
def test_layer_round_trips_through_keras_config(spectrum, channels):
    c = FeatureConfig(image_size=48, n_mels=32)
    layer = MelSpectrogram(c, spectrum=spectrum, channels=channels, name="frontend")
    clone = MelSpectrogram.from_config(layer.get_config())
    assert (clone.config, clone.spectrum, clone.channels) == (c, spectrum, channels)
    x = _noise(c.num_samples)[None]
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(clone(x)))


def test_models_saved_before_the_fast_frontend_still_load(tmp_path):
    """A .keras whose frontend config lacks ``spectrum``/``channels`` (saved by an older
    birdsong) loads with the RFFT path and 3 channels, and gives the same scores."""
    import json
    import zipfile

    keras = pytest.importorskip("keras")
    from birdsong.model import load_keras_model

    c = FeatureConfig(
        sample_rate=16000, clip_seconds=1.0, n_fft=512, n_mels=32, fmax=7600.0, image_size=32
    )
    inp = keras.Input((c.num_samples,))
    x = MelSpectrogram(c, spectrum="rfft", channels=3, name="frontend")(inp)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x))
    model = keras.Model(inp, out)
    model.save(tmp_path / "new.keras")
    with (
        zipfile.ZipFile(tmp_path / "new.keras") as src,
        zipfile.ZipFile(tmp_path / "old.keras", "w") as dst,
    ):
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                text = data.decode()
                cfg = json.loads(text)
                front = next(la for la in cfg["config"]["layers"] if la["name"] == "frontend")
                del front["config"]["spectrum"], front["config"]["channels"]
                data = json.dumps(cfg).encode()
                assert data != text.encode()
            dst.writestr(item, data)
    loaded = load_keras_model(tmp_path / "old.keras")
    frontend = loaded.get_layer("frontend")
    assert (frontend.spectrum, frontend.channels) == ("rfft", 3)
    w = _noise(c.num_samples)[None]
    np.testing.assert_allclose(np.asarray(loaded(w)), np.asarray(model(w)), atol=1e-6)


def test_spec_augment_masks_only_in_training():
    layer = SpecAugment(
        freq_masks=2, freq_mask_fraction=0.2, time_masks=2, time_mask_fraction=0.2, seed=3
    )
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    y = np.asarray(layer(x, training=True))
    changed = (y != x).mean()
    assert 0.0 < changed < 0.7


def test_band_limit_augmentation_empties_the_top_band():
    """Band-edge augmentation: a window low-passed at the drawn cutoff has no energy
    above it (as a 22.05 kHz recording has none above 11 kHz); with probability 0 the
    window is untouched."""
    from birdsong.config import AugmentConfig
    from birdsong.pipeline import _augment_fn

    f = FeatureConfig()
    x = tf.constant(_noise(f.num_samples, amp=0.3))
    y, w = tf.constant([1.0, 0.0]), tf.constant(1.0)
    quiet = dict(time_shift_seconds=0.0, gain_db=0.0, noise_probability=0.0)
    always = _augment_fn(
        AugmentConfig(**quiet, band_limit_probability=1.0, band_limit_hz=(8000.0, 8000.0)),
        f,
        seed=0,
    )
    out = np.asarray(always(x, y, w)[0])
    spectrum = np.abs(np.fft.rfft(out)) ** 2
    freqs = np.fft.rfftfreq(f.num_samples, 1 / f.sample_rate)
    assert spectrum[freqs > 8100].sum() < 1e-6 * spectrum[freqs < 7900].sum()
    # below the cutoff the signal is kept
    before = np.abs(np.fft.rfft(np.asarray(x))) ** 2
    np.testing.assert_allclose(spectrum[freqs < 7900], before[freqs < 7900], rtol=1e-3)
    never = _augment_fn(AugmentConfig(**quiet, band_limit_probability=0.0), f, seed=0)
    np.testing.assert_array_equal(np.asarray(never(x, y, w)[0]), np.asarray(x))


def test_speed_perturbation_moves_pitch_within_the_spread():
    """Speed perturbation: a 2 kHz tone comes out between 1.8 and 2.2 kHz with a 0.1
    spread, not always at the same pitch, its centre in place; with 0 it is untouched."""
    from birdsong.config import AugmentConfig
    from birdsong.pipeline import _augment_fn

    f = FeatureConfig()
    t = np.arange(f.num_samples) / f.sample_rate
    x = tf.constant((0.5 * np.sin(2 * np.pi * 2000.0 * t)).astype(np.float32))
    y, w = tf.constant([1.0, 0.0]), tf.constant(1.0)
    quiet = dict(time_shift_seconds=0.0, gain_db=0.0, noise_probability=0.0)
    quiet |= dict(band_limit_probability=0.0)
    fn = _augment_fn(AugmentConfig(**quiet, speed_perturbation=0.1), f, seed=0)
    freqs = np.fft.rfftfreq(f.num_samples, 1 / f.sample_rate)
    peaks = []
    for _ in range(8):
        out = np.asarray(fn(x, y, w)[0])
        peaks.append(freqs[np.argmax(np.abs(np.fft.rfft(out)))])
        middle = f.num_samples // 2
        np.testing.assert_allclose(out[middle], np.asarray(x)[middle], atol=0.02)
    assert all(1790.0 <= p <= 2210.0 for p in peaks), peaks
    assert max(peaks) - min(peaks) > 20.0, peaks
    off = _augment_fn(AugmentConfig(**quiet, speed_perturbation=0.0), f, seed=0)
    np.testing.assert_array_equal(np.asarray(off(x, y, w)[0]), np.asarray(x))
    with pytest.raises(Exception, match="speed_perturbation"):
        AugmentConfig(speed_perturbation=0.8)


def test_repeat_passes_over_every_window_that_many_times(tmp_path):
    """``make_dataset(repeat=k)`` (``min_epoch_windows``): one iteration of the training
    dataset holds every cached window k times, each copy augmented anew."""
    from birdsong.dataset import index_dataset
    from birdsong.pipeline import SkipLog, make_dataset
    from conftest import tiny_config, write_tone_dataset

    index = index_dataset(write_tone_dataset(tmp_path / "data", individuals=1))
    config = tiny_config()

    def windows(repeat):
        ds = make_dataset(index, config, training=True, skips=SkipLog(), repeat=repeat)
        return np.concatenate([np.asarray(x) for x, _, _ in ds])

    once, thrice = windows(1), windows(3)
    assert len(thrice) == 3 * len(once) > 0
    copies = {np.round(w, 3).tobytes() for w in thrice}
    assert len(copies) == len(thrice)  # no two copies of a window augmented alike
    with pytest.raises(Exception, match="min_epoch_windows"):
        tiny_config(min_epoch_windows=-1)


def test_band_limit_setting_is_checked():
    from birdsong.config import AugmentConfig
    from birdsong.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="band_limit_hz"):
        AugmentConfig(band_limit_hz=(9000.0, 4000.0))
    with pytest.raises(InvalidParameterError, match="band_limit_probability"):
        AugmentConfig(band_limit_probability=1.5)


def test_band_limit_cutoff_stays_inside_the_spectrogram():
    """A model whose spectrogram stops at 6 kHz gets cutoffs at or under 6 kHz, not the
    default 5-15 kHz draw (most of which would change nothing it sees)."""
    from birdsong.config import AugmentConfig
    from birdsong.pipeline import _augment_fn

    f = FeatureConfig(fmax=6000.0)
    x = tf.constant(_noise(f.num_samples, amp=0.3))
    y, w = tf.constant([1.0, 0.0]), tf.constant(1.0)
    aug = AugmentConfig(
        time_shift_seconds=0.0, gain_db=0.0, noise_probability=0.0, band_limit_probability=1.0
    )
    freqs = np.fft.rfftfreq(f.num_samples, 1 / f.sample_rate)
    fn = _augment_fn(aug, f, seed=0)
    for _ in range(5):
        spectrum = np.abs(np.fft.rfft(np.asarray(fn(x, y, w)[0]))) ** 2
        assert spectrum[freqs > 6100].sum() < 1e-6 * spectrum[freqs < 4900].sum()


def _tones(n, sample_rate, freqs, amps):
    t = np.arange(n) / sample_rate
    return np.stack([a * np.sin(2 * np.pi * f0 * t) for f0, a in zip(freqs, amps)]).astype(
        np.float32
    )


def test_overlay_mixes_a_quieter_window_and_keeps_the_label():
    """Overlay augmentation: each window gains another window of the batch at the drawn
    level under it (by RMS) and keeps its own one-hot label; a multi-label target gains
    the other window's species; with probability 0 nothing changes."""
    from birdsong.config import AugmentConfig
    from birdsong.pipeline import _overlay_fn

    f = FeatureConfig()
    x = tf.constant(_tones(f.num_samples, f.sample_rate, [1000.0, 3000.0], [0.5, 0.05]))
    y = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    w = tf.constant([1.0, 1.0])
    aug = AugmentConfig(overlay_probability=1.0, overlay_db=(10.0, 10.0))
    tf.random.set_seed(0)
    freqs = np.fft.rfftfreq(f.num_samples, 1 / f.sample_rate)
    checked = 0
    for _ in range(10):
        out, out_y, out_w = (np.asarray(v) for v in _overlay_fn(aug, multi_label=False)(x, y, w))
        np.testing.assert_array_equal(out_y, np.asarray(y))
        np.testing.assert_array_equal(out_w, np.asarray(w))
        for row, own, other in ((0, 1000.0, 3000.0), (1, 3000.0, 1000.0)):
            spectrum = np.abs(np.fft.rfft(out[row]))
            own_peak = spectrum[np.argmin(np.abs(freqs - own))]
            other_peak = spectrum[np.argmin(np.abs(freqs - other))]
            if other_peak > 1e-3 * own_peak:  # the shuffle gave this window the other one
                assert 20 * np.log10(own_peak / other_peak) == pytest.approx(10.0, abs=0.2)
                checked += 1
    assert checked > 0
    # over many draws every window gets the other one at least once (batch of two)
    tf.random.set_seed(1)
    mixed = [np.asarray(_overlay_fn(aug, multi_label=True)(x, y, w)[1]) for _ in range(12)]
    assert any((m == 1.0).all() for m in mixed)
    never = _overlay_fn(AugmentConfig(overlay_probability=0.0), multi_label=True)
    out0, y0, _ = never(x, y, w)
    np.testing.assert_array_equal(np.asarray(out0), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(y0), np.asarray(y))


def test_overlay_setting_is_checked():
    from birdsong.config import AugmentConfig
    from birdsong.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="overlay_probability"):
        AugmentConfig(overlay_probability=-0.1)
    with pytest.raises(InvalidParameterError, match="overlay_db"):
        AugmentConfig(overlay_db=(14.0, 4.0))


def test_band_floor_flattens_a_steady_background_and_keeps_song():
    """``band_floor_percentile``: a tilted steady noise comes out with (nearly) equal band
    levels, a song burst keeps its height over the background, the mean level and a
    silent window are unchanged, and the frontend still exports with builtin ops only and
    matches on LiteRT."""
    keras = pytest.importorskip("keras")
    from ai_edge_litert.interpreter import Interpreter

    base = FeatureConfig(image_size=96)
    flat = FeatureConfig(image_size=96, band_floor_percentile=20.0)
    rng = np.random.default_rng(0)
    n = base.num_samples
    brown = np.cumsum(rng.standard_normal(n)).astype(np.float32)
    brown = (brown - brown.mean()) / np.abs(brown).max() / 10  # steep tilt: -6 dB/octave
    t = np.arange(n) / base.sample_rate
    song = (0.2 * np.sin(2 * np.pi * 4000 * t) * ((t > 1) & (t < 1.5))).astype(np.float32)
    x = np.stack([brown + song, np.zeros(n, np.float32)])
    dbs = []
    for c in (base, flat):
        layer = MelSpectrogram(c)
        dbs.append(np.asarray(layer.flatten_background(layer.decibels(x))))
    before, after = dbs
    assert np.ptp(np.median(before[0], axis=0)) > 20.0  # the tilt, dB across bands
    assert np.ptp(np.median(after[0], axis=0)) < 6.0
    band = np.argmax(before[0].max(axis=0) - np.median(before[0], axis=0))  # the song's band
    rise = lambda d: d[0, :, band].max() - np.median(d[0, :, band])  # noqa: E731
    assert rise(after) == pytest.approx(rise(before), abs=1e-3)
    assert after[0].mean() == pytest.approx(before[0].mean(), abs=1e-3)
    np.testing.assert_allclose(after[1], before[1])
    np.testing.assert_array_equal(
        np.asarray(MelSpectrogram(base).flatten_background(before)), before
    )

    inp = keras.Input(batch_shape=(1, n))
    model = keras.Model(inp, MelSpectrogram(flat)(inp))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    it = Interpreter(model_content=conv.convert())
    it.allocate_tensors()
    assert "TOPK_V2" in {d["op_name"] for d in it._get_ops_details()}
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(i["index"], x[:1])
    it.invoke()
    assert np.abs(it.get_tensor(o["index"]) - np.asarray(model(x[:1]))).max() <= 1e-4
