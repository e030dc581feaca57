"""Train a classifier: phase 1 on cached backbone features, phase 2 fine-tuning.

Phase 1 freezes the MobileNetV2 backbone, runs every training window through the
frontend and backbone once, and trains the head (dropout + dense) on the cached pooled
features: an epoch costs a matrix multiply, not a network pass. Phase 2 unfreezes the
backbone from ``fine_tune_from`` upward (for a pretrained backbone BatchNorm stays
frozen and in inference mode), recompiles with the fine-tuning rate and trains end to
end on augmented windows; with ``finetune_average_epochs`` (the pretrained default) it
validates and keeps a moving average of its weights. Both phases stop early on
validation loss and keep the best epoch's weights.

This module only trains: it reads and writes the run through
:class:`~birdsong.rundir.RunDir`; evaluation, export and remembering the model are
composed in :mod:`birdsong.workflow`.

Interruptions: after every epoch the weights *and the optimizer's state* are saved
(``.backup/``), then ``best.weights.h5`` when the epoch is the best, then ``state.json``,
which names them: written last and atomically, it is the one commit point, so a process
killed at any instant resumes from a consistent epoch. (Keras's ``BackupAndRestore``
writes its weights file in place and its epoch record separately from the
early-stopping record, and ``EarlyStopping`` keeps its best weights in memory only: a
SIGKILL between or during those writes left a truncated file or two records that
disagree. This callback does what both do, in that order.) ``resume=True`` continues
with Keras's own ``initial_epoch``; a run killed after training (while saving,
evaluating or exporting) is finished from its best weights, so it produces the same
artifacts as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_path
from .annotation_index import annotated_recordings
from .config import TrainConfig
from .dataset import DatasetIndex, Skipped, index_dataset, model_labels, split_recordings
from .errors import DatasetError, InvalidParameterError, parameter_error, require
from .pipeline import SkipLog, make_dataset
from .rundir import RunDir

__all__ = ["STRATEGIES", "TrainedModel", "train_model"]

log = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored")
PHASE_NAMES = {1: "phase 1/2 (frozen backbone, cached features)", 2: "phase 2/2 (fine-tuning)"}


@dataclass
class TrainedModel:
    """What training produced. ``model`` holds the best epoch's weights and is saved as
    ``run.keras_path``."""

    model: Any
    run: RunDir
    config: TrainConfig
    labels: tuple[str, ...]
    train_index: DatasetIndex
    validation_index: DatasetIndex
    history: dict[str, list[dict[str, float]]]
    skipped: list[Skipped] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class _Say:
    """Progress for people (stderr) when asked for, the log otherwise."""

    def __init__(self, progress: bool) -> None:
        self.progress = progress

    def __call__(self, message: str) -> None:
        if self.progress:
            print(message, file=sys.stderr, flush=True)
        else:
            log.info("%s", message)


def _check_strategy(name: str) -> str:
    if name not in STRATEGIES:
        raise parameter_error("strategy", f"one of {', '.join(STRATEGIES)}", name)
    return name


def _strategy(name: str):
    tf = require("tensorflow")
    return tf.distribute.MirroredStrategy() if name == "mirrored" else tf.distribute.get_strategy()


@contextlib.contextmanager
def seeded(seed: int, *, deterministic: bool = True) -> Iterator[None]:
    """Seed Python, NumPy and TensorFlow, and (``deterministic``) switch on TensorFlow's
    op determinism for the block: same seed, same data, same machine, same model.
    Python's and NumPy's global random states and the determinism switch are put back
    afterwards, so the caller's process is left as it was."""
    keras = require("keras")
    from tensorflow.python.framework import config as tf_config

    py_state, np_state = random.getstate(), np.random.get_state()
    was_deterministic = tf_config.is_op_determinism_enabled()
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf_config.enable_op_determinism()
    try:
        yield
    finally:
        if deterministic and not was_deterministic:
            tf_config.disable_op_determinism()
        random.setstate(py_state)
        np.random.set_state(np_state)


