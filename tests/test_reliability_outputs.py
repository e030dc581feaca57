"""Reliability round two (issue 11), items 1 and 5: output paths never destroy
anything; operating-system conditions are one line, never a traceback.

Every case runs the real command line (``python -m birdsong.cli`` in a real process
where an interruption, a pipe or a permission is the point) on files written under
``tmp_path`` and a real probe model (``hostile_cases.probe_model``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from birdsong.cli import main
from hostile_cases import (
    SR,
    cli,
    env,
    one_line_error,
    probe_model,
    stderr_lines,
    tone,
    unprivileged_prefix,
)

pytest.importorskip("keras")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return probe_model(tmp_path_factory.mktemp("probe") / "probe.tflite")


@pytest.fixture
def clips(tmp_path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(3):
        sf.write(folder / f"c{i}.wav", tone(2.0, 500.0 * (i + 1)), SR, subtype="PCM_16")
    return folder


def _csv_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


# ======================================================= 1. outputs never destroy anything

BAD_OPTIONS = {
    "min_score_2": (["--min-score", "2"], "'--min-score'"),
    "min_score_nan": (["--min-score", "nan"], "'--min-score'"),
    "top_k_0": (["--top-k", "0"], "'--top-k'"),
    "overlap_negative": (["--overlap", "-1"], "'--overlap'"),
    "overlap_too_close": (["--overlap", "0.99"], "'--overlap'"),
    "threads_0": (["--threads", "0"], "'--threads'"),  # 100000: see test_reliability_inputs
    "resume_table": (["--resume", "--format", "table"], "'--format'"),
}
# Checked before the output was opened already before issue 11: kept as guards.
GUARDS = {
    "shard_3_of_2": (["--shard", "3/2"], "'--shard'"),
    "missing_model": (["--model=/nonexistent/m.tflite"], "No such model"),
    "missing_input": (["/nonexistent/x.wav"], "No such file"),
}


@pytest.mark.hostile("output paths")
@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_bad_option_leaves_an_existing_output_untouched(tmp_path, model, clips, case, capsys):
    """``predict ... -o out.csv`` with a bad option: exit 2, one line naming the option,
    and out.csv (holding an earlier result) byte for byte as it was. Before: the file
    was opened (truncated to its header) before the option was checked."""
    _bad_arguments(tmp_path, model, clips, *BAD_OPTIONS[case], capsys)


@pytest.mark.parametrize("case", sorted(GUARDS))
def test_other_bad_arguments_leave_an_existing_output_untouched(
    tmp_path, model, clips, case, capsys
):
    _bad_arguments(tmp_path, model, clips, *GUARDS[case], capsys)


def _bad_arguments(tmp_path, model, clips, extra, match, capsys) -> None:
    out = tmp_path / "out.csv"
    out.write_text("path,label\nearlier.wav,alpha\n", encoding="utf-8")
    before = out.read_bytes()
    inputs = [x for x in extra if x.startswith("/")] or [str(clips)]
    args = ["predict", *inputs, "--model", str(model), "--format", "csv", "-o", str(out)]
    args += [x for x in extra if not x.startswith("/")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err
    assert out.read_bytes() == before


@pytest.mark.hostile("output paths")
def test_predict_output_that_is_an_input_is_refused(tmp_path, model, clips, capsys):
    """``predict FOLDER -o FOLDER/c1.wav`` (also through a symlink, and ``-o`` naming the
    model): exit 2, the recording and model unchanged. Before: c1.wav was overwritten
    with CSV text and the command exited 0."""
    link = tmp_path / "link.wav"
    link.symlink_to(clips / "c1.wav")
    recording, weights = (clips / "c1.wav").read_bytes(), model.read_bytes()
    for target in (clips / "c1.wav", link, model):
        assert main(["predict", str(clips), "--model", str(model), "-o", str(target)]) == 2
        err = capsys.readouterr().err
        assert "one of the inputs" in err and str(target) in err
    assert (clips / "c1.wav").read_bytes() == recording and model.read_bytes() == weights
    # an output beside the inputs that is not one of them is fine
    assert (
        main(
            [
                "predict",
                str(clips),
                "--model",
                str(model),
                "--format",
                "csv",
                "-o",
                str(clips / "results.csv"),
                "-q",
            ]
        )
        == 0
    )
    assert len(_csv_rows(clips / "results.csv")) == 4


@pytest.mark.hostile("output paths")
def test_spectrogram_onto_its_own_input_is_refused(tmp_path, capsys):
    """``spectrogram x.wav -o x.wav``: exit 2, x.wav unchanged. Before: the recording
    was replaced by a PNG, exit 0."""
    clip = tmp_path / "x.wav"
    sf.write(clip, tone(1.0), SR)
    before = clip.read_bytes()
    assert main(["spectrogram", str(clip), "-o", str(clip), "--sample-rate", str(SR)]) == 2
    assert "one of the inputs" in capsys.readouterr().err
    assert clip.read_bytes() == before


@pytest.mark.hostile("output paths")
def test_spectrograms_into_the_dataset_itself_is_refused(tmp_path, capsys):
    """``spectrograms DATA DATA/png``: the images would join the dataset (the next index
    fails: "mixes audio files and PNG images"). Refused before anything is written."""
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    sf.write(data / "a" / "x.wav", tone(1.0), SR)
    for out in (data, data / "png", data / "a"):
        assert main(["spectrograms", str(data), str(out), "-q"]) == 2
        assert "outside the input" in capsys.readouterr().err
    assert sorted(p.name for p in data.rglob("*")) == ["a", "x.wav"]


def _fake_run(folder: Path) -> Path:
    """A run directory whose model is junk: a command that does its work before checking
    the output fails on the model; one that checks first fails on the output."""
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"PK\x03\x04 junk")
    (folder / "config.json").write_text("{}", encoding="utf-8")
    (folder / "labels.txt").write_text("a\nb\n", encoding="utf-8")
    return folder


@pytest.mark.hostile("output paths")
@pytest.mark.parametrize(
    "command,kind",
    [
        ("predict", "dir"),
        ("spectrogram", "dir"),
        ("export", "dir"),
        ("export", "input"),
        ("export", "under_file"),
        ("evaluate", "file"),
        ("evaluate", "under_file"),
        ("evaluate", "data_dir"),
    ],
)
def test_output_of_the_wrong_kind_fails_before_any_work(tmp_path, model, clips, command, kind):
    """``-o`` naming a folder where a file is written, a file where a folder is written,
    a path below a file, or an input: one line naming ``--output``, exit 2, checked
    before the work (export/evaluate would otherwise load and convert first, then end
    in IsADirectoryError/FileExistsError tracebacks). Real processes."""
    run = _fake_run(tmp_path / "run")
    folder = tmp_path / "somewhere"
    folder.mkdir()
    a_file = tmp_path / "report.txt"
    a_file.write_text("keep me\n", encoding="utf-8")
    target = {
        "dir": folder,
        "file": a_file,
        "under_file": a_file / "sub",
        "input": run / "model.keras",
        "data_dir": clips,
    }[kind]
    args = {
        "predict": ["predict", clips, "--model", model, "-o", target],
        "spectrogram": ["spectrogram", clips / "c0.wav", "-o", target],
        "export": ["export", run, "-o", target],
        "evaluate": ["evaluate", run, clips, "-o", target],
    }[command]
    proc = cli(*args)
    line = one_line_error(proc)
    assert proc.returncode == 2 and "'--output'" in line, line
    assert a_file.read_text(encoding="utf-8") == "keep me\n"
    assert (run / "model.keras").read_bytes() == b"PK\x03\x04 junk"
    assert list(folder.iterdir()) == []


@pytest.mark.hostile("output paths")
def test_library_writers_refuse_their_own_inputs(tmp_path):
    """The library checks too: ``export_model(run, run/"model.keras")`` and
    ``render_recording(x.wav, x.wav)`` raise InvalidParameterError before any work,
    the files unchanged."""
    from birdsong.errors import InvalidParameterError
    from birdsong.exporting import export_model
    from birdsong.images import render_recording

    run = _fake_run(tmp_path / "run")
    with pytest.raises(InvalidParameterError, match="'output'.*one of the inputs"):
        export_model(run, run / "model.keras")
    with pytest.raises(InvalidParameterError, match="'output'.*not an existing folder"):
        export_model(run, tmp_path)
    clip = tmp_path / "x.wav"
    sf.write(clip, tone(1.0), SR)
    before = clip.read_bytes()
    with pytest.raises(InvalidParameterError, match="'out_png'"):
        render_recording(clip, clip)
    assert clip.read_bytes() == before
    assert (run / "model.keras").read_bytes() == b"PK\x03\x04 junk"


# ----------------------------------------------------------------- interrupted + resume
def _many_clips(folder: Path, n: int, seconds: float = 20.0) -> list[Path]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32)
    sf.write(folder / "c0000.wav", x, SR, subtype="PCM_16")
    for i in range(1, n):  # hard links: n files, one file's worth of disk
        os.link(folder / "c0000.wav", folder / f"c{i:04d}.wav")
    return sorted(folder.iterdir())


def _kill_after(cmd: list[str], out: Path, lines: int) -> None:
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= lines:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "predict finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.hostile("output paths")
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_killed_predict_resumes_where_it_stopped(tmp_path, model, fmt):
    """``predict -o out.csv`` killed (SIGKILL) part-way, then run again with
    ``--resume``: the finished rows stay byte for byte, a row cut short by the kill is
    dropped, every file appears exactly once, in order, and the header once. Before:
    the second run truncated the finished rows."""
    files = _many_clips(tmp_path / "clips", 1500)
    out = tmp_path / f"out.{fmt}"
    cmd = [
        sys.executable,
        "-m",
        "birdsong.cli",
        "predict",
        str(tmp_path / "clips"),
        "--model",
        str(model),
        "--format",
        fmt,
        "-o",
        str(out),
        "-q",
    ]
    _kill_after(cmd, out, 6)
    first = out.read_bytes()
    complete = first[: first.rfind(b"\n") + 1]
    with open(out, "ab") as fh:  # as if the kill had landed in the middle of a row
        fh.write(b'"' + str(files[-1]).encode() if fmt == "csv" else b'{"path": "/x')
    done = subprocess.run(
        cmd + ["--resume"], env=env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert "already in" in done.stderr
    text = out.read_bytes()
    assert text.startswith(complete)
    if fmt == "csv":
        rows = _csv_rows(out)
        assert rows[0][0] == "path" and [r[0] for r in rows].count("path") == 1
        paths = [r[0] for r in rows[1:]]
    else:
        paths = [json.loads(line)["path"] for line in text.decode().splitlines()]
    assert paths == [str(f) for f in files]
    again = subprocess.run(
        cmd + ["--resume"], env=env(), capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0 and out.read_bytes() == text  # nothing left: no change


@pytest.mark.hostile("output paths")
def test_resume_refuses_a_file_it_did_not_write(tmp_path, model, clips):
    """``--resume -o notes.csv`` where notes.csv is not birdsong's CSV: exit 2, one line,
    the file untouched."""
    out = tmp_path / "notes.csv"
    out.write_text("name,phone\nann,123\n", encoding="utf-8")
    proc = cli("predict", clips, "--model", model, "--format", "csv", "-o", out, "--resume")
    assert "header" in one_line_error(proc)
    assert out.read_text(encoding="utf-8") == "name,phone\nann,123\n"


_SLOW_WRITER = textwrap.dedent("""
    import sys, time
    from birdsong._io import atomic_open
    with atomic_open(sys.argv[1], "wb") as fh:
        for i in range(100000):
            fh.write(b"x" * 4096)
            fh.flush()
            if i == 10:
                print("writing", flush=True)
            time.sleep(0.01)
