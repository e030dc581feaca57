"""Tests of birdsong.metadata: TFLite Model Metadata written and read back.

The MediaPipe checks run in a Python that has ``mediapipe`` installed: this
interpreter when it can import it, else the interpreter named by the
environment variable ``BIRDSONG_MEDIAPIPE_PYTHON`` (e.g. a separate venv, as
mediapipe and tensorflow need not share one); they are skipped otherwise.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from birdsong.errors import InvalidParameterError, ModelError
from birdsong.metadata import (
    ModelInfo,
    _embed,
    add_metadata,
    has_metadata,
    read_labels,
    read_metadata,
)

N = 16000
LABELS = ("robin", "wren", "blackbird")
SETTINGS = {"features": {"n_mels": 64, "fmin": 50.0}, "window_s": 1.0, "note": "grüß"}


@pytest.fixture(scope="module")
def plain_model() -> bytes:
    """A tiny real TFLite classifier: float [1, N] audio in, softmax over 3 classes out."""
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(N,), name="audio")
    x = keras.layers.Reshape((100, N // 100))(inp)
    x = keras.layers.Dense(8, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    out = keras.layers.Dense(len(LABELS), activation="softmax")(x)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, out))
    return converter.convert()


@pytest.fixture(scope="module")
def meta_model(plain_model: bytes) -> bytes:
    return add_metadata(
        plain_model,
        labels=LABELS,
        sample_rate=16000,
        num_samples=N,
        version="0.1.0",
        description="A test model.",
        settings=SETTINGS,
    )


@pytest.fixture
def meta_path(meta_model: bytes, tmp_path: Path) -> Path:
    path = tmp_path / "model.tflite"
    path.write_bytes(meta_model)
    return path


def _run_litert(model: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def test_round_trip(meta_path: Path) -> None:
    info = read_metadata(meta_path)
    assert info == ModelInfo(
        name="birdsong classifier",
        version="0.1.0",
        labels=LABELS,
        sample_rate=16000,
        channels=1,
        num_samples=N,
        settings=SETTINGS,
    )
    assert read_metadata(str(meta_path)) == info
    assert read_metadata(meta_path.read_bytes()) == info
    assert read_labels(meta_path) == LABELS
    assert has_metadata(meta_path)


def test_still_runs_the_same(plain_model: bytes, meta_model: bytes) -> None:
    x = np.random.default_rng(1).uniform(-1, 1, (1, N)).astype(np.float32)
    expected = _run_litert(plain_model, x)
    np.testing.assert_array_equal(_run_litert(meta_model, x), expected)
    assert expected.shape == (1, len(LABELS))


def test_associated_files_in_zip(meta_path: Path) -> None:
    with zipfile.ZipFile(meta_path) as zf:
        assert zf.read("labels.txt").decode().splitlines() == list(LABELS)
        doc = json.loads(zf.read("birdsong.json"))
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    assert doc["settings"] == SETTINGS and doc["labels"] == list(LABELS)
    assert doc["version"] == "0.1.0" and doc["num_samples"] == N


def test_labels_survive_stripped_zip(meta_model: bytes) -> None:
    start = meta_model.index(b"PK\x03\x04")  # the zip starts right after the flatbuffer
    info = read_metadata(meta_model[:start])
    assert info.labels == LABELS and info.settings == SETTINGS


def test_tensor_data_stays_16_byte_aligned(meta_model: bytes) -> None:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(meta_model, 0)
    for i in range(model.BuffersLength()):
        buf = model.Buffers(i)
        if buf.DataLength():
            assert buf._tab.Vector(buf._tab.Offset(4)) % 16 == 0, f"buffer {i}"


def test_add_twice_replaces_and_keeps_other_files(meta_model: bytes) -> None:
    extra = io.BytesIO(meta_model)
    with zipfile.ZipFile(extra, "a") as zf:
        zf.writestr("notes.txt", b"keep me")
    again = add_metadata(
        extra.getvalue(), labels=["a", "b", "c"], sample_rate=8000, num_samples=N // 2, channels=2
    )
    info = read_metadata(again)
    assert (info.labels, info.sample_rate, info.channels, info.num_samples) == (
        ("a", "b", "c"),
        8000,
        2,
        N // 2,
    )
    assert info.settings == {}
    with zipfile.ZipFile(io.BytesIO(again)) as zf:
        assert sorted(zf.namelist()) == ["birdsong.json", "labels.txt", "notes.txt"]
        assert zf.read("notes.txt") == b"keep me"
    assert again.count(b"TFLITE_METADATA") == 1


def test_reading_does_not_import_tensorflow(meta_path: Path) -> None:
    code = (
        "import sys\n"
        "from birdsong.metadata import read_metadata\n"
        f"info = read_metadata({str(meta_path)!r})\n"
        "assert info.labels == ('robin', 'wren', 'blackbird'), info\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'ai_edge_litert') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("empty", "only 0 bytes"),
        ("random", "not a TFLite model"),
        ("zip", "zip archive"),
        ("truncated", "truncated or corrupt"),
        ("no_metadata", "no TFLite Model Metadata"),
    ],
)
def test_bad_files_raise_model_error(
    kind: str, needle: str, plain_model: bytes, meta_model: bytes, tmp_path: Path
) -> None:
    path = tmp_path / f"{kind}.tflite"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(random.Random(0).randbytes(5000))
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("labels.txt", "a\nb\n")
    elif kind == "truncated":
        path.write_bytes(meta_model[:200])
    else:
        path.write_bytes(plain_model)
    with pytest.raises(ModelError, match=needle) as err:
        read_metadata(path)
    assert str(path) in str(err.value)
    if kind == "no_metadata":
        assert "labels, sample_rate, channels" in str(err.value)
        assert "explicitly" in str(err.value)
        assert read_labels(path) is None
    else:
        with pytest.raises(ModelError):
            read_labels(path)
    assert not has_metadata(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_metadata(tmp_path / "nope.tflite")


def test_corrupted_bytes_never_crash_otherwise(meta_model: bytes) -> None:
    rng = random.Random(42)
    for _ in range(400):
        data = bytearray(meta_model)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        with contextlib.suppress(ModelError):
            read_metadata(bytes(data))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"labels": []}, "labels"),
        ({"labels": "abc"}, "labels"),
        ({"labels": ["a", "b", "a"]}, r"duplicates \['a'\]"),
        ({"labels": ["a", "b\nc", "d"]}, "one-line"),
        ({"labels": ["a", "b"]}, "labels has 2 entries"),
        ({"sample_rate": 0}, "sample_rate must be a positive integer, got 0"),
        ({"sample_rate": -16000}, "sample_rate.*-16000"),
        ({"channels": 0}, "channels.*0"),
        ({"num_samples": 8000}, "num_samples=8000"),
        ({"settings": {"f": object()}}, "settings"),
        ({"settings": {"x": float("nan")}}, "settings"),
    ],
)
def test_add_metadata_validates(plain_model: bytes, change: dict, needle: str) -> None:
    kwargs = {"labels": LABELS, "sample_rate": 16000, "num_samples": N} | change
    with pytest.raises(InvalidParameterError, match=needle):
        add_metadata(plain_model, **kwargs)


def test_add_metadata_rejects_non_models() -> None:
    with pytest.raises(ModelError, match="not a TFLite model"):
        add_metadata(b"hello world!", labels=LABELS, sample_rate=16000, num_samples=N)


# --------------------------------------------------------------------------- MediaPipe
_MEDIAPIPE_SCRIPT = r"""
import json, sys
import numpy as np
from mediapipe.tasks.metadata import metadata_schema_py_generated as mfb
from mediapipe.tasks.metadata import schema_py_generated as sfb

