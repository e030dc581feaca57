"""The example scripts run, start to finish, as a user runs them.

One chained test (``--fast`` settings): 01 draws spectrograms of generated demo data,
02 trains and exports a model, 03 and 04 use that model on the LiteRT interpreter with
TensorFlow made unimportable, so the inference examples provably stay in the light
tier. Every script runs in a temporary working directory with a private cache.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"{script} {' '.join(args)} exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-4000:]}\n"
        f"--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc.stdout


def _without_tensorflow(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """An environment in which ``import tensorflow`` (or keras) fails loudly."""
    blocker = tmp_path / "no-tensorflow"
    for name in ("tensorflow", "keras"):
        (blocker / name).mkdir(parents=True, exist_ok=True)
        (blocker / name / "__init__.py").write_text(
            f"raise ImportError('{name} is blocked: the inference examples must not import it')\n"
        )
    path = os.pathsep.join(p for p in (str(blocker), env.get("PYTHONPATH")) if p)
    return {**env, "PYTHONPATH": path}


@pytest.mark.slow
def test_examples_run_chained_on_demo_data(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BIRDSONG_CACHE_DIR": str(tmp_path / "cache"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "MPLBACKEND": "Agg",
    }
    env.pop("BIRDSONG_MODEL", None)
    out = tmp_path / "examples-output"

    # 01: demo data written, one picture per species plus the model's own images
    text = _run("01_spectrograms.py", "--fast", cwd=tmp_path, env=env)
    assert "wrote demo data: 9 recordings of 3 species" in text
    pictures = sorted((out / "spectrograms").glob("*.png"))
    assert len(pictures) == 3, text
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pictures)
    assert len(list((out / "spectrograms" / "model-images").rglob("*.png"))) == 9
    assert "64x64x3 image" in text

    # 03 before any model exists: a message saying what to do, not a traceback
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "03_predict.py"), "--fast"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "error: No model given and none found" in proc.stderr
    assert "Traceback" not in proc.stderr

    # 02: a run directory with an exported model and an evaluation on held-out birds
    text = _run("02_train.py", "--fast", "--out", "runs/fast", cwd=tmp_path, env=env)
    run = tmp_path / "runs" / "fast"
    for name in ("model.tflite", "model.keras", "config.json", "labels.txt", "report/report.md"):
        assert (run / name).is_file(), name
    assert "validation on held-out birds: per recording top-1" in text
    assert "phase2 epoch 1" in text
    assert "next: python examples/03_predict.py --model runs/fast/model.tflite" in text
    model = str(run / "model.tflite")

    light = _without_tensorflow(tmp_path, env)
    # 03: synthesised new clips, one line per species, judged against the truth
    text = _run("03_predict.py", "--fast", "--model", model, cwd=tmp_path, env=light)
    labels = (run / "labels.txt").read_text().split()
    for label in labels:
        assert f"{label}_new.wav" in text and " -> " in text
    assert "/3 right" in text
    # ... and a user's clips and folders, with the model found as birdsong.predict finds
    # it (the run 02 just trained, recorded in the private cache)
    clip = next((out / "demo-data-fast" / labels[0]).glob("*.wav"))
    text = _run(
        "03_predict.py", str(clip), str(out / "demo-data-fast" / labels[1]), cwd=tmp_path, env=light
    )
    assert f"model: {run.resolve() / 'model.tflite'}" in text
    assert sum(" -> " in line for line in text.splitlines()) == 4
    assert "/4 right" in text

    # 04: a synthetic long recording; every true song printed beside the detections
    text = _run(
        "04_long_recording.py",
        "--fast",
        "--model",
        model,
        "--min-score",
        "0",
        cwd=tmp_path,
        env=light,
    )
    assert (out / "long_recording.wav").is_file()
    assert "true song" in text and "songs found" in text
    assert "detection(s) with score >= 0" in text
    assert re.search(r"; [1-9]\d* detection\(s\)", text), text  # min-score 0: all windows
    # ... and a given recording: the detections listed with their times
    text = _run(
        "04_long_recording.py",
        str(out / "long_recording.wav"),
        "--model",
        model,
        "--min-score",
        "0",
        "--overlap",
        "0.5",
        cwd=tmp_path,
        env=light,
    )
    assert "20.0 s in 39 windows of 1 s, one every 0.5 s" in text
    assert "-20.0 s" in text
