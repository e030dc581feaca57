"""Real (tiny) training runs: phases, run files, resume, bad files, evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from birdsong import workflow  # noqa: E402
from birdsong.model import build_model, load_keras_model  # noqa: E402
from conftest import tiny_config, write_tone_dataset  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def backbone_file(tmp_path):
    """A fixed 'pretrained' backbone so that weight changes can be checked exactly."""
    keras.utils.set_random_seed(123)
    net = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None
    )
    path = tmp_path / "backbone.weights.h5"
    net.save_weights(path)
    return path


def _backbone_weights(model):
    return {
        layer.name: [np.array(w) for w in layer.get_weights()]
        for layer in model.get_layer("backbone").layers
        if layer.get_weights()
    }


def _reference(backbone_file, labels):
    model = build_model(labels, tiny_config(weights=str(backbone_file)))
    return _backbone_weights(model)


def test_phase1_leaves_backbone_unchanged(tmp_path, backbone_file):
    data = write_tone_dataset(tmp_path / "data")
    result = workflow.train(
        data,
        tmp_path / "run",
        config=tiny_config(weights=str(backbone_file), epochs_frozen=2, epochs_finetune=0),
        export=False,
    )
    before = _reference(backbone_file, result.labels)
    after = _backbone_weights(load_keras_model(result.model_path))
    for name, weights in before.items():
        for a, b in zip(weights, after[name]):
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert len(result.history["phase1"]) == 2 and result.history["phase2"] == []


def test_phase2_changes_only_unfrozen_layers_and_skips_bad_files(tmp_path, backbone_file):
    data = write_tone_dataset(tmp_path / "data")
    (data / "low" / "corrupt_ind09_rec01.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    result = workflow.train(
        data,
        tmp_path / "run",
        config=tiny_config(
            weights=str(backbone_file),
            epochs_frozen=1,
            epochs_finetune=1,
            fine_tune_from="block_15_expand",
        ),
        export=False,
    )
    before = _reference(backbone_file, result.labels)
    after = _backbone_weights(load_keras_model(result.model_path))
    names = list(before)
    first = names.index("block_15_expand")
    changed = {
        n for n in names if any(not np.array_equal(a, b) for a, b in zip(before[n], after[n]))
    }
    assert changed, "fine-tuning changed nothing"
    assert all(names.index(n) >= first for n in changed), "a frozen layer moved"
    assert not any("_BN" in n or n.endswith("bn") for n in changed), "BatchNorm moved"
    assert "block_15_expand" in changed and "Conv_1" in changed
    skipped = json.loads((result.run_dir / "skipped.json").read_text())
    assert [s["path"].rsplit("/", 1)[-1] for s in skipped] == ["corrupt_ind09_rec01.wav"]
    assert "cannot decode" in skipped[0]["reason"]
    report = json.loads((result.run_dir / "report" / "report.json").read_text())
    assert report["skipped"][0]["path"].endswith("corrupt_ind09_rec01.wav")


def test_run_directory_holds_everything(trained_run):
    run = trained_run.run_dir
    for name in (
        "model.keras",
        "config.json",
        "labels.txt",
        "history.json",
        "history.csv",
        "learning_curves.png",
        "split.csv",
        "model.tflite",
        "summary.json",
        "report/report.json",
        "report/report.md",
        "report/per_species.csv",
        "report/confusion_matrix_per_recording.png",
        "report/confusion_matrix_per_window.csv",
    ):
        assert (run / name).exists(), name
    assert (run / "labels.txt").read_text().split() == ["high", "low", "mid"]
    history = json.loads((run / "history.json").read_text())
    assert [r["epoch"] for r in history["phase1"]] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history["phase2"][0])
    csv_lines = (run / "history.csv").read_text().splitlines()
    assert csv_lines[0].startswith("phase,epoch") and len(csv_lines) == 5
    report = trained_run.report
    assert (
        report["per_recording"]["n"] > 0
        and report["per_window"]["n"] >= report["per_recording"]["n"]
    )
    # the split never puts one individual on both sides
    rows = [line.split(",") for line in (run / "split.csv").read_text().splitlines()[1:]]
    train_groups = {r[3] for r in rows if r[2] == "train"}
    assert not train_groups & {r[3] for r in rows if r[2] == "validation"}


def test_existing_run_needs_resume(trained_run):
    from birdsong.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="'output_dir'.*resume"):
        workflow.train(
            trained_run.run_dir.parent / "data", trained_run.run_dir, config=tiny_config()
        )


def test_train_leaves_global_state_as_it_was(tmp_path):
    from tensorflow.python.framework import config as tf_config

    np.random.seed(7)
    expected = np.random.get_state()[1].copy()
    data = write_tone_dataset(tmp_path / "data")
    np.random.seed(7)
    workflow.train(
        data, tmp_path / "run", config=tiny_config(epochs_frozen=1, epochs_finetune=0), export=False
    )
    assert not tf_config.is_op_determinism_enabled()
    np.testing.assert_array_equal(np.random.get_state()[1], expected)


def test_failed_start_leaves_no_run_folder(tmp_path):
    from birdsong.errors import BirdsongError

    data = write_tone_dataset(tmp_path / "data")
    with pytest.raises(BirdsongError):
        workflow.train(
            data, tmp_path / "run", config=tiny_config(weights=str(tmp_path / "no-such.weights.h5"))
        )
    assert not (tmp_path / "run").exists()


def test_changed_species_stop_a_resume_before_anything_is_rewritten(trained_run, tmp_path):
    import shutil

    from birdsong.errors import DatasetError

    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run)
    data = tmp_path / "data"
    shutil.copytree(trained_run.run_dir.parent / "data", data)
    shutil.copytree(data / "low", data / "extra")
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    with pytest.raises(DatasetError, match="species have changed.*extra"):
        workflow.train(data, run, resume=True)
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


def test_collapsed_model_is_reported(trained_run):
    """A model whose output ignores its input is called out in the report."""
    from birdsong.dataset import index_dataset
    from birdsong.evaluation import _markdown, evaluate_index
    from birdsong.rundir import RunDir

    config, labels = RunDir(trained_run.run_dir).read()
    model = load_keras_model(trained_run.model_path)
    dense = model.get_layer("species")
    kernel, _ = dense.get_weights()
    dense.set_weights([np.zeros_like(kernel), np.array([0.5, 0.1, -0.2], np.float32)])
    index = index_dataset(trained_run.run_dir.parent / "data")
    report = evaluate_index(
        lambda x: np.asarray(model(x, training=False)),
        index,
        features=config.features,
        rules=config.windows,
        labels=labels,
    )
    assert report["collapsed"] is True
    assert "learnt nothing" in _markdown(report)

    # a scorer whose output follows the sound is not called collapsed
    def pitch(x):  # zero crossings per sample: high for the high tone, low for the low
        zcr = np.mean(np.abs(np.diff(np.sign(np.asarray(x)), axis=1)) > 0, axis=1)[:, None]
        logits = np.concatenate([20 * zcr, -20 * zcr, 0 * zcr], axis=1)
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    report = evaluate_index(
        pitch,
        index,
        features=config.features,
        rules=config.windows,
        labels=labels,
    )
    assert report["collapsed"] is False


def test_evaluate_keras_and_tflite_agree(trained_run):
    from birdsong.evaluation import evaluate

    data = trained_run.run_dir.parent / "data"
    a = evaluate(trained_run.run_dir, data)
    b = evaluate(trained_run.tflite_path, data)
    assert a["per_window"]["n"] == b["per_window"]["n"] > 0
    assert a["per_recording"]["confusion_matrix"] == b["per_recording"]["confusion_matrix"]
    assert abs(a["per_window"]["macro_roc_auc"] - b["per_window"]["macro_roc_auc"]) < 1e-3


def test_mirrored_strategy_trains(tmp_path):
    """`--strategy mirrored` builds and trains under tf.distribute (one CPU replica here;
    every local GPU on a machine that has them)."""
    data = write_tone_dataset(tmp_path / "data")
    result = workflow.train(
        data,
        tmp_path / "run",
        config=tiny_config(epochs_frozen=1, epochs_finetune=1),
        strategy="mirrored",
        export=False,
    )
    assert len(result.history["phase2"]) == 1 and result.model_path.exists()
    with pytest.raises(ValueError, match="'strategy'"):
        workflow.train(data, tmp_path / "run2", config=tiny_config(), strategy="tpu-pod")
    assert not (tmp_path / "run2").exists()


def test_same_seed_same_model(tmp_path):
    data = write_tone_dataset(tmp_path / "data")
    config = tiny_config(epochs_frozen=2, epochs_finetune=1)
    a = workflow.train(data, tmp_path / "a", config=config, export=False)
    b = workflow.train(data, tmp_path / "b", config=config, export=False)
    assert a.history == b.history
    wa = load_keras_model(a.model_path).get_weights()
    wb = load_keras_model(b.model_path).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb))


def test_cosine_fine_tuning_sets_each_epochs_rate(tmp_path):
    """``finetune_schedule="cosine"``: every fine-tuning epoch runs at the rate the
    schedule gives for it (read back from the optimizer through the history); a constant
    schedule keeps the rate."""
    data = write_tone_dataset(tmp_path / "data")
    config = tiny_config(
        epochs_frozen=1, epochs_finetune=3, patience=10, finetune_schedule="cosine"
    )
    run = workflow.train(data, tmp_path / "run", config=config, export=False)
    rates = [row["learning_rate"] for row in run.history["phase2"]]
    assert rates == pytest.approx([config.finetune_rate(e) for e in range(3)], rel=1e-5)
    assert rates[0] > rates[1] > rates[2] > 0
    constant = tiny_config(epochs_finetune=3, patience=10)
    assert {constant.finetune_rate(e) for e in range(3)} == {constant.finetune_learning_rate}


def test_multi_label_training_with_a_background_folder(tmp_path):
    """--multi-label: one sigmoid per species, "no bird" folders are recordings with every
    species absent, thresholds chosen on validation and carried in the export."""
    import soundfile as sf

    from birdsong.inference import Classifier
    from birdsong.metadata import read_metadata

    data = write_tone_dataset(tmp_path / "data")
    (data / "_Background").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        sf.write(
            data / "_Background" / f"noise_ind{i:02d}.wav",
            (0.01 * rng.standard_normal(32000)).astype(np.float32),
            16000,
        )
    result = workflow.train(
        data,
        tmp_path / "run",
        config=tiny_config(multi_label=True, epochs_frozen=3, epochs_finetune=1),
    )
    assert result.labels == ("high", "low", "mid")
    thresholds = json.loads((result.run_dir / "thresholds.json").read_text())
    assert set(thresholds["per_species"]) == {"high", "low", "mid"}
    # a sigmoid threshold under 0.5 would fire where the model judges absence likelier
    assert thresholds["floor"] == 0.5
    assert min(v["threshold"] for v in thresholds["per_species"].values()) >= 0.5
    assert "cmap" in result.report["multi_label_metrics"]
    info = read_metadata(result.tflite_path)
    assert info.settings["output"] == "sigmoid"
    assert info.settings["thresholds"] == pytest.approx(
        {k: v["threshold"] for k, v in thresholds["per_species"].items()}, abs=1e-6
    )
    clf = Classifier(result.tflite_path)
    assert clf.multi_label and clf.thresholds == pytest.approx(info.settings["thresholds"])
    scores = clf.predict_windows(np.zeros((1, clf.features.num_samples), np.float32))
    assert scores.min() >= 0 and scores.max() <= 1


def test_folders_and_annotation_tables_train_one_model(tmp_path):
    """Weak labels (folders) and strong labels (Raven tables, two species at once) in one
    multi-label training set; tables need --multi-label."""
    import soundfile as sf

    from birdsong.annotations import Annotation, write_raven
    from birdsong.errors import InvalidParameterError
    from birdsong.rundir import RunDir

    data = write_tone_dataset(tmp_path / "data")
    scapes = tmp_path / "scapes"
    scapes.mkdir()
    rng = np.random.default_rng(1)
    t = np.arange(16000 * 2) / 16000
    for k in range(5):
        x = 0.01 * rng.standard_normal(16000 * 8)
        x[16000:48000] += 0.3 * np.sin(2 * np.pi * 800 * t)  # low, 1-3 s
        x[32000:64000] += 0.3 * np.sin(2 * np.pi * 5000 * t)  # high, 2-4 s: overlap
        sf.write(scapes / f"scape{k}.wav", x.astype(np.float32), 16000)
        write_raven(
            scapes / f"scape{k}.Table.1.selections.txt",
            [Annotation("", 1.0, 3.0, "low"), Annotation("", 2.0, 4.0, "high")],
            file=f"scape{k}.wav",
        )
    with pytest.raises(InvalidParameterError, match="multi_label"):
        workflow.train(data, tmp_path / "softmax", config=tiny_config(), annotations=scapes)
    assert not (tmp_path / "softmax").exists()
    result = workflow.train(
        data,
        tmp_path / "run",
        annotations=scapes,
        export=False,
        config=tiny_config(multi_label=True, epochs_frozen=2, epochs_finetune=1),
    )
    split = RunDir(result.run_dir).read_split()
    strong = [r for r in split.train + split.validation if not r.label]
    assert len(strong) == 5  # every annotated recording, on one side each
    assert {r.path.name for r in split.train} & {r.path.name for r in split.validation} == set()
    assert result.report["multi_label_metrics"]["n_windows"] > result.report["per_window"]["n"]


def test_weight_averaging_keeps_the_epoch_it_validated(tmp_path):
    """With ``finetune_average_epochs`` the saved model is the moving average that was
    validated: its validation loss is the one the history records for the kept epoch."""
    from birdsong.pipeline import SkipLog, make_dataset
    from birdsong.training import _loss, train_model

    data = write_tone_dataset(tmp_path / "data")
    config = tiny_config(epochs_finetune=3, patience=10, finetune_average_epochs=1.0)
    result = train_model(data, tmp_path / "run", config=config)
    rows = result.history["phase2"]
    assert len(rows) == 3
    kept = min(rows, key=lambda r: r["val_loss"])
    model = load_keras_model(result.run.keras_path)
    model.compile(loss=_loss(config))
    val = make_dataset(result.validation_index, config, training=False, skips=SkipLog())
    assert model.evaluate(val, verbose=0) == pytest.approx(kept["val_loss"], rel=1e-4)