path, clip_path = sys.argv[1], sys.argv[2]
buf = open(path, "rb").read()
model = sfb.Model.GetRootAs(buf, 0)
data = None
for i in range(model.MetadataLength()):
    if model.Metadata(i).Name() == b"TFLITE_METADATA":
        data = model.Buffers(model.Metadata(i).Buffer()).DataAsNumpy().tobytes()
assert mfb.ModelMetadata.ModelMetadataBufferHasIdentifier(data, 0)
md = mfb.ModelMetadataT.InitFromObj(mfb.ModelMetadata.GetRootAs(data, 0))
sg = md.subgraphMetadata[0]
content = sg.inputTensorMetadata[0].content
assert content.contentPropertiesType == mfb.ContentProperties.AudioProperties
out = {
    "name": md.name.decode(), "version": md.version.decode(),
    "min_parser_version": md.minParserVersion.decode(),
    "audio": [content.contentProperties.sampleRate, content.contentProperties.channels],
    "output_files": [[f.name.decode(), f.type] for f in sg.outputTensorMetadata[0].associatedFiles],
    "model_files": [f.name.decode() for f in md.associatedFiles],
    "custom": {c.name.decode(): json.loads(bytes(c.data)) for c in sg.customMetadata},
}
# Official packing of the same metadata minus birdsong's own parts (a "foreign" model).
sg.customMetadata, md.associatedFiles, md.minParserVersion = None, None, "1.3.0"
import flatbuffers
b = flatbuffers.Builder(0)
b.Finish(md.Pack(b), b"M001")
out["foreign_metadata"] = bytes(b.Output()).hex()

