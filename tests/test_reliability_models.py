"""Reliability round two (issue 11), item 3: a model file is untrusted input.

Every hostile model is a real ``.tflite`` (a probe model from ``hostile_cases``,
exported with birdsong's metadata) edited the way a damaged or malicious file would be:
zip members swapped, settings of the wrong type, labels doubled, outputs that are not
probabilities, labels carrying terminal escape codes.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from birdsong.errors import InvalidParameterError, ModelError
from birdsong.inference import Classifier
from birdsong.metadata import MAX_MEMBER_BYTES, read_metadata
from hostile_cases import SR, cli, env, one_line_error, probe_model, tone, with_members

pytest.importorskip("keras")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("probes")
    for kind in ("softmax", "sqrt", "scaled", "reciprocal"):
        probe_model(folder / f"{kind}.tflite", kind)
    return folder


def _wav(path: Path, first: tuple[float, float, float], seconds: float = 3.0) -> Path:
    """A recording whose every 1-s window starts with the samples ``first``."""
    x = tone(seconds, 700.0, 0.05)
    for k in range(int(seconds)):
        x[k * SR : k * SR + 3] = first
    sf.write(path, x, SR, subtype="FLOAT")
    return path


# ------------------------------------------------------------------ zip members
def _peak_rss_mb(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    """Peak memory (MB) of ``birdsong ARGS`` run alone in a child process."""
    code = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(peak); print(p.returncode); sys.stdout.write(p.stdout)\n"
        "sys.stderr.write(p.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, sys.executable, "-m", "birdsong.cli", *args],
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = proc.stdout.splitlines()
    out = subprocess.CompletedProcess(args, int(lines[1]), "\n".join(lines[2:]), proc.stderr)
    return float(lines[0]), out


@pytest.mark.hostile("model files")
def test_a_zip_bomb_member_is_never_decompressed(tmp_path, models):
    """A 1 MB model carrying a 512 MiB (deflated to ~0.5 MB) extra member: ``birdsong
    info`` and ``Classifier`` read only labels.txt; peak memory stays within 100 MB of
    the same command on the clean model. Before: every member was decompressed whole
    (the issue measured 2.1 GB for a 1 GiB member)."""
    assert resource  # peak memory is read with resource.getrusage in a child process
    good = (models / "softmax.tflite").read_bytes()
    bomb = with_members(good, {"notes.bin": ("\0", 512 << 20)}, compress=zipfile.ZIP_DEFLATED)
    path = tmp_path / "bomb.tflite"
    path.write_bytes(bomb)
    assert len(bomb) < len(good) + 2_000_000
    clean_mb, clean = _peak_rss_mb("info", str(models / "softmax.tflite"), "--json")
    bomb_mb, proc = _peak_rss_mb("info", str(path), "--json")
    assert clean.returncode == 0 and proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["labels"] == ["alpha", "beta", "gamma"]
    assert bomb_mb < clean_mb + 100, (clean_mb, bomb_mb)
    assert Classifier(path).labels == ("alpha", "beta", "gamma")


@pytest.mark.hostile("model files")
def test_an_oversized_labels_file_is_a_model_error(tmp_path, models):
    """labels.txt itself inflating to 64 MiB: ModelError naming the file and the member,
    after reading at most the cap (1 MiB + 1 byte)."""
    good = (models / "softmax.tflite").read_bytes()
    path = tmp_path / "big_labels.tflite"
    path.write_bytes(
        with_members(good, {"labels.txt": ("a\n", 64 << 20)}, compress=zipfile.ZIP_DEFLATED)
    )
    for call in (lambda: read_metadata(path), lambda: Classifier(path)):
        with pytest.raises(ModelError, match="labels.txt") as err:
            call()
        assert str(path) in str(err.value) and str(MAX_MEMBER_BYTES) in str(err.value)


# ---------------------------------------------------------- settings of the wrong type
BAD_SETTINGS = {
    "train_is_text": ({"train": "x"}, "'settings.train'"),
    "train_is_list": ({"train": [1, 2]}, "'settings.train'"),
    "min_activity_list": ({"train": {"min_activity": [0.2]}}, "'settings.train.min_activity'"),
    "min_activity_text": ({"train": {"min_activity": "0.2"}}, "'settings.train.min_activity'"),
    "min_activity_5": ({"train": {"min_activity": 5}}, "'settings.train.min_activity'"),
    "min_activity_bool": ({"train": {"min_activity": True}}, "'settings.train.min_activity'"),
    "features_text": ({"features": "x"}, "'settings.features'"),
    "features_list": ({"features": [16000]}, "'settings.features'"),
    "quantization_number": ({"quantization": 3}, "'settings.quantization'"),
    "version_list": ({"birdsong_version": ["1"]}, "'settings.birdsong_version'"),
}


# FeatureConfig named these fields already before issue 11: kept as guards.
FEATURE_GUARDS = {
    "features_rate_text": (
        {"features": {"sample_rate": "16000", "clip_seconds": 1.0}},
        "'sample_rate'",
    ),
    "features_mels_list": (
        {"features": {"sample_rate": SR, "clip_seconds": 1.0, "n_mels": [48]}},
        "'n_mels'",
    ),
    "features_unknown": ({"features": {"sample_rate": SR, "clip_seconds": 1.0, "x": 1}}, "'x'"),
}


@pytest.mark.hostile("model files")
@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_malformed_settings_are_model_errors_naming_file_and_field(tmp_path, models, case):
    """Each malformed ``birdsong`` settings field: ModelError naming the file and the
    field (``settings.train.min_activity``), from ``Classifier`` and ``read_metadata``.
    Before: TypeError / AttributeError tracebacks (e.g. ``"train": "x"``), values used
    as they were (``min_activity`` 5 or True), or messages without the field."""
    path = _malformed(tmp_path, models, case, *BAD_SETTINGS[case])
    with pytest.raises(ModelError, match=BAD_SETTINGS[case][1]):
        read_metadata(path)


@pytest.mark.parametrize("case", sorted(FEATURE_GUARDS))
def test_malformed_feature_settings_name_the_field(tmp_path, models, case):
    _malformed(tmp_path, models, case, *FEATURE_GUARDS[case])


def _malformed(tmp_path, models, case, settings, field) -> Path:
    from birdsong.metadata import add_metadata

    flat = (models / "softmax.tflite").read_bytes()
    path = tmp_path / f"{case}.tflite"
    path.write_bytes(
        add_metadata(
            flat, labels=["a", "b", "c"], sample_rate=SR, num_samples=SR, settings=settings
        )
    )
    with pytest.raises(ModelError) as err:
        Classifier(path)
    assert str(path) in str(err.value) and field in str(err.value), str(err.value)
    return path


@pytest.mark.hostile("model files")
def test_malformed_settings_in_the_cli_are_one_line(tmp_path, models):
    from birdsong.metadata import add_metadata

    path = tmp_path / "odd.tflite"
    path.write_bytes(
        add_metadata(
            (models / "softmax.tflite").read_bytes(),
            labels=["a", "b", "c"],
            sample_rate=SR,
            num_samples=SR,
            settings={"train": "x"},
        )
    )
    clip = _wav(tmp_path / "c.wav", (0.1, 0.1, 0.1))
    for args in (["predict", clip, "--model", path], ["info", path]):
        proc = cli(*args)
        line = one_line_error(proc)
        assert proc.returncode == 2 and "'settings.train'" in line and str(path) in line


@pytest.mark.hostile("model files")
def test_json_nested_too_deep_is_a_model_error(tmp_path, models):
    """The settings JSON made of 100,001 nested lists (same byte length, so the model
    stays valid): ModelError naming the file. Before: RecursionError traceback."""
    from birdsong.metadata import add_metadata

    pad = "Z" * 200_000
    data = add_metadata(
        (models / "softmax.tflite").read_bytes(),
        labels=["a", "b", "c"],
        sample_rate=SR,
        num_samples=SR,
        settings={"pad": pad},
    )
    quoted = f'"{pad}"'.encode()
    deep = b"[" * 100_001 + b"]" * 100_001
    assert len(deep) == len(quoted) and data.count(quoted) >= 1
    path = tmp_path / "deep.tflite"
    path.write_bytes(data.replace(quoted, deep))
    with pytest.raises(ModelError, match="not usable JSON") as err:
        Classifier(path)
    assert str(path) in str(err.value)
    assert "Traceback" not in cli("info", path).stderr


# ------------------------------------------------------------------------ labels
@pytest.mark.hostile("model files")
@pytest.mark.parametrize(
    "labels_txt,match",
    [
        (b"a\nb\na\n", "duplicate labels"),
        (b"a\n\nc\n", "empty labels"),
        (b"a\n   \nc\n", "empty labels"),
    ],
)
def test_duplicate_or_empty_labels_are_refused_on_load(tmp_path, models, labels_txt, match):
    """labels.txt with a label twice, or an empty one: ModelError naming the file.
    Before: accepted (two outputs under one name; a detection labelled '')."""
    good = (models / "softmax.tflite").read_bytes()
    path = tmp_path / "labels.tflite"
    path.write_bytes(with_members(good, {"labels.txt": labels_txt}))
    with pytest.raises(ModelError, match=match) as err:
        Classifier(path)
    assert str(path) in str(err.value)


@pytest.mark.hostile("model files")
@pytest.mark.parametrize("labels", [["a", "a", "b"], ["a", "", "b"], "abc", []])
def test_duplicate_or_empty_labels_given_by_the_caller(models, labels):
    with pytest.raises(InvalidParameterError, match="'labels' parameter of Classifier"):
        Classifier(models / "softmax.tflite", labels=labels)


# ---------------------------------------------------------------------- outputs
@pytest.mark.hostile("model files")
@pytest.mark.parametrize(
    "kind,first,match",
    [
        ("sqrt", (-0.25, 0.04, 0.09), "not a number"),
        ("reciprocal", (0.0, 0.5, 0.5), "not a number"),
        ("scaled", (0.5, -0.1, 0.1), "not probabilities"),
    ],
)
def test_outputs_that_are_not_probabilities_are_errors(tmp_path, models, kind, first, match):
    """A model giving NaN, infinite, negative or > 1 scores for a recording: ModelError
    naming the model file and the window (library), an error row naming the recording
    (``birdsong predict --format json``, whose output stays strict JSON: no bare NaN).
    Before: NaN scores reached the JSON and passed --min-score as detections."""
    clf = Classifier(models / f"{kind}.tflite")
    bad = _wav(tmp_path / "bad.wav", first)
    good = _wav(tmp_path / "good.wav", (0.04, 0.09, 0.16))
    with pytest.raises(ModelError, match=match) as err:
        clf.predict(bad)
    assert str(clf.path) in str(err.value) and "window" in str(err.value)
    windows = np.zeros((2, SR), np.float32)
    windows[0, :3] = (1.0, 1.0, 1.0) if kind == "reciprocal" else (0.04, 0.09, 0.16)
    windows[1, :3] = first
    with pytest.raises(ModelError, match="window at 1.000 s"):
        clf.predict_windows(windows, starts=[0.0, 1.0])
    proc = cli(
        "predict",
        bad,
        good,
        "--model",
        clf.path,
        "--format",
        "json",
        "--min-score",
        "0.1",
        "--overlap",
        "0",
    )

    def no_constants(name):
        raise AssertionError(f"bare {name} in JSON output")

    rows = [json.loads(x, parse_constant=no_constants) for x in proc.stdout.splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["bad.wav", "good.wav"]
    assert match in rows[0]["error"] and "detections" not in rows[0]
    if kind == "sqrt":  # the same model on a recording it handles: normal result
        assert rows[1]["label"] and rows[1]["detections"]
        assert proc.returncode == 1  # one input failed: said by the exit status


@pytest.mark.hostile("model files")
def test_non_probabilities_are_usable_by_explicit_opt_in(models):
    clf = Classifier(models / "scaled.tflite", allow_non_probabilities=True)
    w = np.zeros((1, SR), np.float32)
    w[0, :3] = (0.5, -0.1, 0.1)
    np.testing.assert_allclose(clf.predict_windows(w)[0], [2.5, -0.5, 0.5], atol=1e-6)
    w[0, 0] = np.nan
    with pytest.raises(ModelError, match="not a number"):  # NaN: an error even then
        clf.predict_windows(w)


# ---------------------------------------------------------------- escape codes
@pytest.mark.hostile("model files")
def test_labels_with_terminal_escapes_are_printed_escaped(tmp_path, models):
    """Labels holding an ANSI escape (ESC[2J clears the screen) and a right-to-left
    override, and a file name holding one, reach no terminal raw: the table, CSV,
    Raven, JSON and ``info`` output show them escaped. (Written to a file with -o, paths
    stay exact for --resume; labels are escaped there too.) Before: printed raw."""
    from birdsong.metadata import add_metadata

    evil = ["\x1b[2J\x1b[31mred", "\u202eevil", "plain"]
    path = tmp_path / "evil.tflite"
    path.write_bytes(
        add_metadata(
            (models / "softmax.tflite").read_bytes(),
            labels=evil,
            sample_rate=SR,
            num_samples=SR,
            settings={"train": {"min_activity": 0.0}},
        )
    )
    clip = _wav(tmp_path / "c\x1b[1m.wav", (0.3, 0.0, 0.0))
    for fmt in ("table", "csv", "raven", "json"):
        proc = cli("predict", clip, "--model", path, "--format", fmt, "--min-score", "0.1")
        assert proc.returncode == 0, proc.stderr
        assert "\x1b" not in proc.stdout + proc.stderr and "\u202e" not in proc.stdout
        if fmt != "json":
            assert "\\x1b[2J\\x1b[31mred" in proc.stdout
    info = cli("info", path, "--json")
    assert "\x1b" not in info.stdout and json.loads(info.stdout)["labels"] == evil
    readable = cli("info", path)
    assert readable.returncode == 0 and "\x1b" not in readable.stdout
    out = tmp_path / "out.csv"
    assert cli("predict", clip, "--model", path, "--format", "csv", "-o", out).returncode == 0
    text = out.read_text(encoding="utf-8")
    assert str(clip) in text and "\\x1b[2J\\x1b[31mred" in text