""")


def _start_writer(final: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(final)],
        env=env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "writing"
    return proc


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.hostile("output paths")
def test_next_write_cleans_up_what_a_killed_write_left(tmp_path):
    """A model write killed with SIGKILL leaves a hidden ``.model.tflite.*.part``; the
    next write of that name removes it. A write still in progress in another live
    process keeps its file and still completes."""
    from birdsong._io import atomic_write_bytes

    final = tmp_path / "model.tflite"
    proc = _start_writer(final)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    left = _hidden(tmp_path)
    assert len(left) == 1 and left[0].endswith(".part")
    assert cli("info", final).returncode != 0  # nothing under the final name
    atomic_write_bytes(final, b"new model")
    assert _hidden(tmp_path) == [] and final.read_bytes() == b"new model"

    live = _start_writer(final)
    try:  # another process writes the same name meanwhile
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from birdsong._io import "
                "atomic_write_bytes as w; w(sys.argv[1], b'newer model')",
                str(final),
            ],
            env=env(),
            check=True,
            timeout=60,
        )
        assert final.read_bytes() == b"newer model"
        assert len(_hidden(tmp_path)) == 1  # the live writer's file is left alone
        assert live.poll() is None
    finally:
        live.kill()
        live.wait(timeout=30)
        live.stdout.close()


# ================================================== 5. OS conditions: one line, no traceback
@pytest.mark.hostile("OS conditions")
def test_broken_pipe_is_quiet(tmp_path, model):
    """``birdsong predict FOLDER | head -1``: the reader goes away; exit 141 (as if
    killed by SIGPIPE), at most one line on stderr, no traceback. Before:
    BrokenPipeError traceback plus "Exception ignored ... BrokenPipeError"."""
    files = _many_clips(tmp_path / "clips", 400, seconds=1.0)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "birdsong.cli",
            "predict",
            str(tmp_path / "clips"),
            "--model",
            str(model),
            "-q",
        ],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    proc.stderr.close()
    assert head.startswith(b"file") and len(files) == 400
    assert proc.returncode == 141, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert len(stderr_lines(err)) <= 1


@pytest.mark.hostile("OS conditions")
def test_full_disk_is_one_line(tmp_path, model, clips):
    """Results written to a full disk (``-o /dev/full``): "No space left on device",
    exit 1, no traceback."""
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    proc = cli("predict", clips, "--model", model, "--format", "csv", "-o", "/dev/full")
    assert "No space left on device" in one_line_error(proc)
    assert proc.returncode == 1


@pytest.mark.hostile("OS conditions")
def test_permission_denied_is_one_line(tmp_path, model, clips):
    """As a user without write permission: an output folder that is read-only (caught
    before work, exit 2), an unreadable model (PermissionError, exit 1): one line each."""
    prefix = unprivileged_prefix()
    locked = tmp_path / "locked"
    locked.mkdir()
    secret = tmp_path / "secret.tflite"
    secret.write_bytes(model.read_bytes())
    os.chmod(locked, 0o555)
    os.chmod(secret, 0o000)
    try:
        proc = cli("predict", clips, "--model", model, "-o", locked / "out.csv", unprivileged=True)
        assert "permission denied" in one_line_error(proc).lower()
        proc = cli("info", secret, unprivileged=True)
        assert "Permission denied" in one_line_error(proc) and proc.returncode == 1
        proc = cli("demo-data", locked / "data", "--species", "2", unprivileged=True)
        assert "Permission denied" in one_line_error(proc)
    finally:
        os.chmod(locked, 0o755)
        os.chmod(secret, 0o644)
    assert prefix is not None and list(locked.iterdir()) == []


@pytest.mark.hostile("OS conditions")
@pytest.mark.parametrize(
    "args",
    [
        ["info", "{dir}"],
        ["demo-data", "{file}/data", "--species", "2"],
        ["spectrogram", "{clip}", "-o", "{file}/x.png"],
    ],
)
def test_a_folder_where_a_file_should_be_is_one_line(tmp_path, clips, args):
    """A folder where a file is read, a file where a folder is made: one line, no
    IsADirectoryError/NotADirectoryError traceback."""
    folder = tmp_path / "folder"
    folder.mkdir()
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x", encoding="utf-8")
    fill = {"dir": str(folder), "file": str(a_file), "clip": str(clips / "c0.wav")}
    one_line_error(cli(*[a.format(**fill) for a in args]))