from mediapipe.tasks.python import audio
from mediapipe.tasks.python.components.containers import AudioData
from mediapipe.tasks.python.core.base_options import BaseOptions
options = audio.AudioClassifierOptions(base_options=BaseOptions(model_asset_path=path))
with audio.AudioClassifier.create_from_options(options) as classifier:
    results = classifier.classify(AudioData.create_from_array(np.load(clip_path), 16000))
out["results"] = [
    {
        "timestamp_ms": r.timestamp_ms,
        "head": r.classifications[0].head_name,
        "scores": {c.category_name: c.score for c in r.classifications[0].categories},
    }
    for r in results
]
print(json.dumps(out))
"""


def _mediapipe_python() -> str:
    configured = os.environ.get("BIRDSONG_MEDIAPIPE_PYTHON")
    if configured:
        return configured
    if importlib.util.find_spec("mediapipe") is None:
        pytest.skip("mediapipe is not importable (set BIRDSONG_MEDIAPIPE_PYTHON to use a venv)")
    return sys.executable


@pytest.fixture(scope="module")
def mediapipe_report(meta_model: bytes, tmp_path_factory: pytest.TempPathFactory) -> dict:
    python = _mediapipe_python()
    folder = tmp_path_factory.mktemp("mediapipe")
    (folder / "model.tflite").write_bytes(meta_model)
    clip = np.random.default_rng(7).uniform(-0.5, 0.5, 2 * N).astype(np.float32)
    np.save(folder / "clip.npy", clip)
    result = subprocess.run(
        [python, "-c", _MEDIAPIPE_SCRIPT, str(folder / "model.tflite"), str(folder / "clip.npy")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["clip"] = clip
    return report


def test_official_schema_reads_our_metadata(mediapipe_report: dict) -> None:
    assert mediapipe_report["audio"] == [16000, 1]
    assert mediapipe_report["output_files"] == [["labels.txt", 2]]  # TENSOR_AXIS_LABELS
    assert mediapipe_report["model_files"] == ["birdsong.json"]
    assert mediapipe_report["min_parser_version"] == "1.5.0"
    assert mediapipe_report["custom"]["birdsong"]["settings"] == SETTINGS
    assert (mediapipe_report["name"], mediapipe_report["version"]) == (
        "birdsong classifier",
        "0.1.0",
    )


def test_reads_metadata_packed_by_official_code(plain_model: bytes, mediapipe_report: dict) -> None:
    model = io.BytesIO(
        _embed(plain_model, bytes.fromhex(mediapipe_report["foreign_metadata"]), "m")
    )
    model.seek(0, io.SEEK_END)
    with zipfile.ZipFile(model, "a") as zf:
        zf.writestr("labels.txt", "x\ny\nz\n")
    info = read_metadata(model.getvalue())
    assert (info.labels, info.sample_rate, info.channels) == (("x", "y", "z"), 16000, 1)
    assert (info.num_samples, info.settings, info.version) == (N, {}, "0.1.0")


def test_mediapipe_audio_classifier_matches_litert(
    meta_model: bytes, mediapipe_report: dict
) -> None:
    results = mediapipe_report["results"]
    assert [r["timestamp_ms"] for r in results] == [0, 1000]
    clip = mediapipe_report["clip"]
    for i, result in enumerate(results):
        assert result["head"] == "probability"
        expected = _run_litert(meta_model, clip[None, i * N : (i + 1) * N])[0]
        got = [result["scores"][label] for label in LABELS]
        np.testing.assert_allclose(got, expected, atol=1e-5)