# ----------------------------------------------------------------------- callbacks
def _checkpoint(
    run: RunDir,
    fitted,
    model,
    state: dict[str, Any],
    phase: int,
    monitor: str,
    patience: int,
    say: _Say,
    averaged=None,
):
    """Per-epoch backup (weights and optimizer of the model being fitted), best weights
    (of the whole model), early stopping, and ``state.json`` last as the commit point.
    ``averaged``: the weight-averaging callback, whose trained weights the backup holds."""
    keras = require("keras")
    key = f"phase{phase}"

    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            rows = [r for r in state["history"][key] if r["epoch"] <= epoch]
            state["history"][key] = [*rows, {"epoch": epoch + 1, **logs}]
            backup = run.backup_dir / f"{key}-epoch{epoch + 1}.weights.h5"
            run.backup_dir.mkdir(exist_ok=True)
            trained = averaged.trained_weights() if averaged else contextlib.nullcontext()
            with trained, atomic_path(backup, suffix=".weights.h5") as tmp:
                fitted.save_weights(tmp)  # with the optimizer's variables
            value = logs.get(monitor, logs.get("loss", float("inf")))
            if state["best"] is None or value < state["best"]:
                state.update(best=value, best_epoch=epoch + 1, wait=0)
                with atomic_path(run.best_weights_path, suffix=".weights.h5") as tmp:
                    model.save_weights(tmp)
            else:
                state["wait"] += 1
            previous = state.get("backup")
            state.update(epoch=epoch + 1, backup=backup.name)
            run.write_state(state)  # the commit point
            if previous and previous != backup.name:
                (run.backup_dir / previous).unlink(missing_ok=True)
            if state["wait"] >= max(patience, 1):
                say(
                    f"  stopping early after epoch {epoch + 1}: {monitor} has not improved "
                    f"for {state['wait']} epoch(s)"
                )
                self.model.stop_training = True

    return Checkpoint()


def _restore_backup(
    run: RunDir, fitted, state: dict[str, Any], *, epochs: int, patience: int
) -> int:
    """Load the last committed epoch's weights and optimizer state into the compiled
    model about to be fitted; return the epoch to continue from (0 to start; ``epochs``
    when the phase had already stopped early)."""
    if state.get("epoch") and state.get("wait", 0) >= max(patience, 1):
        return epochs  # early stopping had ended this phase: nothing left to run
    name = state.get("backup")
    if not name or not state.get("epoch") or not (run.backup_dir / name).is_file():
        return 0
    fitted.optimizer.build(fitted.trainable_variables)  # so its state can be loaded
    fitted.load_weights(run.backup_dir / name)
    return int(state["epoch"])


