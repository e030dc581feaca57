"""Export + LiteRT inference: parity, metadata, predict API, detections, default model."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf

keras = pytest.importorskip("keras")

from birdsong.errors import InvalidParameterError, ModelError  # noqa: E402
from birdsong.inference import Classifier, load_classifier, predict, resolve_model  # noqa: E402
from conftest import SR, TONES, tiny_features  # noqa: E402
from conftest import tone as _tone  # noqa: E402


def test_keras_and_litert_agree(trained_run):
    from birdsong.model import load_keras_model

    model = load_keras_model(trained_run.run_dir)
    clf = Classifier(trained_run.tflite_path, num_threads=2)
    rng = np.random.default_rng(0)
    x = (0.2 * rng.standard_normal((6, clf.features.num_samples))).astype(np.float32)
    x[0] = 0.0
    x[1, :8000] = _tone(5000, 0.5)
    diff = np.abs(np.asarray(model(x, training=False)) - clf.predict_windows(x)).max()
    assert diff <= 1e-4


def test_model_file_describes_itself(trained_run):
    from birdsong.metadata import read_metadata

    clf = Classifier(trained_run.tflite_path)
    assert clf.labels == ("high", "low", "mid")
    assert clf.sample_rate == SR and clf.clip_seconds == 1.0
    assert clf.features == tiny_features()
    info = read_metadata(trained_run.tflite_path)
    assert info.settings["training"]["alpha"] == 0.35
    assert info.settings["windows"] == {
        "hop_seconds": 0.5,
        "min_activity": 0.2,
        "max_windows": 3,
        "aggregation": "mean",
    }
    assert "features" not in info.settings["training"]  # once, not twice
    assert info.settings["quantization"] == "none"
    labels_txt = trained_run.tflite_path.with_name("labels.txt").read_text().split()
    assert labels_txt == list(clf.labels)


def test_predict_sources_agree(trained_run, tmp_path):
    clf = Classifier(trained_run.tflite_path)
    x = _tone(800, 2.5) + _tone(5000, 2.5, amp=0.01)
    sf.write(tmp_path / "clip.wav", x, SR, subtype="FLOAT")
    sf.write(tmp_path / "clip44.flac", _resample_naive(x, 44100), 44100)
    a = clf.predict(tmp_path / "clip.wav")
    with open(tmp_path / "clip.wav", "rb") as fh:
        b = clf.predict(fh)
    c = clf.predict(x, sample_rate=SR)
    assert a.label == b.label == c.label
    np.testing.assert_allclose(list(a.scores.values()), list(c.scores.values()), atol=1e-5)
    assert len(a.windows) == 4 and a.windows[-1].end == pytest.approx(2.5)  # hop 0.5 s
    assert a.top_k[0][0] == a.label and len(a.top_k) == 3
    assert sum(a.scores.values()) == pytest.approx(1.0, abs=1e-4)
    d = clf.predict(tmp_path / "clip44.flac")  # resampled from 44.1 kHz on the way in
    assert d.duration == pytest.approx(2.5, abs=0.01)
    with pytest.raises(InvalidParameterError, match="sample_rate"):
        clf.predict(x)
    with pytest.raises(InvalidParameterError, match="'overlap'"):
        clf.predict(x, sample_rate=SR, overlap=1.0)


def _resample_naive(x, rate):
    from birdsong.audio import resample

    return resample(x, SR, rate)


def test_thread_safe_calls(trained_run):
    clf = Classifier(trained_run.tflite_path)
    x = np.random.default_rng(1).standard_normal((4, SR)).astype(np.float32) * 0.1
    expected = clf.predict_windows(x)
    errors = []

    def work():
        for _ in range(5):
            if not np.allclose(clf.predict_windows(x), expected, atol=1e-6):
                errors.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# -------------------------------------------------------------- detection timing
def test_long_recording_detections_centred_on_the_songs(band_model, tmp_path):
    """Each window answers for its middle hop: an event's centre lies within half a hop
    of its song's, and it overlaps the song by most of their union (IoU >= 0.6)."""
    rng = np.random.default_rng(5)
    total = 30.0
    x = (3e-4 * rng.standard_normal(int(total * SR))).astype(np.float32)
    truth = [("high", 4.0, 6.0), ("low", 11.3, 13.8), ("mid", 20.0, 23.0)]
    for name, start, end in truth:
        i = int(start * SR)
        x[i : i + int((end - start) * SR)] += _tone(TONES[name], end - start)
    sf.write(tmp_path / "field recording (dawn) é.wav", x, SR, subtype="PCM_16")
    clf = Classifier(band_model)
    for overlap in (0.5, 0.0):
        hop = clf.clip_seconds - overlap
        pred = clf.predict(
            tmp_path / "field recording (dawn) é.wav",
            overlap=overlap,
            min_score=0.5,
            block_seconds=4.0,
        )
        got = [(d.label, d.start, d.end) for d in pred.detections]
        assert [g[0] for g in got] == [t[0] for t in truth], got
        for (_, s, e), (_, ts, te) in zip(got, truth):
            assert abs((s + e) / 2 - (ts + te) / 2) <= hop / 2 + 1e-6, (got, hop)
            iou = (min(e, te) - max(s, ts)) / (max(e, te) - min(s, ts))
            assert iou >= 0.6, (got, hop)


