"""Config dataclasses and the error hierarchy."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from birdsong import errors
from birdsong.config import (
    AugmentConfig,
    FeatureConfig,
    TrainConfig,
    WindowRules,
    from_dict,
    load_config,
    save_config,
    to_dict,
)


def test_error_hierarchy_catches_as_builtins():
    assert issubclass(errors.AudioError, (errors.BirdsongError, ValueError))
    assert issubclass(errors.InvalidParameterError, ValueError)
    assert issubclass(errors.ModelError, RuntimeError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.DatasetError, errors.BirdsongError)


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("fmax", 20000.0, "The 'fmax' parameter of FeatureConfig must be <= sample_rate/2"),
        ("sample_rate", 0, "'sample_rate'"),
        ("n_fft", 1000, "power of two"),
        ("clip_seconds", -1.0, "'clip_seconds'"),
        ("fmin", float("nan"), "'fmin'"),
        ("image_size", 8, "'image_size'"),
    ],
)
def test_feature_config_names_parameter_and_value(field, value, needle):
    with pytest.raises(errors.InvalidParameterError) as err:
        FeatureConfig(**{field: value})
    assert needle in str(err.value)
    assert repr(value) in str(err.value) or str(value) in str(err.value)


def test_configs_are_frozen_and_keyword_only():
    c = FeatureConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.sample_rate = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        FeatureConfig(32000)  # type: ignore[misc]


def test_json_round_trip(tmp_path):
    c = TrainConfig(
        features=FeatureConfig(image_size=96, clip_seconds=2.5),
        augment=AugmentConfig(mixup_alpha=0.2),
        alpha=0.35,
        weights=None,
    )
    path = save_config(c, tmp_path / "config.json")
    assert load_config(TrainConfig, path) == c
    assert json.loads(path.read_text())["features"]["image_size"] == 96


def test_unknown_keys_rejected_by_name():
    data = to_dict(TrainConfig())
    data["epochs_frozn"] = 3
    with pytest.raises(errors.InvalidParameterError, match="epochs_frozn"):
        from_dict(TrainConfig, data)
    data = to_dict(TrainConfig())
    data["features"]["hop"] = 1
    with pytest.raises(errors.InvalidParameterError, match="'hop'"):
        from_dict(TrainConfig, data)


def test_weights_none_string_means_random_init():
    assert TrainConfig(weights="none").weights is None
    with pytest.raises(errors.InvalidParameterError, match="'alpha'"):
        TrainConfig(alpha=0.8)


def test_derived_sizes():
    c = FeatureConfig()
    assert c.num_samples == 96000
    assert c.hop_length == 400
    assert c.num_frames == 1 + (96000 - 1024) // 400


def test_schedule_follows_the_weights_and_the_cli():
    """Pretrained: the head trains on cached features until its validation loss stalls
    for ``frozen_patience`` epochs (at most 100); fine-tuning has its own patience. The
    CLI's ``--frozen-patience`` reaches the config; a value given is never replaced."""
    from birdsong.cli import build_parser
    from birdsong.cli.commands import _train_config

    pre = TrainConfig()
    assert (pre.epochs_frozen, pre.frozen_patience, pre.patience) == (100, 10, 4)
    assert (pre.epochs_finetune, pre.finetune_learning_rate) == (15, 1e-4)
    scratch = TrainConfig(weights=None)
    assert scratch.epochs_frozen == 0 and scratch.epochs_finetune == 60
    assert TrainConfig(frozen_patience=4).frozen_patience == 4
    with pytest.raises(errors.InvalidParameterError, match="'frozen_patience'"):
        TrainConfig(frozen_patience=-1)
    args = build_parser().parse_args(["train", "data", "-o", "run", "--frozen-patience", "7"])
    cfg = _train_config(args)
    assert (cfg.frozen_patience, cfg.patience) == (7, 4)
    args = build_parser().parse_args(["train", "data", "-o", "run", "--weights", "none"])
    assert _train_config(args).frozen_patience == 10


def test_validation_min_groups_is_checked_and_reaches_the_config():
    from birdsong.cli import build_parser
    from birdsong.cli.commands import _train_config

    assert TrainConfig().validation_min_groups == 4
    for bad in (1, 2.5, True):
        with pytest.raises(errors.InvalidParameterError, match="'validation_min_groups'"):
            TrainConfig(validation_min_groups=bad)
    args = build_parser().parse_args(["train", "data", "-o", "run", "--validation-min-groups", "2"])
    assert _train_config(args).validation_min_groups == 2


