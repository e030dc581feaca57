"""The command line: light imports, spectrogram commands, predict formats, sharding."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from birdsong.cli import main

REPO = Path(__file__).resolve().parents[1]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_and_help_do_not_import_tensorflow():
    out = _run(
        "import sys, birdsong, birdsong.cli\n"
        "from birdsong.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('tensorflow', 'keras', 'librosa', 'matplotlib')"
        " if m in sys.modules])"
    )
    assert out.returncode == 0, out.stderr
    assert "predict" in out.stdout and "train" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("birdsong")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("birdsong ")


def test_demo_data_and_spectrograms(tmp_path, capsys):
    assert (
        main(
            [
                "demo-data",
                str(tmp_path / "data"),
                "--species",
                "2",
                "--individuals",
                "1",
                "--recordings",
                "2",
                "--seconds",
                "4",
            ]
        )
        == 0
    )
    files = sorted((tmp_path / "data").rglob("*.wav"))
    assert len(files) == 4
    (tmp_path / "data" / "Arctic_Warbler" / "broken.wav").write_bytes(b"garbage")
    capsys.readouterr()
    assert (
        main(
            [
                "spectrograms",
                str(tmp_path / "data"),
                str(tmp_path / "png"),
                "-q",
                "--image-size",
                "64",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    pngs = sorted((tmp_path / "png").rglob("*.png"))
    assert len(pngs) == 4 * 2  # two 3-s windows per 4-s recording
    assert {p.parent.name for p in pngs} == {"Arctic_Warbler", "Barn_Swallow"}
    assert "broken.wav" in out.err and "skipped 1 file" in out.err
    from PIL import Image

    img = Image.open(pngs[0])
    assert img.size == (64, 64) and img.mode == "L"  # a true 8-bit grey PNG
    assert main(["spectrogram", str(files[0]), "-o", str(tmp_path / "one.png"), "--windows"]) == 0
    assert (tmp_path / "one.png").stat().st_size > 10_000


def test_bad_input_gives_clear_error_not_traceback(tmp_path, capsys):
    assert main(["spectrogram", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "missing.wav" in err and "Traceback" not in err
    assert main(["predict", str(tmp_path), "--shard", "4/4", "--model", "m.tflite"]) == 2
    assert "--shard" in capsys.readouterr().err


@pytest.fixture
def clips(tmp_path):
    sr = 16000
    t = np.arange(2 * sr) / sr
    paths = []
    for i, f in enumerate((800, 2500, 5000, 800, 5000)):
        sub = tmp_path / "clips" / ("a" if i < 3 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        p = sub / f"clip {i}.wav"
        sf.write(p, (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), sr)
        paths.append(p)
    return tmp_path / "clips", paths


def test_predict_formats_and_shards(trained_run, clips, tmp_path, capsys):
    folder, paths = clips
    model = str(trained_run.tflite_path)
    assert main(["predict", str(folder), "--model", model, "--format", "json", "-q"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in rows] == sorted(str(p) for p in paths)
    assert all(set(r) >= {"path", "label", "score", "top_k", "detections"} for r in rows)

    out = tmp_path / "out.csv"
    assert (
        main(["predict", str(folder), "--model", model, "--format", "csv", "-o", str(out), "-q"])
        == 0
    )
    with open(out, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 5 and table[0]["label"] in trained_run.labels

    shards = []
    for i in range(3):
        assert (
            main(
                [
                    "predict",
                    str(folder),
                    "--model",
                    model,
                    "--format",
                    "json",
                    "--shard",
                    f"{i}/3",
                    "-q",
                ]
            )
            == 0
        )
        shards += [json.loads(x)["path"] for x in capsys.readouterr().out.splitlines()]
    assert sorted(shards) == sorted(str(p) for p in paths) and len(set(shards)) == 5

    assert (
        main(["predict", str(paths[0]), "--model", model, "--format", "raven", "--min-score", "0"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split("\t")
    assert header[:5] == ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)"]
    assert {"Begin File", "Species", "Score"} <= set(header)
    assert len(lines) >= 2 and lines[1].split("\t")[0] == "1"

    assert main(["predict", str(paths[0]), "--model", model]) == 0
    assert "clip 0.wav" in capsys.readouterr().out


def test_info_and_evaluate_json(trained_run, capsys):
    assert main(["info", str(trained_run.tflite_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["labels"] == list(trained_run.labels) and info["sample_rate"] == 16000
    data = trained_run.run_dir.parent / "data"
    assert main(["evaluate", str(trained_run.tflite_path), str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["per_recording"]["n"] == 18


def _cli(*args, env=None, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "birdsong.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        **kwargs,
    )


CHATTER = (
    "cuda",
    "cuInit",
    "oneDNN",
    "XNNPACK",
    "absl",
    "I0000",
    "W0000",
    "use_unbounded_threadpool",
    "TensorFlow Lite",
)


def test_train_from_the_command_line_on_a_fresh_home(tmp_path):
    """A newcomer's run, in a real process with a fresh HOME: quiet start-up, a dataset
    summary, named phases, what early stopping kept, where everything is; then info on
    the run directory, export, and the documented exit codes."""
    from conftest import write_tone_dataset

    data = write_tone_dataset(tmp_path / "data")
    run = tmp_path / "run"
    env = dict(os.environ, HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO / "src"))
    env.pop("BIRDSONG_CACHE_DIR", None)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    out = _cli(
        "train",
        data,
        "-o",
        run,
        "--weights",
        "none",
        "--validation-min-groups",
        "2",
        "--alpha",
        "0.35",
        "--image-size",
        "32",
        "--clip-seconds",
        "1",
        "--sample-rate",
        "16000",
        "--epochs-frozen",
        "1",
        "--epochs-finetune",
        "1",
        "--batch-size",
        "8",
        "--seed",
        "3",
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert not [w for w in CHATTER if w in out.stderr], out.stderr
    assert "data: 3 species" in out.stderr
    assert "phase 1/2" in out.stderr and "phase 2/2" in out.stderr
    assert "kept epoch 1 of 1" in out.stderr
    assert "validation (held-out recordings): per recording top-1" in out.stdout
    assert str(run / "model.tflite") in out.stdout and "next:" in out.stdout
    config = json.loads((run / "config.json").read_text())
    assert config["features"]["sample_rate"] == 16000 and config["features"]["fmax"] == 8000
    assert config["seed"] == 3 and config["weights"] is None

    info = _cli("info", run, env=env)
    assert info.returncode == 0, info.stderr
    assert "high" in info.stdout and "16000 Hz" in info.stdout and "windows:" in info.stdout
    assert not [w for w in CHATTER if w in info.stderr], info.stderr

    exported = _cli("export", run, "-o", tmp_path / "b16.tflite", "--quantize", "float16", env=env)
    assert exported.returncode == 0, exported.stderr
    assert "top-1 agreement with float32" in exported.stdout
    assert "ms per window" in exported.stdout

    (tmp_path / "empty").mkdir()
    nothing = _cli("predict", tmp_path / "empty", "--model", run, env=env)
    assert nothing.returncode == 1 and "no audio" in nothing.stderr.lower()
    bad = _cli("predict", tmp_path / "empty", "--model", run, "--min-score", "2", env=env)
    assert bad.returncode == 2 and "--min-score" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_ctrl_c_says_how_to_continue(tmp_path):
    import signal
    import time

    from conftest import write_tone_dataset

    data = write_tone_dataset(tmp_path / "data")
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "birdsong.cli",
            "train",
            str(data),
            "-o",
            str(run),
            "--weights",
            "none",
            "--alpha",
            "0.35",
            "--image-size",
            "32",
            "--clip-seconds",
            "1",
            "--sample-rate",
            "16000",
            "--epochs-frozen",
            "200",
            "--patience",
            "200",
            "--epochs-finetune",
            "1",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen = ""
    deadline = time.monotonic() + 600
    while "epoch 2/200" not in seen and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=300)
    assert proc.returncode == 130, seen + rest
    assert f"-o {run} --resume" in rest
    assert (run / "state.json").exists()