def test_default_model_resolution_order(trained_run, band_model, tmp_path, monkeypatch):
    from birdsong.registry import remember_model

    with pytest.raises(ModelError, match="BIRDSONG_MODEL"):
        resolve_model()
    remember_model(trained_run.tflite_path)
    assert resolve_model() == trained_run.tflite_path.resolve()
    monkeypatch.setenv("BIRDSONG_MODEL", str(band_model))
    assert resolve_model() == band_model
    assert resolve_model(trained_run.run_dir) == trained_run.run_dir
    clip = tmp_path / "c.wav"
    sf.write(clip, _tone(5000, 1.0), SR)
    assert predict(clip).label == "high"  # the band model, from the environment
    assert load_classifier() is load_classifier()  # reused across calls


@pytest.mark.parametrize("variant", ["float16", "dynamic", "int8"])
def test_quantized_variants_run(trained_run, tmp_path, variant):
    from birdsong.exporting import agreement_with_float32, export_model
    from birdsong.metadata import read_metadata

    out = export_model(trained_run.run_dir, tmp_path / f"{variant}.tflite", quantize=variant)
    clf = Classifier(out)
    scores = clf.predict_windows(np.zeros((2, clf.features.num_samples), np.float32))
    assert np.allclose(scores.sum(axis=1), 1.0, atol=0.02)
    check = agreement_with_float32(trained_run.run_dir, out)
    assert check["windows"] > 0
    carried = read_metadata(out).settings["agreement_with_float32"]
    assert carried["windows"] == check["windows"]
    assert carried["top1_agreement"] == pytest.approx(check["top1_agreement"])
    if variant == "float16":  # float16 weights, float32 arithmetic: the same answers
        assert check["top1_agreement"] == 1.0 and check["max_abs_difference"] < 0.01
    if variant == "int8":  # the recipe kept is the one that agreed best
        assert read_metadata(out).settings["int8_recipe"] in (
            "frontend-float",
            "ends-float",
            "debugger",
        )
        assert check["max_abs_difference"] < 0.5
    assert out.stat().st_size < trained_run.tflite_path.stat().st_size


@pytest.mark.parametrize(
    "content", [b"", b"\x00" * 64, b"PK\x03\x04 not a model", b"ABCDTFL3" + b"\x00" * 100]
)
def test_bad_model_files_raise_model_error_with_path(tmp_path, content):
    bad = tmp_path / "bad model.tflite"
    bad.write_bytes(content)
    with pytest.raises(ModelError, match="bad model.tflite"):
        Classifier(bad)


def test_truncated_model(trained_run, tmp_path):
    data = trained_run.tflite_path.read_bytes()
    bad = tmp_path / "truncated.tflite"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated.tflite"):
        Classifier(bad)