def test_fine_tuning_keeps_lower_blocks_frozen_for_a_single_recording_species():
    """``fine_tune_from="auto"`` fine-tunes the whole pretrained backbone, except when a
    species has one training recording (then from ``block_13_expand``); from scratch,
    and for a layer the user names, the setting is passed through."""
    from pathlib import Path

    from birdsong.dataset import DatasetIndex, Recording
    from birdsong.training import _fine_tune_start

    def index(per_species):
        recs = [
            Recording(Path(f"{label}/{i}.wav"), label, f"{label}/{i}")
            for label, n in per_species.items()
            for i in range(n)
        ]
        return DatasetIndex(Path("."), tuple(per_species), recs)

    pre = TrainConfig()
    assert _fine_tune_start(pre, index({"a": 2, "b": 5})) == "auto"
    assert _fine_tune_start(pre, index({"a": 1, "b": 5})) == "block_13_expand"
    assert _fine_tune_start(TrainConfig(weights=None), index({"a": 1, "b": 5})) == "auto"
    named = TrainConfig(fine_tune_from="block_8_expand")
    assert _fine_tune_start(named, index({"a": 1, "b": 5})) == "block_8_expand"


def test_summary_names_only_species_left_unvalidated_for_too_few_birds():
    """The training summary counts species that train on all their birds because they
    have fewer than ``validation_min_groups``; a species with enough birds that merely
    has no recordings in a separate validation folder is not counted."""
    from pathlib import Path

    from birdsong.dataset import DatasetIndex, Recording
    from birdsong.training import _summary_lines

    def recs(label, birds):
        return [Recording(Path(f"{label}/{b}.wav"), label, f"{label}/{b}") for b in range(birds)]

    labels = ("few", "many", "validated")
    train = DatasetIndex(Path("."), labels, recs("few", 3) + recs("many", 6) + recs("validated", 5))
    val = DatasetIndex(Path("."), labels, recs("validated", 1))
    lines = _summary_lines(train, train, val, TrainConfig())
    assert "  1 species with fewer than 4 birds (groups) train on all of them" in lines[-1]
    lines = _summary_lines(train, train, val, TrainConfig(validation_min_groups=2))
    assert not any("fewer than" in line for line in lines)


def test_weight_averaging_validates_and_keeps_the_average_then_trains_on():
    """``finetune_average_epochs``: checked, reaches the config from the CLI, sets the
    moving average's horizon in epochs of the training windows; during ``fit`` every
    epoch's validation and the callbacks after it see the average, the backup for a
    resume holds the trained weights, and the next epoch trains on from them."""
    keras = pytest.importorskip("keras")
    from birdsong.cli import build_parser
    from birdsong.cli.commands import _train_config
    from birdsong.training import _averaged_weights_callback, _finetune_optimizer

    assert TrainConfig().finetune_average_epochs == 1.0  # pretrained: the schedule's
    assert TrainConfig(weights=None).finetune_average_epochs == 0.0
    with pytest.raises(errors.InvalidParameterError, match="'finetune_average_epochs'"):
        TrainConfig(finetune_average_epochs=-1)
    args = build_parser().parse_args(
        ["train", "data", "-o", "run", "--finetune-average-epochs", "1.5"]
    )
    assert _train_config(args).finetune_average_epochs == 1.5
    assert not _finetune_optimizer(TrainConfig(weights=None), 320).use_ema
    opt = _finetune_optimizer(TrainConfig(batch_size=32, finetune_average_epochs=2), 320)
    assert opt.use_ema and opt.ema_momentum == pytest.approx(1 - 1 / 20)

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)), rng.normal(size=(64, 2))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(
        optimizer=_finetune_optimizer(TrainConfig(batch_size=16, finetune_average_epochs=1), 64),
        loss="mse",
    )
    seen: dict[str, list] = {
        k: [] for k in ("batch_end", "epoch_begin", "test", "epoch_end", "backup")
    }
    averaging = _averaged_weights_callback()

    def weights():
        return [np.array(v) for v in model.trainable_variables]

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen["batch_end"].append(weights())

        def on_epoch_begin(self, epoch, logs=None):
            seen["epoch_begin"].append(weights())

        def on_test_begin(self, logs=None):
            seen["test"].append(weights())

        def on_epoch_end(self, epoch, logs=None):
            average = [np.array(v) for v in model.optimizer._model_variables_moving_average]
            with averaging.trained_weights():  # what the epoch's backup holds
                seen["backup"].append(weights())
            seen["epoch_end"].append((weights(), average))

    model.fit(
        x,
        y,
        batch_size=16,
        epochs=3,
        validation_data=(x[:16], y[:16]),
        verbose=0,
        callbacks=[averaging, Record()],
    )
    for epoch in range(3):
        now, average = seen["epoch_end"][epoch]
        trained = seen["batch_end"][4 * epoch + 3]  # the epoch's last step
        for w, a, t, v, b in zip(now, average, trained, seen["test"][epoch], seen["backup"][epoch]):
            np.testing.assert_array_equal(w, a)  # what is kept as the best: the average
            np.testing.assert_array_equal(b, t)  # what is backed up: the trained weights
            np.testing.assert_array_equal(v, a)  # what is validated: the average
            assert not np.allclose(a, t)  # which differs from the trained weights
        if epoch < 2:  # the next epoch starts from the trained weights
            for b, t in zip(seen["epoch_begin"][epoch + 1], trained):
                np.testing.assert_array_equal(b, t)


