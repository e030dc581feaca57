"""Reliability (issue 6): bad inputs, interrupted work, untrusted model files.

Every input of the bad-input corpus is generated here, under ``tmp_path``; each test's
docstring states the outcome birdsong promises for it. The property tests (hypothesis)
live in ``test_fuzz.py``.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from birdsong.audio import activity, audio_info, frame, load_audio, stream_windows
from birdsong.config import FeatureConfig
from birdsong.dataset import index_dataset, split_from_csv
from birdsong.errors import AudioError, DatasetError, InvalidParameterError, ModelError
from conftest import SR, tiny_config, tiny_features, write_tone_dataset

SRC = Path(__file__).resolve().parents[1] / "src" / "birdsong"


def _tone(seconds: float = 1.0, sr: int = SR, freq: float = 1000.0, amp: float = 0.3):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONUNBUFFERED"] = "1"
    src = str(SRC.parent)
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _truncate(path: Path, keep: float | int) -> Path:
    data = path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    path.write_bytes(data[:n])
    return path


# ============================================================ 1. the bad-input corpus
#
# name -> (writer, expected). ``expected`` is "ok" (load_audio returns a usable signal)
# or a substring of the AudioError message. Every error message also names the file.


def _w_empty(p):
    p.write_bytes(b"")


def _w_header_only(p):
    sf.write(p, np.zeros(0, np.float32), SR, subtype="PCM_16")


def _w_truncated_wav(p):
    sf.write(p, _tone(1.0), SR, subtype="PCM_16")
    _truncate(p, 0.5)


def _w_truncated_flac(p):
    sf.write(p, _tone(1.0), SR, format="FLAC")
    _truncate(p, 0.5)


def _w_truncated_flac_header(p):
    sf.write(p, _tone(1.0), SR, format="FLAC")
    _truncate(p, 60)


def _w_truncated_mp3(p):
    sf.write(p, _tone(3.0), SR, format="MP3")
    _truncate(p, 0.5)


def _w_truncated_mp3_header(p):
    sf.write(p, _tone(3.0), SR, format="MP3")
    _truncate(p, 100)


def _w_random(p):
    p.write_bytes(np.random.default_rng(0).bytes(5000))


def _w_text(p):
    p.write_text("this is not an MP3, it is a text file\n" * 40, encoding="utf-8")


def _w_nan(p):
    x = _tone(0.5)
    x[100] = np.nan
    sf.write(p, x, SR, subtype="FLOAT")


def _w_inf(p):
    x = _tone(0.5)
    x[100] = -np.inf
    sf.write(p, x, SR, subtype="FLOAT")


def _w_huge(p):
    sf.write(p, _tone(0.5) * np.float32(1e20), SR, subtype="FLOAT")


def _w_rate_100(p):
    sf.write(p, np.zeros(500, np.float32), 100, subtype="PCM_16")


# name: (file name, writer, expected, dataset_usable_header)
BAD_FILES = {
    "empty": ("empty.wav", _w_empty, "cannot decode"),
    "header_only": ("header_only.wav", _w_header_only, "no samples"),
    "truncated_flac": ("truncated.flac", _w_truncated_flac, "decoding failed part-way"),
    "truncated_flac_header": ("truncated_header.flac", _w_truncated_flac_header, "cannot decode"),
    "truncated_mp3_header": ("truncated_header.mp3", _w_truncated_mp3_header, "cannot decode"),
    "random_bytes": ("random.wav", _w_random, "cannot decode"),
    "text_as_mp3": ("notes.mp3", _w_text, "cannot decode"),
    "nan": ("nan.wav", _w_nan, "NaN or infinite"),
    "inf": ("inf.wav", _w_inf, "NaN or infinite"),
    "huge_float": ("huge.wav", _w_huge, "not audio"),
    "rate_100hz": ("rate100.wav", _w_rate_100, "implausible sample rate"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_raises_audio_error_naming_the_file(tmp_path, case):
    """Undecodable inputs raise AudioError naming the file, from every entry point.

    - empty file, random bytes named .wav, a text file named .mp3, an MP3 or FLAC cut
      inside its header: "cannot decode audio (...)" plus the list of supported formats
      (never libsndfile's misleading "file does not exist" for a broken MP3);
    - a WAV holding only a header: "the file contains no samples";
    - a FLAC cut mid-stream: the header is fine (``audio_info`` works, so a dataset
      index keeps it), decoding raises "decoding failed part-way";
    - NaN or Inf samples: "the signal contains NaN or infinite samples";
    - float samples of absurd magnitude (1e20): "not audio"; a header claiming 100 Hz:
      "implausible sample rate" (it would be upsampled 320-fold).
    """
    name, writer, expected = BAD_FILES[case]
    path = tmp_path / name
    writer(path)
    for call in (
        lambda: load_audio(path),
        lambda: load_audio(path, sample_rate=None),
        lambda: list(stream_windows(path, sample_rate=SR, clip_seconds=1.0)),
        lambda: load_audio(io.BytesIO(path.read_bytes())),
    ):
        with pytest.raises(AudioError) as err:
            call()
        assert expected in str(err.value)
        assert "does not exist" not in str(err.value)
    with pytest.raises(AudioError, match=name):
        load_audio(path)


def test_truncated_wav_loads_the_samples_present(tmp_path):
    """A WAV cut in its data chunk (recorder lost power) loads the intact samples:
    libsndfile trusts the bytes present, not the header's length."""
    path = tmp_path / "cut.wav"
    _w_truncated_wav(path)
    y, sr = load_audio(path, sample_rate=None)
    assert sr == SR and abs(y.size - SR // 2) < 50
    assert audio_info(path).frames == y.size


def test_truncated_mp3_loads_the_frames_present(tmp_path):
    """An MP3 cut mid-stream decodes the complete frames before the cut."""
    path = tmp_path / "cut.mp3"
    _w_truncated_mp3(path)
    y, sr = load_audio(path, sample_rate=None)
    assert sr == SR and 0.3 * 3 * SR < y.size < 0.8 * 3 * SR
    assert np.isfinite(y).all()


def test_directory_named_like_audio(tmp_path):
    """A directory called ``x.wav``: AudioError "is a directory"."""
    (tmp_path / "x.wav").mkdir()
    with pytest.raises(AudioError, match="is a directory"):
        load_audio(tmp_path / "x.wav")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_named_like_audio_is_refused_not_waited_on(tmp_path):
    """A named pipe called ``x.wav`` would block ``open`` forever: AudioError at once."""
    import threading

    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    done = threading.Event()

    def unblock():  # should the library open the pipe after all, end it (no hang)
        while not done.wait(0.05):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                continue

    helper = threading.Thread(target=unblock, daemon=True)
    helper.start()
    try:
        with pytest.raises(AudioError, match="not a regular file"):
            audio_info(fifo)
        with pytest.raises(AudioError, match="not a regular file"):
            load_audio(fifo)
    finally:
        done.set()
        helper.join()


def test_symlink_loop_file_is_file_not_found(tmp_path):
    """``a.wav -> b.wav -> a.wav``: FileNotFoundError that says why."""
    os.symlink("b.wav", tmp_path / "a.wav")
    os.symlink("a.wav", tmp_path / "b.wav")
    with pytest.raises(FileNotFoundError, match="symlink loop"):
        load_audio(tmp_path / "a.wav")


def test_all_zero_audio_loads_and_reads_as_silence(tmp_path):
    """All-zero audio is valid: it loads, its activity is 0 and the frontend image is
    all -1 (the darkest value), not a stretched-contrast picture of nothing."""
    from birdsong.features import MelSpectrogram

    sf.write(tmp_path / "zeros.wav", np.zeros(SR, np.float32), SR, subtype="PCM_16")
    y, _ = load_audio(tmp_path / "zeros.wav", sample_rate=SR)
    assert y.size == SR and not y.any()
    windows, _ = frame(y, sample_rate=SR, clip_seconds=1.0)
    assert activity(windows, sample_rate=SR).tolist() == [0.0]
    image = np.asarray(MelSpectrogram(tiny_features())(windows))
    assert image.shape == (1, 32, 32, 1) and np.all(image == -1.0)


def test_one_sample_file_loads_and_pads_to_one_window(tmp_path, trained_run):
    """A one-sample file loads (one sample; two after 2x upsampling); framing pads it
    with silence to one full window and a classifier returns one prediction for it."""
    from birdsong.inference import Classifier

    path = tmp_path / "one.wav"
    sf.write(path, np.array([0.5], np.float32), SR, subtype="FLOAT")
    y, _ = load_audio(path, sample_rate=None)
    assert y.tolist() == [0.5]
    assert load_audio(path, sample_rate=2 * SR)[0].size == 2
    windows = list(stream_windows(path, sample_rate=SR, clip_seconds=1.0))
    assert len(windows) == 1 and windows[0].samples.shape == (SR,)
    assert windows[0].end == pytest.approx(1 / SR)
    pred = Classifier(trained_run.tflite_path).predict(path)
    assert pred.label in trained_run.labels and len(pred.windows) == 1
    assert pred.duration == pytest.approx(1 / SR)


def test_one_sample_downsampled_to_nothing_is_an_audio_error(tmp_path):
    """One sample at 48 kHz is less than one sample at 16 kHz: every entry point raises
    the same AudioError ("too little audio") instead of a window that ends where it
    starts."""
    path = tmp_path / "blip.wav"
    sf.write(path, np.array([0.5], np.float32), 48000, subtype="FLOAT")
    with pytest.raises(AudioError, match="too little audio"):
        load_audio(path, sample_rate=SR)
    with pytest.raises(AudioError, match="too little audio"):
        list(stream_windows(path, sample_rate=SR, clip_seconds=1.0))


def test_8khz_file_is_resampled_up_and_fmax_is_a_model_setting(tmp_path):
    """8 kHz audio with a 32 kHz model loads, resampled up (fmax 15 kHz is the model's
    setting and does not depend on the file: the band above 4 kHz is simply empty).
    A *model* at 8 kHz with fmax 15 kHz is impossible: InvalidParameterError naming
    fmax and the Nyquist limit."""
    sf.write(tmp_path / "phone.wav", _tone(1.0, 8000, 1000.0), 8000, subtype="PCM_16")
    y, sr = load_audio(tmp_path / "phone.wav", sample_rate=32000)
    assert sr == 32000 and abs(y.size - 32000) <= 2
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * sr / y.size - 1000.0) < 5
    with pytest.raises(InvalidParameterError, match="'fmax'.*4000"):
        FeatureConfig(sample_rate=8000, fmax=15000.0)


def test_six_channels_mix_to_mono(tmp_path):
    """6 channels average to one."""
    x = np.zeros((SR, 6), np.float32)
    x[:, 2] = 0.6
    sf.write(tmp_path / "six.wav", x, SR, subtype="FLOAT")
    y, _ = load_audio(tmp_path / "six.wav", sample_rate=None)
    assert y.shape == (SR,) and np.allclose(y, 0.1, atol=1e-6)


def test_float64_wav_loads_as_float32(tmp_path):
    """64-bit float samples load as float32 with their values."""
    x = _tone(0.5).astype(np.float64)
    sf.write(tmp_path / "f64.wav", x, SR, subtype="DOUBLE")
    assert audio_info(tmp_path / "f64.wav").subtype == "DOUBLE"
    y, _ = load_audio(tmp_path / "f64.wav", sample_rate=None)
    assert y.dtype == np.float32 and np.allclose(y, x, atol=1e-6)


def test_384khz_file_is_resampled_down(tmp_path):
    """384 kHz (bat detector) audio loads and is resampled to the model rate; a song at
    3 kHz keeps its pitch."""
    sf.write(tmp_path / "bat.wav", _tone(0.5, 384000, 3000.0), 384000, subtype="PCM_16")
    y, sr = load_audio(tmp_path / "bat.wav", sample_rate=32000)
    assert sr == 32000 and abs(y.size - 16000) <= 2
    assert abs(np.argmax(np.abs(np.fft.rfft(y))) * sr / y.size - 3000.0) < 5


def test_names_with_spaces_and_non_ascii(tmp_path):
    """File and folder names with spaces and non-ASCII characters work everywhere."""
    folder = tmp_path / "Grive musicienne é"
    folder.mkdir()
    path = folder / "chant du matin – 鳥 01.flac"
    sf.write(path, _tone(1.0), SR)
    y, _ = load_audio(path, sample_rate=SR)
    assert y.size == SR
    assert len(list(stream_windows(str(path), sample_rate=SR, clip_seconds=0.5))) == 2


# ------------------------------------------------------------------ a long recording

_LONG_SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np
    from birdsong.audio import stream_windows
    path, model = sys.argv[1], sys.argv[2]

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    out = {}
    from birdsong.inference import Classifier
    clf = Classifier(model)
    clf.predict(np.zeros(16000, np.float32), sample_rate=16000)     # warm up
    for _ in stream_windows(path, sample_rate=16000, clip_seconds=1.0, block_seconds=60):
        break
    base = peak_mb()
    t = time.perf_counter()
    n = sum(1 for _ in stream_windows(path, sample_rate=16000, clip_seconds=1.0))
    out["windows"], out["walk_s"], out["walk_mb"] = n, time.perf_counter() - t, peak_mb() - base
    t = time.perf_counter()
    pred = clf.predict(path, min_score=1.0, hop_seconds=1.0)
    out["predict_windows"], out["duration"] = len(pred.windows), pred.duration
    out["predict_s"], out["predict_mb"] = time.perf_counter() - t, peak_mb() - base
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_three_hour_recording_is_walked_in_bounded_memory(tmp_path, trained_run):
    """A 3-hour field recording (8 kHz, 8-bit, 86 MB; 691 MB as float32 at 16 kHz) is
    walked window by window by ``stream_windows`` and classified by
    ``Classifier.predict`` with a peak-memory growth far below the decoded size."""
    path = tmp_path / "dawn chorus 3h.wav"
    rng = np.random.default_rng(0)
    block = (0.05 * rng.standard_normal(8000 * 600)).astype(np.float32)
    with sf.SoundFile(path, "w", samplerate=8000, channels=1, subtype="PCM_U8") as f:
        for _ in range(18):  # 18 x 10 min
            f.write(block)
    assert audio_info(path).duration == pytest.approx(3 * 3600)
    proc = subprocess.run(
        [sys.executable, "-c", _LONG_SCRIPT, str(path), str(trained_run.tflite_path)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["windows"] == out["predict_windows"] == 3 * 3600
    assert out["duration"] == pytest.approx(3 * 3600)
    assert out["walk_mb"] < 80, out
    assert out["predict_mb"] < 120, out


# ------------------------------------------------------------------------- datasets


def _bad_dataset(root: Path) -> tuple[Path, dict[str, str]]:
    """Two good species plus every kind of bad entry; returns (root, {path: reason})."""
    write_tone_dataset(root, species=("high", "low"), individuals=2, recordings=2, seconds=1.5)
    expected: dict[str, str] = {}
    for case in (
        "empty",
        "header_only",
        "truncated_flac_header",
        "random_bytes",
        "text_as_mp3",
        "rate_100hz",
    ):
        name, writer, reason = BAD_FILES[case]
        writer(root / "high" / name)
        expected[str(root / "high" / name)] = reason
    (root / "low" / "x.wav").mkdir()
    expected[str(root / "low" / "x.wav")] = "is a directory"
    (root / "low" / "notes.txt").write_text("field notes", encoding="utf-8")
    expected[str(root / "low" / "notes.txt")] = "not an audio file"
    os.symlink("..", root / "low" / "up")  # a loop that would also reach 'high'
    expected[str(root / "low" / "up")] = "symlink loop"
    os.symlink("loop_b.wav", root / "low" / "loop_a.wav")
    os.symlink("loop_a.wav", root / "low" / "loop_b.wav")
    expected[str(root / "low" / "loop_a.wav")] = "symlink loop"
    expected[str(root / "low" / "loop_b.wav")] = "symlink loop"
    (root / "silent").mkdir()
    _w_empty(root / "silent" / "nothing.wav")
    expected[str(root / "silent" / "nothing.wav")] = "cannot decode"
    expected[str(root / "silent")] = "no usable recordings"
    return root, expected


def test_dataset_index_skips_and_reports_every_bad_entry(tmp_path):
    """Indexing a tree full of bad entries completes; ``skipped`` lists each one with
    its reason (nothing silently vanishes); a folder symlinked back to the root does
    not relabel the other species' recordings; a species folder without usable files
    is reported and is no label."""
    root, expected = _bad_dataset(tmp_path / "data")
    index = index_dataset(root)
    assert index.labels == ("high", "low")
    assert index.counts() == {"high": 4, "low": 4}
    assert all(r.path.parent.name == r.label for r in index.recordings)
    reasons = {s.path: s.reason for s in index.skipped}
    assert set(reasons) == set(expected)
    for path, reason in expected.items():
        assert reason in reasons[path], (path, reasons[path])


def test_pipeline_skips_files_that_fail_to_decode_and_reports_them(tmp_path):
    """Files whose header is fine but whose samples are not (a FLAC cut mid-stream, NaN
    samples) are indexed, then skipped by the tf.data pipeline, which still yields
    every good window; the SkipLog names each file with its reason."""
    from birdsong.pipeline import SkipLog, make_dataset

    root = write_tone_dataset(
        tmp_path / "data", species=("high", "low"), individuals=1, recordings=2, seconds=1.0
    )
    bad = {"truncated_flac": "high", "nan": "low", "inf": "high"}
    for case, species in bad.items():
        name, writer, _ = BAD_FILES[case]
        writer(root / species / name)
    index = index_dataset(root)
    assert len(index.recordings) == 7 and not index.skipped
    skips = SkipLog()
    ds = make_dataset(index, tiny_config(), training=False, skips=skips, with_ids=True)
    n = sum(int(x.shape[0]) for x, _, _ in ds)
    assert n >= 4
    got = {Path(s.path).name: s.reason for s in skips.items}
    assert got.keys() == {BAD_FILES[c][0] for c in bad}
    for case in bad:
        name, _, reason = BAD_FILES[case]
        assert reason in got[name]


def test_pipeline_reads_non_utf8_file_names(tmp_path):
    """A file name in a legacy encoding (not valid UTF-8) reaches the decoder intact."""
    from birdsong.pipeline import SkipLog, make_dataset

    root = write_tone_dataset(
        tmp_path / "data", species=("high", "low"), individuals=1, recordings=1, seconds=1.0
    )
    odd = os.fsdecode(os.fsencode(str(root / "high")) + b"/caf\xe9.wav")
    shutil.copy(root / "high" / "high_ind01_rec01.wav", odd)
    index = index_dataset(root)
    assert odd in {str(r.path) for r in index.recordings}
    skips = SkipLog()
    ds = make_dataset(index, tiny_config(), training=False, skips=skips, with_ids=True)
    ids = np.concatenate([np.asarray(rid) for _, _, rid in ds])
    assert not skips.items and len(set(ids.tolist())) == 3


def test_pipeline_skips_a_file_whatever_goes_wrong_with_it(tmp_path, monkeypatch):
    """An unexpected failure on one file (here a RuntimeError from windowing) skips and
    reports that file, naming the exception; the run goes on with the others."""
    import birdsong.pipeline
    from birdsong.pipeline import SkipLog, make_dataset

    root = write_tone_dataset(
        tmp_path / "data", species=("high", "low"), individuals=1, recordings=1, seconds=1.0
    )
    real = birdsong.pipeline.select_windows

    def flaky(signal, **kwargs):
        if (
            signal.size
            and abs(signal).max() > 0.25
            and np.argmax(np.abs(np.fft.rfft(signal))) > signal.size * 0.15
        ):  # the 5 kHz species only
            raise RuntimeError("boom")
        return real(signal, **kwargs)

    monkeypatch.setattr(birdsong.pipeline, "select_windows", flaky)
    skips = SkipLog()
    ds = make_dataset(
        index_dataset(root), tiny_config(), training=False, skips=skips, with_ids=True
    )
    assert sum(int(x.shape[0]) for x, _, _ in ds) >= 1
    assert [(Path(s.path).parent.name, s.reason) for s in skips.items] == [
        ("high", "RuntimeError: boom")
    ]


def test_single_species_dataset_is_a_dataset_error(tmp_path):
    """One species cannot train a classifier: DatasetError naming the folder, the
    species found and the minimum."""
    root = write_tone_dataset(tmp_path / "data", species=("high",), individuals=1)
    with pytest.raises(DatasetError, match=r"found 1 species .*high.*at least 2"):
        index_dataset(root)
    assert index_dataset(root, min_species=1).labels == ("high",)


def test_dataset_with_no_usable_species_is_a_dataset_error(tmp_path):
    """Only bad files: DatasetError saying none was usable and how many were skipped."""
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "b").mkdir()
    _w_random(tmp_path / "data" / "a" / "r.wav")
    with pytest.raises(DatasetError, match=r"found 0 species.*none.*Skipped: 3"):
        index_dataset(tmp_path / "data")


@pytest.mark.parametrize(
    "rows,match",
    [
        ([["path", "split"], ["high/missing.wav", "train"]], r"line 2: 'high/missing.wav' is not"),
        (
            [["path", "split", "label"], ["high/high_ind01_rec01.wav", "train", "owl"]],
            r"line 2: unknown label 'owl'",
        ),
        (
            [["path", "split", "label"], ["high/high_ind01_rec01.wav", "train", "low"]],
            r"line 2: label 'low' disagrees",
        ),
        (
            [["path", "split"], ["high/high_ind01_rec01.wav", "train"], ["low/x.wav"]],
            r"line 3: needs a 'path' and a 'split'",
        ),
        ([["file", "set"], ["high/high_ind01_rec01.wav", "train"]], r"needs a header"),
    ],
)
def test_split_csv_errors_name_the_line(tmp_path, rows, match):
    """A split CSV naming an unknown file or label, a short row or a wrong header:
    DatasetError naming the CSV and the line."""
    root = write_tone_dataset(
        tmp_path / "data", species=("high", "low"), individuals=1, recordings=1, seconds=1.0
    )
    index = index_dataset(root)
    path = tmp_path / "split.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(DatasetError, match=match) as err:
        split_from_csv(index, path)
    assert "split.csv" in str(err.value)


def test_split_csv_with_legacy_encoded_names_and_binary_junk(tmp_path):
    """A split CSV is read as the file system names files: a Latin-1 row naming a
    Latin-1 file name finds that file; a CSV with NUL bytes is a DatasetError."""
    root = write_tone_dataset(
        tmp_path / "data", species=("high", "low"), individuals=1, recordings=1, seconds=1.0
    )
    odd = os.fsdecode(os.fsencode(str(root / "high")) + b"/caf\xe9.wav")
    shutil.copy(root / "high" / "high_ind01_rec01.wav", odd)
    index = index_dataset(root)
    (tmp_path / "split.csv").write_bytes(b"path,split\nhigh/caf\xe9.wav,test\n")
    parts = split_from_csv(index, tmp_path / "split.csv")
    assert [str(r.path) for r in parts["test"].recordings] == [odd]
    (tmp_path / "junk.csv").write_bytes(b"path,split\nhigh/a\0.wav,train\n")
    with pytest.raises(DatasetError, match="junk.csv"):
        split_from_csv(index, tmp_path / "junk.csv")


def test_text_reports_keep_file_names_that_are_not_utf8(tmp_path):
    """A report listing a skipped file whose name is not valid UTF-8 is written (the
    name's original bytes), instead of failing the finished run."""
    from birdsong._io import atomic_write_text

    name = os.fsdecode(b"caf\xe9.wav")
    atomic_write_text(tmp_path / "report.md", f"- `{name}`: cannot decode\n")
    assert (tmp_path / "report.md").read_bytes() == b"- `caf\xe9.wav`: cannot decode\n"


# ======================================================================= 2. interrupts

_RESUME_SCRIPT = textwrap.dedent("""
    import logging, sys
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from birdsong.workflow import train
    result = train(sys.argv[1], sys.argv[2], resume=True, export=False)
    print("done", result.model_path)
""")


def _read_state(run: Path) -> dict:
    try:
        return json.loads((run / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_from_last_completed_epoch(tmp_path):
    """``birdsong train`` killed with SIGKILL after an epoch, then resumed
    (``train(..., resume=True)``, what ``--resume`` calls): the run continues from the
    epoch recorded in state.json with the saved settings (config.json unchanged; the
    resumed call passes none), the history keeps the earlier epochs exactly and repeats
    none, the final files exist, and every bad file of the dataset is listed with its
    reason in skipped.json. (The killed run stops during phase 1, whose epochs are the
    cheap ones; phase 2 resumes through the same state.json/initial_epoch path. The
    resumed run skips the TFLite export to keep the test short.)"""
    from birdsong.config import save_config

    data, expected = _bad_dataset(tmp_path / "data")
    for case in ("truncated_flac", "nan"):  # headers fine, samples not: pipeline skips
        name, writer, reason = BAD_FILES[case]
        writer(data / "low" / name)
        expected[str(data / "low" / name)] = reason
    cfg = tmp_path / "tiny.json"
    save_config(tiny_config(epochs_frozen=6, epochs_finetune=0, patience=100), cfg)
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "birdsong.cli",
        "train",
        str(data),
        "-o",
        str(run),
        "--config",
        str(cfg),
    ]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if _read_state(run).get("epoch", 0) >= 1:
                break
            time.sleep(0.02)
        assert proc.poll() is None, (
            "training ended before it could be interrupted: "
            + proc.stderr.read().decode(errors="replace")[-2000:]
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    before = _read_state(run)
    assert before["phase"] == 1 and 1 <= before["epoch"] < 6
    assert not (run / "model.keras").exists()
    config_before = (run / "config.json").read_bytes()

    done = subprocess.run(
        [sys.executable, "-c", _RESUME_SCRIPT, str(data), str(run)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"in phase 1 after epoch {before['epoch']}" in done.stderr
    after = _read_state(run)
    assert after["phase"] == "done"
    assert (run / "config.json").read_bytes() == config_before
    hist = after["history"]
    assert hist["phase1"][: before["epoch"]] == before["history"]["phase1"]
    assert [r["epoch"] for r in hist["phase1"]] == [1, 2, 3, 4, 5, 6]
    assert hist["phase2"] == []
    assert json.loads((run / "history.json").read_text(encoding="utf-8")) == hist
    for name in ("model.keras", "labels.txt", "summary.json", "report/report.json"):
        assert (run / name).is_file(), name
    skipped = {
        s["path"]: s["reason"]
        for s in json.loads((run / "skipped.json").read_text(encoding="utf-8"))
    }
    for path, reason in expected.items():
        assert path in skipped and reason in skipped[path], (path, skipped.get(path))
    report = json.loads((run / "report" / "report.json").read_text(encoding="utf-8"))
    assert {s["path"] for s in report["skipped"]} == set(skipped)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_interrupted_export_leaves_no_file_under_the_final_name(tmp_path, monkeypatch, where):
    """An export interrupted after the bytes were written but before the rename (or
    during it) leaves nothing under the final name, no temporary file, and an older
    model under that name untouched."""
    import birdsong._io
    import birdsong.exporting
    import birdsong.metadata

    run = tmp_path / "run"
    run.mkdir()
    from birdsong.config import save_config

    save_config(tiny_config(), run / "config.json")
    (run / "labels.txt").write_text("high\nlow\n", encoding="utf-8")
    monkeypatch.setattr(birdsong.exporting, "convert", lambda *a, **k: b"\0\0\0\0TFL3" * 4096)
    monkeypatch.setattr(birdsong.metadata, "add_metadata", lambda flat, **k: flat)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(birdsong._io.os, where, interrupt)
    out_dir = tmp_path / "models"
    out_dir.mkdir()
    with pytest.raises(KeyboardInterrupt):
        birdsong.exporting.export_model(run, out_dir / "birds.tflite", model=object())
    assert not (out_dir / "birds.tflite").exists()
    assert _leftovers(out_dir) == []
    (out_dir / "old.tflite").write_bytes(b"previous model")
    with pytest.raises(KeyboardInterrupt):
        birdsong.exporting.export_model(run, out_dir / "old.tflite", model=object())
    assert (out_dir / "old.tflite").read_bytes() == b"previous model"
    assert _leftovers(out_dir) == []
    monkeypatch.undo()


_SLOW_WRITER = textwrap.dedent("""
    import sys, time
    from birdsong._io import atomic_open
    with atomic_open(sys.argv[1], "wb") as fh:
        for i in range(10000):
            fh.write(b"x" * 4096)
            fh.flush()
            if i == 10:
                print("writing", flush=True)
            time.sleep(0.01)
""")


def test_sigkill_during_an_atomic_write_leaves_no_final_file(tmp_path):
    """A process killed (SIGKILL) while writing a model: the final name never exists;
    only a hidden ``.<name>.*.part`` file may stay behind."""
    final = tmp_path / "model.tflite"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(final)],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert not final.exists()
    assert all(n.startswith(".model.tflite.") and n.endswith(".part") for n in _leftovers(tmp_path))


def test_atomic_files_get_normal_permissions(tmp_path):
    """Models and reports written through a temporary file get the mode a plain
    ``open`` would give (0666 & ~umask), not mkstemp's private 0600."""
    from birdsong._io import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "m.tflite", b"data")
    finally:
        os.umask(old)
    assert (tmp_path / "m.tflite").stat().st_mode & 0o777 == 0o644


_ALLOWED_DIRECT_WRITES = {
    "_io.py",  # the atomic writers themselves
    "cli/predict.py",  # streams results row by row on purpose (see the CSV test)
    "demo.py",  # writes sample input clips for the demo, not models or reports
}
_SAVERS = {"save", "save_weights", "savefig", "imsave", "write", "write_text", "write_bytes"}


def _scratch_names(tree: ast.AST) -> set[str]:
    """Names bound by ``with atomic_path(...) as x`` or ``with TemporaryDirectory() as x``,
    and names assigned from expressions that use them (``p = Path(x) / "a"``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                func = call.func if isinstance(call, ast.Call) else None
                fname = getattr(func, "attr", getattr(func, "id", ""))
                if fname in ("atomic_path", "TemporaryDirectory") and isinstance(
                    item.optional_vars, ast.Name
                ):
                    names.add(item.optional_vars.id)
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id not in names
                and any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node.value))
            ):
                names.add(node.targets[0].id)
                changed = True
    return names


def _uses(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def test_models_and_reports_are_only_written_through_atomic_paths():
    """Static guard: outside the allowed modules, every file the library writes (``open``
    for writing, ``write_text``/``write_bytes``, Keras ``save``/``save_weights``,
    ``savefig``/``imsave``, ``sf.write``) goes to the temporary path of an
    ``atomic_path`` block (or into a scratch ``TemporaryDirectory``)."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.relative_to(SRC).as_posix() in _ALLOWED_DIRECT_WRITES:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        scratch = _scratch_names(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            where = f"{path.name}:{node.lineno}"
            if isinstance(f, ast.Name) and f.id == "open":
                mode = (
                    node.args[1]
                    if len(node.args) > 1
                    else next((k.value for k in node.keywords if k.arg == "mode"), None)
                )
                writes = isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax+")
                if writes and not (node.args and _uses(node.args[0], scratch)):
                    offenders.append(where)
            elif isinstance(f, ast.Attribute) and f.attr in _SAVERS:
                if f.attr == "write" and not (isinstance(f.value, ast.Name) and f.value.id == "sf"):
                    continue  # file objects' write(): their open() is checked above
                if f.attr in ("write_text", "write_bytes"):
                    target = f.value
                elif node.args:
                    target = node.args[0]
                else:
                    continue  # e.g. state.save(): a method of birdsong's own
                if not _uses(target, scratch):
                    offenders.append(where)
    assert offenders == []


def _predict_cmd(model: Path, folder: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "birdsong.cli",
        "predict",
        str(folder),
        "--model",
        str(model),
        "--format",
        "csv",
        "-o",
        str(out),
        "-q",
    ]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_predict_csv_keeps_every_finished_row(tmp_path, trained_run, sig):
    """``birdsong predict --format csv -o out.csv`` interrupted (Ctrl-C, or killed)
    after a few files leaves a valid CSV: the header and complete rows only, one per
    finished file. Ctrl-C exits with status 130."""
    from birdsong.cli.predict import CSV_HEADER

    clips = tmp_path / "clips"
    clips.mkdir()
    rng = np.random.default_rng(0)
    sf.write(
        clips / "c000.wav",
        (0.1 * rng.standard_normal(20 * SR)).astype(np.float32),
        SR,
        subtype="PCM_16",
    )
    for i in range(1, 300):  # hard links: 300 files, one file's worth of disk
        os.link(clips / "c000.wav", clips / f"c{i:03d}.wav")
    out = tmp_path / "out.csv"
    proc = subprocess.Popen(
        _predict_cmd(trained_run.tflite_path, clips, out),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 4:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "predict finished before it could be interrupted"
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        err = proc.stderr.read().decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "interrupted" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    text = out.read_text(encoding="utf-8")
    assert text.endswith("\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == CSV_HEADER
    assert 3 <= len(rows) - 1 < 300
    for i, row in enumerate(rows[1:]):
        assert len(row) == len(CSV_HEADER)
        assert Path(row[0]).name == f"c{i:03d}.wav"
        assert row[1] in trained_run.labels and 0.0 <= float(row[2]) <= 1.0
        assert float(row[5]) == pytest.approx(20.0, abs=0.01) and row[6] == ""


class _SwallowsCtrlC:
    """An object whose finaliser is running when Ctrl-C arrives: Python ignores an
    exception raised in ``__del__``, so the ``KeyboardInterrupt`` is lost."""

    def __del__(self):
        signal.raise_signal(signal.SIGINT)
        sum(range(100))  # the handler runs here, inside the finaliser


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ctrl_c_swallowed_by_a_finaliser_is_not_lost():
    """Python's own handler loses a Ctrl-C that lands in a finaliser (the program goes
    on); under the CLI's latched handler ``interrupt.check`` still raises afterwards,
    and leaving restores Python's handler and forgets the signal."""
    from birdsong.cli import interrupt

    _SwallowsCtrlC()  # default handler: swallowed, nothing raised, nothing remembered
    interrupt.check()
    with interrupt.latched():
        _SwallowsCtrlC()
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    interrupt.check()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_predict_stops_on_a_ctrl_c_lost_in_a_finaliser(tmp_path, trained_run, monkeypatch, capsys):
    """The flaky case of the test above made certain: Ctrl-C arrives while a finaliser
    runs during the second file. ``birdsong predict`` stops before the third file with
    status 130 and a CSV of the two finished rows (it used to run to the end, exit 0)."""
    from birdsong.cli import main
    from birdsong.inference import Classifier

    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(5):
        sf.write(clips / f"c{i}.wav", _tone(2.0), SR)
    real, calls = Classifier.predict, []

    def predict(self, path, **kw):
        calls.append(path)
        result = real(self, path, **kw)
        if len(calls) == 2:
            _SwallowsCtrlC()
        return result

    monkeypatch.setattr(Classifier, "predict", predict)
    out = tmp_path / "out.csv"
    assert main(_predict_cmd(trained_run.tflite_path, clips, out)[3:]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert len(calls) == 2
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [Path(r[0]).name for r in rows[1:]] == ["c0.wav", "c1.wav"]


# ============================================================ 3. untrusted model files


@pytest.fixture(scope="module")
def plain_models(tmp_path_factory):
    """Two TFLite models made without birdsong: a waveform model (1, 16000) -> 3 scores
    and a foreign image model (1, 8, 8, 3) -> 3 scores. Neither has metadata."""
    import keras

    from birdsong.exporting import convert

    folder = tmp_path_factory.mktemp("plain_models")
    keras.utils.set_random_seed(0)
    wave = keras.Sequential([keras.Input((SR,)), keras.layers.Dense(3, activation="softmax")])
    image = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    (folder / "wave.tflite").write_bytes(convert(wave))
    (folder / "image.tflite").write_bytes(convert(image))
    return folder


def _damaged(kind: str, good: bytes, keras_file: Path) -> bytes:
    if kind == "empty":
        return b""
    if kind == "seven_bytes":
        return good[:7]
    if kind == "random":
        return np.random.default_rng(0).bytes(20000)
    if kind == "zip":  # e.g. a .keras archive renamed
        return keras_file.read_bytes()
    if kind == "text":
        return b"<html>404 Not Found</html>\n"
    if kind.startswith("truncated"):
        return good[
            : {
                "truncated_100": 100,
                "truncated_half": len(good) // 2,
                "truncated_99pc": int(len(good) * 0.99),
            }[kind]
        ]
    if kind == "bad_root_offset":
        return b"\xff\xff\xff\x7f" + good[4:]
    if kind == "zeroed_header":
        return good[:8] + bytes(4096) + good[8 + 4096 :]
    raise AssertionError(kind)


DAMAGED = [
    "empty",
    "seven_bytes",
    "random",
    "zip",
    "text",
    "truncated_100",
    "truncated_half",
    "truncated_99pc",
    "bad_root_offset",
    "zeroed_header",
]


@pytest.mark.parametrize("kind", DAMAGED)
def test_damaged_or_foreign_tflite_is_a_model_error_naming_the_path(tmp_path, trained_run, kind):
    """Truncated, corrupt or foreign bytes in a ``.tflite``: ``Classifier`` raises
    ModelError naming the path (also when labels are supplied, and for ``birdsong
    predict``, which then exits with status 2), never a crash."""
    from birdsong.inference import Classifier

    good = trained_run.tflite_path.read_bytes()
    path = tmp_path / f"{kind}.tflite"
    path.write_bytes(_damaged(kind, good, trained_run.model_path))
    for labels in (None, list(trained_run.labels)):
        with pytest.raises(ModelError) as err:
            Classifier(path, labels=labels)
        assert str(path) in str(err.value)
        assert "no birdsong metadata" not in str(err.value)  # damaged is not "plain"


def test_damaged_model_in_the_cli_exits_2(tmp_path, trained_run):
    from birdsong.cli import main

    path = tmp_path / "cut.tflite"
    path.write_bytes(trained_run.tflite_path.read_bytes()[:5000])
    sf.write(tmp_path / "a.wav", _tone(1.0), SR)
    assert main(["predict", str(tmp_path / "a.wav"), "--model", str(path)]) == 2


def test_tflite_without_metadata_runs_when_labels_are_given(plain_models):
    """A TFLite made elsewhere (no birdsong metadata): without labels, ModelError saying
    what is missing and how to supply it; with ``labels=`` and ``sample_rate=`` it
    classifies; a label count that does not match the outputs is a ModelError."""
    from birdsong.inference import Classifier

    path = plain_models / "wave.tflite"
    with pytest.raises(ModelError, match=r"no birdsong metadata.*labels=\[\.\.\.\]") as err:
        Classifier(path)
    assert str(path) in str(err.value)
    clf = Classifier(path, labels=["a", "b", "c"], sample_rate=SR)
    assert clf.sample_rate == SR and clf.clip_seconds == 1.0
    pred = clf.predict(_tone(2.5, SR), sample_rate=SR)
    # the default rules: a quarter-window hop, windows at 0, .25, ..., 1.5 s
    assert pred.label in "abc" and [w.start for w in pred.windows] == [i / 4 for i in range(7)]
    assert sum(pred.scores.values()) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ModelError, match="scores 3 classes but has 2 labels"):
        Classifier(path, labels=["a", "b"], sample_rate=SR)


def test_tflite_with_unusable_birdsong_settings_is_a_model_error(tmp_path, plain_models):
    """Metadata whose birdsong settings cannot make a FeatureConfig: ModelError naming
    the path (not a bare InvalidParameterError from deep inside)."""
    from birdsong.inference import Classifier
    from birdsong.metadata import add_metadata

    flat = add_metadata(
        (plain_models / "wave.tflite").read_bytes(),
        labels=["a", "b", "c"],
        sample_rate=SR,
        num_samples=SR,
        channels=1,
        settings={"features": {"sample_rate": SR, "fmax": 99999.0}},
    )
    path = tmp_path / "odd.tflite"
    path.write_bytes(flat)
    with pytest.raises(ModelError, match="audio settings in its metadata") as err:
        Classifier(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"batch_windows": 0}, "'batch_windows'"),
        ({"block_seconds": float("nan")}, "'block_seconds'"),
        ({"overlap": 1.0}, "'overlap'"),
        ({"min_score": float("nan")}, "'min_score'"),
        ({"top_k": 0}, "'top_k'"),
    ],
)
def test_classifier_rejects_bad_parameters(trained_run, kwargs, match):
    from birdsong.inference import Classifier

    clf = Classifier(trained_run.tflite_path)
    with pytest.raises(InvalidParameterError, match=match):
        clf.predict(np.zeros(SR, np.float32), sample_rate=SR, **kwargs)


def test_foreign_tflite_says_what_it_expected(plain_models):
    """An image model: without labels "no birdsong metadata"; with labels "expected
    one waveform input", both naming the path."""
    from birdsong.inference import Classifier

    path = plain_models / "image.tflite"
    with pytest.raises(ModelError, match="no birdsong metadata"):
        Classifier(path)
    with pytest.raises(ModelError, match="expected one waveform input") as err:
        Classifier(path, labels=["a", "b", "c"])
    assert str(path) in str(err.value)


def test_keras_model_with_a_lambda_is_refused(tmp_path):
    """Keras models load with ``safe_mode=True``: a ``.keras`` (or legacy ``.h5``) with a
    Lambda layer is refused with ModelError naming the path, and its code never runs."""
    import keras

    from birdsong.model import load_keras_model

    marker = tmp_path / "code_ran"
    fn = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Lambda(fn)(inp))
    model.save(tmp_path / "evil.keras")
    model.save(tmp_path / "evil.h5")
    marker.unlink()
    for name in ("evil.keras", "evil.h5"):
        with pytest.raises(ModelError, match="Lambda") as err:
            load_keras_model(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)
    assert not marker.exists()
    (tmp_path / "junk.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelError, match="junk.keras"):
        load_keras_model(tmp_path / "junk.keras")


def test_nothing_is_unpickled(trained_run, monkeypatch):
    """Loading a run's Keras model and its ``.tflite`` never calls pickle, and the
    library's source has no unpickling call at all."""
    import pickle

    from birdsong.inference import Classifier
    from birdsong.model import load_keras_model

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    assert load_keras_model(trained_run.run_dir) is not None
    assert Classifier(trained_run.tflite_path).labels == trained_run.labels
    monkeypatch.undo()
    for path in SRC.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for needle in (
            "import pickle",
            "allow_pickle=True",
            "import dill",
            "joblib",
            "import marshal",
            "import shelve",
            "safe_mode=False",
            "enable_unsafe_deserialization",
        ):
            assert needle not in text, (path.name, needle)