def test_predict_cli_never_imports_tensorflow(trained_run, tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, _tone(800, 2.0), SR)
    code = (
        "import sys, json\n"
        "from birdsong.cli import main\n"
        f"rc = main(['predict', {str(clip)!r}, '--model', {str(trained_run.tflite_path)!r},"
        " '--format', 'json'])\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'librosa') if m in sys.modules]\n"
        "print('HEAVY', json.dumps(heavy)); sys.exit(rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "HEAVY []"
    obj = json.loads(lines[0])
    assert set(obj) >= {"path", "label", "score", "top_k", "detections"}
    assert obj["path"] == str(clip) and isinstance(obj["top_k"][0], list)


def test_background_class_never_becomes_a_detection(band_model, tmp_path):
    x = (3e-4 * np.random.default_rng(2).standard_normal(10 * SR)).astype(np.float32)
    x[2 * SR : 4 * SR] += _tone(TONES["high"], 2.0)
    x[6 * SR : 8 * SR] += _tone(TONES["low"], 2.0)
    plain = Classifier(band_model).predict(x, sample_rate=SR, overlap=0.5)
    assert [d.label for d in plain.detections] == ["high", "low"]
    renamed = Classifier(band_model, labels=["_Background", "low", "mid"])
    pred = renamed.predict(x, sample_rate=SR, overlap=0.5)
    assert [d.label for d in pred.detections] == ["low"]


def test_answer_does_not_depend_on_batch_size(band_model):
    """The window rules need the whole recording's noise floor: scoring 1, 4 or 64
    windows at a time gives the same windows, answer and detections."""
    rng = np.random.default_rng(5)
    x = (3e-3 * rng.standard_normal(60 * SR)).astype(np.float32)
    for start, name in ((3, "high"), (11, "low"), (30, "mid"), (47, "low")):
        x[start * SR : (start + 2) * SR] += _tone(TONES[name], 2.0, amp=0.05 + 0.05 * start / 60)
    clf = Classifier(band_model)
    runs = [clf.predict(x, sample_rate=SR, batch_windows=b) for b in (1, 4, 64)]
    for other in runs[1:]:
        assert other.label == runs[0].label
        assert other.scores == pytest.approx(runs[0].scores, abs=1e-6)
        assert other.detections == runs[0].detections
        assert [w.activity for w in other.windows] == [w.activity for w in runs[0].windows]


@pytest.mark.slow
def test_evaluate_gives_the_answer_predict_gives(trained_run):
    """The per-recording number in a report is the number a user gets."""
    from birdsong.evaluation import evaluate

    report = evaluate(trained_run.tflite_path, trained_run.run_dir.parent / "data")
    clf = Classifier(trained_run.tflite_path)
    assert report["recordings"]
    for rec in report["recordings"]:
        pred = clf.predict(rec["path"])
        assert pred.label == rec["predicted"], rec["path"]
        assert pred.score == pytest.approx(rec["score"], abs=1e-6)


def test_soundscape_evaluation_of_an_exported_model(band_model, tmp_path):
    """evaluate() on a recording with a Raven table: window cmAP and event matching at
    the model's thresholds, as predict makes the detections."""
    from birdsong.annotations import Annotation, write_raven
    from birdsong.evaluation import evaluate

    rng = np.random.default_rng(3)
    x = (3e-4 * rng.standard_normal(20 * SR)).astype(np.float32)
    truth = [(2.0, 4.0, "high"), (8.0, 10.0, "low"), (14.0, 16.0, "mid")]
    for start, end, name in truth:
        x[int(start * SR) : int(end * SR)] += _tone(TONES[name], end - start)
    folder = tmp_path / "soundscapes"
    folder.mkdir()
    sf.write(folder / "dawn.wav", x, SR)
    write_raven(
        folder / "dawn.Table.1.selections.txt",
        [Annotation("dawn.wav", s, e, name) for s, e, name in truth],
        file="dawn.wav",
    )
    report = evaluate(band_model, folder, output_dir=tmp_path / "report", min_score=0.5)
    assert report["kind"] == "soundscapes" and report["recordings"] == 1
    assert report["window_metrics"]["cmap"] > 0.9
    events = report["event_metrics"]["overall"]
    assert (events["tp"], events["fp"], events["fn"]) == (3, 0, 0)
    assert (tmp_path / "report" / "pr_curves.png").stat().st_size > 5000
    assert "cmAP" in (tmp_path / "report" / "report.md").read_text()
    # the detections counted are the ones predict gives
    pred = Classifier(band_model).predict(folder / "dawn.wav", min_score=0.5)
    assert [d.label for d in pred.detections] == ["high", "low", "mid"]


@pytest.mark.parametrize("tables", ["combined", "per-recording"])
def test_raven_tables_from_predict_read_back(band_model, tmp_path, tables):
    """predict --format raven writes tables that training/evaluation read back: the
    same spans, species and scores, paired with their recordings."""
    from birdsong.annotation_index import index_annotations
    from birdsong.cli import main
    from birdsong.evaluation import evaluate

    folder = tmp_path / "field"
    folder.mkdir()
    rng = np.random.default_rng(4)
    expected = {}
    for k, layout in enumerate([("high", 1.0, "low", 6.0), ("mid", 3.0, "high", 8.0)]):
        x = (3e-4 * rng.standard_normal(12 * SR)).astype(np.float32)
        for name, start in (layout[:2], layout[2:]):
            x[int(start * SR) : int((start + 2) * SR)] += _tone(TONES[name], 2.0)
        sf.write(folder / f"site{k}.wav", x, SR)
        pred = Classifier(band_model).predict(folder / f"site{k}.wav", min_score=0.5)
        expected[f"site{k}.wav"] = [
            (round(d.start, 3), round(d.end, 3), d.label, round(d.score, 3))
            for d in pred.detections
        ]
    out = folder / "birdsong.selections.txt" if tables == "combined" else folder
    assert (
        main(
            [
                "predict",
                str(folder),
                "--model",
                str(band_model),
                "--format",
                "raven",
                "--tables",
                tables,
                "--min-score",
                "0.5",
                "-o",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    index = index_annotations(folder)
    assert not index.skipped and len(index.recordings) == 2
    for rec in index.recordings:
        got = [
            (round(a.start, 3), round(a.end, 3), a.label, round(a.score, 3))
            for a in rec.annotations
        ]
        assert got == expected[rec.path.name]
    # as truth for evaluation, the model's own detections are found exactly
    report = evaluate(band_model, folder, min_score=0.5)
    events = report["event_metrics"]["overall"]
    assert events["fp"] == events["fn"] == 0 and events["tp"] == 4


def test_multi_label_model_names_two_species_singing_at_once(band_model, band_model_multi):
    """Two species in the same windows: one sigmoid per species detects both; a softmax
    model, which must share one unit of probability among them, cannot."""
    from birdsong.metadata import read_metadata

    x = (3e-4 * np.random.default_rng(6).standard_normal(8 * SR)).astype(np.float32)
    x[3 * SR : 5 * SR] += _tone(TONES["high"], 2.0, amp=0.15) + _tone(TONES["low"], 2.0, amp=0.15)
    multi = Classifier(band_model_multi)
    assert multi.multi_label and read_metadata(band_model_multi).settings["output"] == "sigmoid"
    both = multi.predict(x, sample_rate=SR, hop_seconds=0.5, min_score=0.5)
    found = {d.label for d in both.detections if d.start < 5 and d.end > 3}
    assert found == {"high", "low"}
    assert all(d.start >= 2.0 and d.end <= 6.0 for d in both.detections)
    single = Classifier(band_model).predict(x, sample_rate=SR, hop_seconds=0.5, min_score=0.5)
    inside = [k for k, w in enumerate(both.windows) if w.start >= 3.0 and w.end <= 5.0]
    assert len(inside) == 3
    for k in inside:  # both species in the same window: only the sigmoids say so
        assert (both.windows[k].scores >= 0.5).sum() == 2
        assert (single.windows[k].scores >= 0.5).sum() <= 1
    # no species in silence: every sigmoid stays low
    quiet = multi.predict(x[: 2 * SR], sample_rate=SR, min_score=0.5)
    assert quiet.detections == [] and max(quiet.scores.values()) < 0.5