def test_min_epoch_windows_follows_the_weights_and_old_runs_keep_one_pass(tmp_path):
    """``min_epoch_windows``: 512 with a pretrained backbone, 0 from scratch, checked,
    set by ``--min-epoch-windows``; a run saved before it existed resumes with one pass
    per epoch, as it trained."""
    from birdsong.cli import build_parser
    from birdsong.cli.commands import _train_config
    from birdsong.config import to_dict
    from birdsong.rundir import RunDir

    assert TrainConfig().min_epoch_windows == 512
    assert TrainConfig(weights=None).min_epoch_windows == 0
    for bad in (-1, 2.5):
        with pytest.raises(errors.InvalidParameterError, match="'min_epoch_windows'"):
            TrainConfig(min_epoch_windows=bad)
    args = build_parser().parse_args(["train", "d", "-o", "r", "--min-epoch-windows", "100"])
    assert _train_config(args).min_epoch_windows == 100
    args = build_parser().parse_args(["train", "d", "-o", "r", "--weights", "none"])
    assert _train_config(args).min_epoch_windows == 0
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_labels(["a", "b"])
    old = to_dict(TrainConfig())
    del old["min_epoch_windows"]
    run.config_path.write_text(json.dumps(old))
    assert run.read_config().min_epoch_windows == 0


def test_overlays_follow_multi_label_and_old_runs_keep_them_off(tmp_path):
    """``augment.overlay_probability``: 0.5 for a multi-label model, 0 for softmax, an
    explicit value kept; ``--multi-label`` and ``--overlay`` on the command line; a run
    saved before the default existed resumes without overlays, as it trained."""
    from birdsong.cli import build_parser
    from birdsong.cli.commands import _train_config
    from birdsong.config import AugmentConfig, load_config, save_config, to_dict
    from birdsong.rundir import RunDir

    assert TrainConfig().augment.overlay_probability == 0.0
    assert TrainConfig(multi_label=True).augment.overlay_probability == 0.5
    off = AugmentConfig(overlay_probability=0.0)
    assert TrainConfig(multi_label=True, augment=off).augment.overlay_probability == 0.0
    assert AugmentConfig().overlay_probability is None  # TrainConfig decides
    with pytest.raises(errors.InvalidParameterError, match="overlay_probability"):
        AugmentConfig(overlay_probability=1.5)

    def parsed(*extra):
        return _train_config(build_parser().parse_args(["train", "d", "-o", "r", *extra]))

    assert parsed("--multi-label").augment.overlay_probability == 0.5
    assert parsed().augment.overlay_probability == 0.0
    assert parsed("--multi-label", "--overlay", "0").augment.overlay_probability == 0.0
    assert parsed("--overlay", "0.3").augment.overlay_probability == 0.3
    assert parsed("--multi-label", "--no-augment").augment.overlay_probability == 0.0
    # a config file keeps what it says, also with --multi-label
    saved = save_config(TrainConfig(), tmp_path / "softmax.json")
    assert parsed("--config", str(saved), "--multi-label").augment.overlay_probability == 0.0
    assert load_config(TrainConfig, saved).augment.overlay_probability == 0.0
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_labels(["a", "b"])
    old = to_dict(TrainConfig(multi_label=True))
    del old["augment"]["overlay_probability"]
    run.config_path.write_text(json.dumps(old))
    assert run.read_config().augment.overlay_probability == 0.0