def _finetune_optimizer(config: TrainConfig, n_windows: int):
    """Adam at the fine-tuning rate; with ``finetune_average_epochs`` it also keeps an
    exponential moving average of the weights whose horizon (1 / (1 - momentum) steps)
    is that many epochs of ``n_windows`` training windows."""
    keras = require("keras")
    if config.finetune_average_epochs <= 0:
        return keras.optimizers.Adam(config.finetune_learning_rate)
    steps = max(config.finetune_average_epochs * -(-n_windows // config.batch_size), 1.0)
    return keras.optimizers.Adam(
        config.finetune_learning_rate, use_ema=True, ema_momentum=1.0 - 1.0 / steps
    )


def _averaged_weights_callback():
    """Swap the optimizer's moving average of the weights into the model for each
    epoch's validation and checkpoint, and the trained weights back for the next epoch.

    Keras keeps the average (``use_ema``) but validates the last step's weights and only
    writes the average into the model when ``fit`` ends; early stopping should judge,
    and keep, what would be saved. The average goes in when validation begins (or at the
    end of the epoch when there is none). The epoch's backup holds the trained weights,
    so a run resumed from it continues from its trained weights and its average (in
    the optimizer's state) as they were. Does nothing without ``use_ema``."""
    keras = require("keras")

    class WeightAverage(keras.callbacks.Callback):
        trained: list | None = None

        def _average_in(self) -> None:
            optimizer = self.model.optimizer
            if self.trained is None and getattr(optimizer, "use_ema", False):
                variables = self.model.trainable_variables
                self.trained = [v.numpy() for v in variables]
                optimizer.finalize_variable_values(variables)

        def on_test_begin(self, logs=None):
            self._average_in()

        def on_epoch_end(self, epoch, logs=None):
            self._average_in()

        def on_epoch_begin(self, epoch, logs=None):
            if self.trained is not None:
                self._assign(self.trained)
                self.trained = None

        def _assign(self, values) -> None:
            for variable, value in zip(self.model.trainable_variables, values):
                variable.assign(value)

        @contextlib.contextmanager
        def trained_weights(self) -> Iterator[None]:
            """The trained weights in the model for the block (the epoch's backup, so
            that a resumed run trains on from them), the average again afterwards."""
            if self.trained is None:
                yield
                return
            average = [v.numpy() for v in self.model.trainable_variables]
            self._assign(self.trained)
            try:
                yield
            finally:
                self._assign(average)

    return WeightAverage()


def _progress_bar(phase: int, epochs: int, enabled: bool):
    """One progress bar per epoch on stderr, then a line of metrics."""
    keras = require("keras")
    from tqdm.auto import tqdm

    class EpochProgress(keras.callbacks.Callback):
        bar = None

        def on_epoch_begin(self, epoch, logs=None):
            if enabled:
                self.bar = tqdm(
                    total=self.params.get("steps"),
                    unit="batch",
                    leave=False,
                    file=sys.stderr,
                    desc=f"  epoch {epoch + 1}/{epochs}",
                )

        def on_train_batch_end(self, batch, logs=None):
            if self.bar is not None:
                self.bar.update(1)

        def on_epoch_end(self, epoch, logs=None):
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            if enabled:
                text = "  ".join(f"{k} {float(v):.4f}" for k, v in (logs or {}).items())
                print(f"  epoch {epoch + 1}/{epochs}: {text}", file=sys.stderr, flush=True)

    return EpochProgress()


def _extract(extractor, ds, *, progress: bool, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """Run every window through frontend + frozen backbone once (phase 1's cache)."""
    from tqdm.auto import tqdm

    xs, ys = [], []
    with tqdm(desc=desc, unit="window", disable=not progress, leave=False, file=sys.stderr) as bar:
        for x, y, _ in ds:
            xs.append(np.asarray(extractor(x, training=False)))
            ys.append(np.asarray(y))
            bar.update(len(ys[-1]))
    if not xs:
        return np.zeros((0, extractor.output.shape[-1]), np.float32), np.zeros((0, 0))
    return np.concatenate(xs), np.concatenate(ys)


def _class_weights(targets: np.ndarray, n_classes: int) -> list[float]:
    """Inverse-frequency weights of the species, over windows where one is present."""
    present_rows = targets.max(axis=1) > 0 if len(targets) else np.zeros(0, bool)
    counts = np.bincount(targets[present_rows].argmax(1), minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights.tolist()


def _loss(config: TrainConfig):
    keras = require("keras")
    if config.multi_label:
        return keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing)
    return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)


def _metrics(config: TrainConfig) -> list:
    """Accuracy for a softmax model; for a multi-label one the area under the ROC curve
    (accuracy over mostly-absent species says little)."""
    keras = require("keras")
    if config.multi_label:
        return [keras.metrics.AUC(multi_label=True, name="auc")]
    return ["accuracy"]


def _weights_for(config: TrainConfig, targets: np.ndarray, n_classes: int) -> list[float]:
    if config.class_weighting and not config.multi_label:
        return _class_weights(targets, n_classes)
    return [1.0] * n_classes


# ------------------------------------------------------------------------ the data
def _with_annotations(
    index: DatasetIndex, annotations, config: TrainConfig
) -> tuple[DatasetIndex, list, list]:
    """Add the species of annotated recordings to the index; return them split."""
    if not config.multi_label:
        raise parameter_error(
            "multi_label",
            "True (--multi-label) to learn from annotation "
            "tables, where several species sing at once",
            False,
            owner="TrainConfig",
        )
    train, val, skipped, found = annotated_recordings(
        annotations, validation_fraction=config.validation_fraction, seed=config.seed
    )
    if not train and not val:
        raise DatasetError(f"{annotations}: no recording with a usable annotation table")
    index.labels = tuple(sorted(set(index.labels) | set(found)))
    index.skipped += skipped
    return index, train, val


def _prepare(
    data_dir,
    run: RunDir,
    config: TrainConfig | None,
    *,
    resume: bool,
    validation_dir,
    annotations=None,
) -> tuple[TrainConfig, DatasetIndex, DatasetIndex, DatasetIndex]:
    """Settings and split, checked before anything is written."""
    if resume:
        if not run.is_run():
            raise DatasetError(
                f"{run.path}: nothing to resume (no config.json); start a new run without resume"
            )
        saved = run.read_config()
        if config is not None and config != saved:
            log.warning(
                "resume: using the settings saved in %s, not the ones given", run.config_path
            )
        config = saved
    else:
        config = config or TrainConfig()
        if run.has_started() or run.is_run():
            raise parameter_error(
                "output_dir",
                "a new or empty run directory (or resume an interrupted run)",
                str(run.path),
            )
    index = index_dataset(data_dir, group_pattern=config.group_pattern)
    strong_train, strong_val = [], []
    if annotations is not None:
        index, strong_train, strong_val = _with_annotations(index, annotations, config)
    if index.kind == "images":
        raise DatasetError(
            f"{data_dir}: holds spectrogram PNGs (the original notebook's format). birdsong "
            "trains from the recordings themselves, so that the exported model takes raw "
            "audio and computes the same spectrogram inside; point train at the folder of "
            "recordings those images were made from."
        )
    labels = model_labels(index.labels, multi_label=config.multi_label)
    if resume:
        before = run.read_labels()
        if list(labels) != before:
            added = sorted(set(labels) - set(before))
            gone = sorted(set(before) - set(labels))
            raise DatasetError(
                f"{data_dir}: the species have changed since {run.path} started (new: "
                f"{', '.join(added) or 'none'}; missing: {', '.join(gone) or 'none'}); a "
                "model cannot change its species mid-run. Start a new run in another folder."
            )
        split = run.read_split()
        strong = {r.path.resolve(): r for r in strong_train + strong_val}

        def attach(recs):  # annotated recordings get their tables back
            return [strong.get(r.path.resolve(), r) if not r.label else r for r in recs]

        return (
            config,
            index,
            DatasetIndex(index.root, index.labels, attach(split.train)),
            DatasetIndex(index.root, index.labels, attach(split.validation)),
        )
    if validation_dir is not None:
        val = index_dataset(
            validation_dir, group_pattern=config.group_pattern, labels=index.labels, min_species=1
        )
        index.skipped += val.skipped
        return (
            config,
            index,
            index.subset(index.recordings + strong_train),
            DatasetIndex(val.root, index.labels, val.recordings + strong_val),
        )
    train_idx, val_idx = split_recordings(
        index,
        validation_fraction=config.validation_fraction,
        seed=config.seed,
        min_groups=config.validation_min_groups,
    )
    train_idx.recordings += strong_train
    val_idx.recordings += strong_val
    return config, index, train_idx, val_idx


#: Where fine-tuning starts when a species has a single training recording (see
#: :func:`_fine_tune_start`).
SINGLE_RECORDING_FINE_TUNE_FROM = "block_13_expand"


def _fine_tune_start(config: TrainConfig, train: DatasetIndex) -> str:
    """``config.fine_tune_from``, except that ``"auto"`` on a pretrained backbone keeps
    the blocks under ``block_13_expand`` frozen when a species has a single training
    recording. Fine-tuning the whole backbone won on the field benchmark from 3 recordings
    per species up, and with 1 (0.42 vs 0.36), but on the real finch set, whose
    Bengalese finch is one recording, it scored 5/8 against 8/8 with the top blocks,
    calling both test recordings of a seed one species: one recording is too little to
    move the lower layers safely."""
    if config.fine_tune_from != "auto" or not config.pretrained:
        return config.fine_tune_from
    counts = [n for n in train.counts().values() if n]
    return SINGLE_RECORDING_FINE_TUNE_FROM if counts and min(counts) < 2 else "auto"


def _summary_lines(
    index: DatasetIndex, train: DatasetIndex, val: DatasetIndex, config: TrainConfig
) -> list[str]:
    counts_t, counts_v = train.counts(), val.counts()
    lines = [
        f"data: {len(index.labels)} species, {len(train.recordings)} training and "
        f"{len(val.recordings)} validation recordings (split by recording and by "
        f"group), {len(index.skipped)} file(s) skipped"
    ]
    strong = sum(r.strong for r in train.recordings + val.recordings)
    if strong:
        lines.append(f"  ({strong} of them annotated by tables: species per time span)")
    for label in index.labels:
        lines.append(
            f"  {label:30s} {counts_t.get(label, 0):4d} train  "
            f"{counts_v.get(label, 0):4d} validation"
        )
    groups = {
        label: {r.group for r in train.recordings if r.label == label} for label in index.labels
    }
    unvalidated = [
        label
        for label in index.labels
        if 0 < len(groups[label]) < config.validation_min_groups and not counts_v.get(label)
    ]
    if unvalidated and config.validation_fraction > 0:
        lines.append(
            f"  {len(unvalidated)} species with fewer than {config.validation_min_groups} "
            "birds (groups) train on all of them and are not validated "
            "(--validation-min-groups)"
        )
    return lines


# ------------------------------------------------------------------------ training
def train_model(
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    config: TrainConfig | None = None,
    resume: bool = False,
    strategy: str = "default",
    validation_dir: str | os.PathLike | None = None,
    annotations: str | os.PathLike | None = None,
    progress: bool = False,
    deterministic: bool = True,
) -> TrainedModel:
    """Train a species classifier and save it as ``output_dir/model.keras``.

    Parameters
    ----------
    data_dir : path
        ``DATA_DIR/<species>/<recordings>``.
    output_dir : path
        The run directory (see :class:`~birdsong.rundir.RunDir`); created when training
        starts, removed again if the start fails before an epoch has finished.
    config : TrainConfig
        All settings; saved as ``config.json``. Ignored with ``resume``.
    resume : bool
        Continue an interrupted run in ``output_dir`` with its saved settings.
    strategy : {"default", "mirrored"}
        ``tf.distribute`` strategy (``mirrored``: all local GPUs).
    validation_dir : path, optional
        A separate folder-per-species tree for validation instead of a split.
    annotations : path, optional
        A folder of recordings with annotation tables (Raven, Audacity, CSV; strong
        labels, several species at once) learnt from alongside ``data_dir``'s folders;
        split by recording. Needs ``config.multi_label``.
    progress : bool
        Print a dataset summary, phase names, progress bars and what early stopping
        kept to stderr (the CLI does); otherwise the library stays silent.
    deterministic : bool
        Switch TensorFlow's op determinism on while training (restored afterwards).
    """
    started = time.perf_counter()
    _check_strategy(strategy)
    if not isinstance(resume, bool):
        raise parameter_error("resume", "True or False", resume)
    say = _Say(progress)
    run = RunDir(output_dir)
    config, index, train_idx, val_idx = _prepare(
        data_dir, run, config, resume=resume, validation_dir=validation_dir, annotations=annotations
    )
    for line in _summary_lines(index, train_idx, val_idx, config):
        say(line)
    if not train_idx.recordings:
        raise DatasetError(f"{data_dir}: no training recordings")
    require("keras", purpose="train a model")
    created = not run.path.exists()
    run.path.mkdir(parents=True, exist_ok=True)
    if not resume:
        run.write_config(config)
        run.write_labels(model_labels(index.labels, multi_label=config.multi_label))
        run.write_split(train_idx, val_idx)
    try:
        with seeded(config.seed, deterministic=deterministic):
            trained = _train(
                run,
                config,
                index,
                train_idx,
                val_idx,
                strategy=strategy,
                say=say,
                data_dir=data_dir,
            )
    except BaseException:
        if (
            created
            and not run.read_state().get("history", {}).get("phase1")
            and not run.read_state().get("history", {}).get("phase2")
        ):
            shutil.rmtree(run.path, ignore_errors=True)  # nothing worth keeping
        raise
    trained.seconds["total"] = time.perf_counter() - started
    return trained


def _train(
    run: RunDir,
    config: TrainConfig,
    index: DatasetIndex,
    train_idx: DatasetIndex,
    val_idx: DatasetIndex,
    *,
    strategy: str,
    say: _Say,
    data_dir,
) -> TrainedModel:
    keras = require("keras")
    tf = require("tensorflow")
    from .model import build_model, feature_extractor, head_model, set_fine_tuning
    from .plots import plot_learning_curves

    labels = model_labels(index.labels, multi_label=config.multi_label)
    state: dict[str, Any] = {
        "phase": 1,
        "epoch": 0,
        "best": None,
        "best_epoch": 0,
        "wait": 0,
        "history": {"phase1": [], "phase2": []},
    }
    state.update(run.read_state())
    if state["phase"] == 1 and config.epochs_frozen == 0:
        state["phase"] = 2
    skips = SkipLog()
    has_val = bool(val_idx.recordings)
    monitor = "val_loss" if has_val else "loss"
    seconds: dict[str, float] = {}

    with _strategy(strategy).scope():
        restarting = run.best_weights_path.exists()
        model = build_model(labels, config, load_weights=not restarting)
        if restarting:
            model.load_weights(run.best_weights_path)
            say(
                f"resuming {run.path} in phase {state['phase']} after epoch {state['epoch']}"
                if state["phase"] != "done"
                else f"resuming {run.path}: training had finished; saving its best epoch"
            )

        train_plain = make_dataset(train_idx, config, training=False, skips=skips, with_ids=True)
        val_plain = (
            make_dataset(val_idx, config, training=False, skips=skips, with_ids=True)
            if has_val
            else None
        )

        if state["phase"] == 1:
            t0 = time.perf_counter()
            say(f"{PHASE_NAMES[1]}: decoding recordings and caching backbone features")
            extractor = feature_extractor(model)
            xtr, ytr = _extract(
                extractor, train_plain, progress=say.progress, desc="  training windows"
            )
            if len(ytr) == 0:
                raise DatasetError(f"{data_dir}: no training window could be decoded")
            xva, yva = (
                _extract(extractor, val_plain, progress=say.progress, desc="  validation windows")
                if has_val
                else (None, None)
            )
            weights = _weights_for(config, ytr, len(labels))
            head = head_model(model)
            head.compile(
                optimizer=keras.optimizers.Adam(config.learning_rate),
                loss=_loss(config),
                metrics=_metrics(config),
            )
            sw = np.where(
                ytr.max(1) > 0, np.asarray(weights, np.float32)[ytr.argmax(1)], 1.0
            ).astype(np.float32)
            ds = (
                tf.data.Dataset.from_tensor_slices((xtr, ytr, sw))
                .shuffle(len(xtr), seed=config.seed)
                .batch(config.batch_size)
            )
            say(
                f"  {len(xtr)} training windows, {0 if xva is None else len(xva)} "
                f"validation windows; up to {config.epochs_frozen} epochs"
            )
            head.fit(
                ds,
                validation_data=(xva, yva) if has_val else None,
                epochs=config.epochs_frozen,
                initial_epoch=_restore_backup(
                    run, head, state, epochs=config.epochs_frozen, patience=config.frozen_patience
                ),
                verbose=0,
                shuffle=False,
                callbacks=[
                    _checkpoint(run, head, model, state, 1, monitor, config.frozen_patience, say),
                    _progress_bar(1, config.epochs_frozen, say.progress),
                ],
            )
            _keep_best(run, model, state, 1, monitor, say)
            state.update(phase=2, epoch=0, best=None, best_epoch=0, wait=0, backup=None)
            run.write_state(state)
            shutil.rmtree(run.backup_dir, ignore_errors=True)
            seconds["phase1"] = time.perf_counter() - t0
        else:
            ytr = None

        if state["phase"] == 2 and config.epochs_finetune > 0:
            t0 = time.perf_counter()
            if ytr is None:  # class weights need the labels of the training windows
                ytr = np.concatenate(
                    [np.asarray(y) for _, y, _ in train_plain] or [np.zeros((0, len(labels)))]
                )
                if len(ytr) == 0:
                    raise DatasetError(f"{data_dir}: no training window could be decoded")
            weights = _weights_for(config, ytr, len(labels))
            start = _fine_tune_start(config, train_idx)
            unfrozen = set_fine_tuning(model, start, pretrained=config.pretrained)
            say(
                f"{PHASE_NAMES[2]}: {len(unfrozen)} backbone layers trainable from "
                f"{'Conv1 (the whole backbone)' if start == 'auto' else start}, "
                f"learning rate {config.finetune_learning_rate:g}"
                f"{' (cosine decay)' if config.finetune_schedule == 'cosine' else ''}, "
                + (
                    f"weights averaged over about {config.finetune_average_epochs:g} epoch(s), "
                    if config.finetune_average_epochs > 0
                    else ""
                )
                + f"up to {config.epochs_finetune} epochs"
            )
            repeat = max(1, -(-config.min_epoch_windows // max(len(ytr), 1)))
            if repeat > 1:
                say(
                    f"  {len(ytr)} training windows, each epoch passes over them {repeat} "
                    f"times (min_epoch_windows {config.min_epoch_windows})"
                )
            model.compile(
                optimizer=_finetune_optimizer(config, len(ytr) * repeat),
                loss=_loss(config),
                metrics=_metrics(config),
            )
            train_ds = make_dataset(
                train_idx, config, training=True, skips=skips, class_weights=weights, repeat=repeat
            )
            val_ds = make_dataset(val_idx, config, training=False, skips=skips) if has_val else None
            averaged = _averaged_weights_callback()
            with warnings.catch_warnings():
                # The window count is unknown until the first pass has decoded every
                # file; Keras then reports the dataset's end as an interruption.
                warnings.filterwarnings("ignore", message="Your input ran out of data")
                model.fit(
                    train_ds,
                    validation_data=val_ds,
                    epochs=config.epochs_finetune,
                    initial_epoch=_restore_backup(
                        run, model, state, epochs=config.epochs_finetune, patience=config.patience
                    ),
                    verbose=0,
                    shuffle=False,
                    callbacks=[
                        averaged,  # first: the others see the averaged weights
                        keras.callbacks.LearningRateScheduler(
                            lambda epoch, _: config.finetune_rate(epoch)
                        ),
                        _checkpoint(
                            run, model, model, state, 2, monitor, config.patience, say, averaged
                        ),
                        _progress_bar(2, config.epochs_finetune, say.progress),
                    ],
                )
            _keep_best(run, model, state, 2, monitor, say)
            seconds["phase2"] = time.perf_counter() - t0
        # (a run that had finished training was built from its best weights above)
        state.update(phase="done", backup=None)
        run.write_state(state)
        shutil.rmtree(run.backup_dir, ignore_errors=True)

    with atomic_path(run.keras_path, suffix=".keras") as tmp:
        model.save(tmp)
    history = state["history"]
    run.write_history(history)
    plot_learning_curves(history, run / "learning_curves.png")
    for name, s in seconds.items():
        say(f"{name}: {s:.0f} s")
    skipped = sorted(index.skipped + skips.items, key=lambda s: s.path)
    return TrainedModel(model, run, config, labels, train_idx, val_idx, history, skipped, seconds)


def _keep_best(
    run: RunDir, model, state: dict[str, Any], phase: int, monitor: str, say: _Say
) -> None:
    """Load the best epoch of the phase that just ended, and say which it was."""
    if run.best_weights_path.exists():
        model.load_weights(run.best_weights_path)
    rows = state["history"][f"phase{phase}"]
    best = next((r for r in rows if r["epoch"] == state.get("best_epoch")), None)
    if best is not None:
        extra = "  ".join(f"{k} {v:.4f}" for k, v in best.items() if k != "epoch")
        say(f"  kept epoch {best['epoch']} of {len(rows)} (lowest {monitor}): {extra}")


def check_training_inputs(
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    resume: bool,
    strategy: str,
    validation_dir: str | os.PathLike | None = None,
) -> None:
    """The checks :func:`train_model` makes before TensorFlow is imported, for a command
    line that wants to fail fast."""
    _check_strategy(strategy)
    for path in (data_dir, validation_dir):
        if path is not None and not Path(path).is_dir():
            raise (
                FileNotFoundError(f"No such dataset folder: {path}")
                if not Path(path).exists()
                else InvalidParameterError(
                    f"{path}: the dataset must be a folder with one sub-folder per species"
                )
            )
    run = RunDir(output_dir)
    if run.path.exists() and not run.path.is_dir():
        raise parameter_error("output_dir", "a folder (the run directory)", str(output_dir))
    if resume and not run.is_run():
        raise DatasetError(
            f"{run.path}: nothing to resume (no config.json); start a new run without resume"
        )
    if not resume and (run.has_started() or run.is_run()):
        raise parameter_error(
            "output_dir",
            "a new or empty run directory (or resume an interrupted run)",
            str(output_dir),
        )
