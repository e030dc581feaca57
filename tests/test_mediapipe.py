"""MediaPipe Tasks' AudioClassifier runs a real `birdsong export` file unmodified.

Runs in a Python that has ``mediapipe`` (this one, or ``$BIRDSONG_MEDIAPIPE_PYTHON``,
since mediapipe and tensorflow need not share an environment); skipped otherwise.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np

from birdsong.inference import Classifier
from test_metadata import _mediapipe_python

SCRIPT = """
import json, sys
import numpy as np
from mediapipe.tasks.python import audio
from mediapipe.tasks.python.components.containers import audio_data
from mediapipe.tasks.python.core import base_options
path, clip = sys.argv[1], sys.argv[2]
x = np.load(clip)
options = audio.AudioClassifierOptions(
    base_options=base_options.BaseOptions(model_asset_path=path), max_results=-1)
classifier = audio.AudioClassifier.create_from_options(options)
results = classifier.classify(audio_data.AudioData.create_from_array(x, int(sys.argv[3])))
out = [{c.category_name: c.score for c in r.classifications[0].categories} for r in results]
classifier.close()
print(json.dumps(out))
"""


def test_mediapipe_audio_classifier_runs_exported_model(trained_run, tmp_path):
    python = _mediapipe_python()
    clf = Classifier(trained_run.tflite_path)
    n = clf.features.num_samples
    t = np.arange(n) / clf.sample_rate
    x = (0.3 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32)
    np.save(tmp_path / "clip.npy", x)
    out = subprocess.run(
        [
            python,
            "-c",
            SCRIPT,
            str(trained_run.tflite_path),
            str(tmp_path / "clip.npy"),
            str(clf.sample_rate),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(results[0]) == set(clf.labels)
    ours = clf.predict_windows(x[None])[0]
    theirs = np.array([results[0][label] for label in clf.labels])
    np.testing.assert_allclose(theirs, ours, atol=1e-4)


def test_mediapipe_loads_a_multi_label_export(band_model_multi, tmp_path):
    """A multi-label export (one sigmoid per species) runs in MediaPipe unmodified and
    gives the scores birdsong's classifier gives."""
    from conftest import TONES, tone

    python = _mediapipe_python()
    clf = Classifier(band_model_multi)
    x = tone(TONES["high"], clf.clip_seconds, clf.sample_rate) + tone(
        TONES["low"], clf.clip_seconds, clf.sample_rate
    )
    np.save(tmp_path / "clip.npy", x.astype(np.float32) * 0.5)
    out = subprocess.run(
        [
            python,
            "-c",
            SCRIPT,
            str(band_model_multi),
            str(tmp_path / "clip.npy"),
            str(clf.sample_rate),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    ours = clf.predict_windows((x * 0.5)[None].astype(np.float32))[0]
    theirs = np.array([results[0][label] for label in clf.labels])
    np.testing.assert_allclose(theirs, ours, atol=1e-4)
    assert (ours >= 0.5).sum() == 2  # both species at once