def test_a_run_saved_before_weight_averaging_reads_back_without_it(tmp_path):
    """Runs save every setting; one written before ``finetune_average_epochs`` existed
    resumes without averaging (what it did), not with today's default of 1 epoch. A
    config.json that is not JSON is an error naming the file."""
    from birdsong.config import to_dict
    from birdsong.rundir import RunDir

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_labels(["a", "b"])
    run.write_config(TrainConfig())
    assert run.read_config() == TrainConfig() and run.read_config().finetune_average_epochs == 1
    old = to_dict(TrainConfig())
    del old["finetune_average_epochs"]
    run.config_path.write_text(json.dumps(old))
    assert run.read_config().finetune_average_epochs == 0.0
    run.config_path.write_text("{not json")
    with pytest.raises(errors.ModelError, match="config.json"):
        run.read_config()


def test_training_cuts_windows_at_its_own_hop_and_scoring_at_the_rules(tmp_path):
    """Training learns from windows every ``train_hop_seconds`` (half a window); the
    saved rules score a recording every ``windows.hop_seconds`` (a quarter window).
    Both are checked, both reach the config from the CLI, and a run saved before the
    training hop existed trains at its rules' hop, as it did."""
    import soundfile as sf

    from birdsong.cli.commands import _train_config
    from birdsong.cli.main import build_parser
    from birdsong.config import to_dict
    from birdsong.pipeline import recording_windows
    from birdsong.rundir import RunDir

    c = TrainConfig()
    assert (c.windows.hop_seconds, c.train_hop_seconds) == (0.75, 1.5)
    assert c.training_windows == dataclasses.replace(c.windows, hop_seconds=1.5)
    short = TrainConfig(features=FeatureConfig(clip_seconds=2.0))
    assert (short.windows.hop_seconds, short.train_hop_seconds) == (0.5, 1.0)
    with pytest.raises(errors.InvalidParameterError, match="'train_hop_seconds'.*Got 5"):
        TrainConfig(train_hop_seconds=5)

    # 12 s of noise: windows start every 1.5 s for training (0, 1.5, ..., 9 s)
    path = tmp_path / "a.wav"
    rng = np.random.default_rng(0)
    sf.write(path, 0.1 * rng.standard_normal(12 * 32000).astype(np.float32), 32000)
    wide = TrainConfig(windows=WindowRules(max_windows=100, min_activity=0.0))
    assert len(recording_windows(path, wide)) == 7
    dense = dataclasses.replace(wide, train_hop_seconds=0.75)
    assert len(recording_windows(path, dense)) == 13

    args = build_parser().parse_args(
        ["train", "d", "-o", "r", "--hop-seconds", "1", "--train-hop-seconds", "2"]
    )
    got = _train_config(args)
    assert (got.windows.hop_seconds, got.train_hop_seconds) == (1.0, 2.0)
    args = build_parser().parse_args(["train", "d", "-o", "r", "--clip-seconds", "2"])
    got = _train_config(args)
    assert (got.windows.hop_seconds, got.train_hop_seconds) == (0.5, 1.0)

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_labels(["a", "b"])
    old = to_dict(TrainConfig(windows=WindowRules(hop_seconds=1.0)))
    del old["train_hop_seconds"]
    run.config_path.write_text(json.dumps(old))
    assert run.read_config().train_hop_seconds == 1.0


def test_a_0_1_model_is_scored_at_the_hop_it_was_trained_at():
    """A model from birdsong 0.1 carries no window rules, only its training settings; it
    is scored at the hop it trained at: the one it names (0.1 kept it at the top level),
    else 0.1's default of half a window, not today's quarter-window scoring hop."""
    from birdsong.inference import _rules

    f = FeatureConfig()
    assert _rules({"train": {"min_activity": 0.0}}, f).hop_seconds == 1.5
    assert _rules({"train": {"window_hop_seconds": 1.0}}, f).hop_seconds == 1.0
    assert _rules({"train": {"windows": {"hop_seconds": 2.0}}}, f).hop_seconds == 2.0
    assert _rules({}, f).hop_seconds == 0.75  # a model that says nothing: the defaults
