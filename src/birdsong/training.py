"""Train a classifier: phase 1 on cached backbone features, phase 2 fine-tuning.

Phase 1 freezes the MobileNetV2 backbone, runs every training window through the
frontend and backbone once, and trains the head (dropout + softmax) on the cached
pooled features: an epoch costs a matrix multiply, not a network pass. Phase 2
unfreezes the backbone from ``fine_tune_from`` upward (BatchNorm stays frozen and in
inference mode), recompiles with a low learning rate and trains end to end on augmented
windows. Both phases stop early on validation loss and restore the best weights.

Every epoch writes ``checkpoint.weights.h5`` and ``state.json`` in the run directory;
``resume=True`` continues an interrupted run from its last completed epoch with the
settings saved in ``config.json`` (the optimizer's moments restart).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from ._io import atomic_path, atomic_write_text
from .config import TrainConfig, load_config, save_config
from .dataset import DatasetIndex, Skipped, index_dataset, split_recordings
from .errors import DatasetError, InvalidParameterError, require
from .pipeline import SkipLog, make_dataset

__all__ = ["TrainResult", "train"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run produced; every path lies in ``run_dir``."""

    run_dir: Path
    model_path: Path
    labels: tuple[str, ...]
    history: dict[str, list[dict[str, float]]]
    report: dict[str, Any] | None
    skipped: list[Skipped] = field(default_factory=list)
    tflite_path: Path | None = None
    seconds: float = 0.0

    @property
    def accuracy(self) -> float | None:
        """Per-recording top-1 accuracy on the validation recordings."""
        if not self.report:
            return None
        return self.report["per_recording"]["top1_accuracy"]


def _strategy(name: str):
    tf = require("tensorflow")
    if name in ("default", "", None):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise InvalidParameterError(f"The 'strategy' parameter must be 'default' or 'mirrored'. "
                                f"Got {name!r} instead.")


# ----------------------------------------------------------------------- run state


def _write_split(run_dir: Path, train: DatasetIndex, val: DatasetIndex) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "label", "split", "group"])
    for name, part in (("train", train), ("validation", val)):
        for r in part.recordings:
            w.writerow([r.path.relative_to(train.root).as_posix(), r.label, name, r.group])
    atomic_write_text(run_dir / "split.csv", buf.getvalue())


def _read_split(run_dir: Path, index: DatasetIndex) -> tuple[DatasetIndex, DatasetIndex]:
    by_path = {r.path.relative_to(index.root).as_posix(): r for r in index.recordings}
    parts: dict[str, list] = {"train": [], "validation": []}
    with open(run_dir / "split.csv", newline="", encoding="utf-8",
              errors="surrogateescape") as fh:
        for row in csv.DictReader(fh):
            rec = by_path.get(row["path"])
            if rec is not None:
                parts[row["split"]].append(rec)
    return index.subset(parts["train"]), index.subset(parts["validation"])


class _State:
    """``state.json``: where a run is, so that ``--resume`` can continue it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "state.json"
        self.data: dict[str, Any] = {"phase": 1, "epoch": 0, "best": None, "wait": 0,
                                     "history": {"phase1": [], "phase2": []}, "done": False}
        if self.path.exists():
            self.data.update(json.loads(self.path.read_text(encoding="utf-8")))

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=2) + "\n")


def _callback(run_dir: Path, model, state: _State, phase: int, monitor: str, patience: int):
    keras = require("keras")

    class EpochCheckpoint(keras.callbacks.Callback):
        """Checkpoint, best-weights tracking and early stopping that survive a restart."""

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            d = state.data
            d["history"][f"phase{phase}"].append({"epoch": epoch + 1, **logs})
            value = logs.get(monitor, logs.get("loss"))
            if d["best"] is None or value < d["best"]:
                d["best"], d["wait"] = value, 0
                with atomic_path(run_dir / "best.weights.h5", suffix=".weights.h5") as tmp:
                    model.save_weights(tmp)
            else:
                d["wait"] += 1
            with atomic_path(run_dir / "checkpoint.weights.h5", suffix=".weights.h5") as tmp:
                model.save_weights(tmp)
            d["phase"], d["epoch"] = phase, epoch + 1
            state.save()
            if d["wait"] > patience:
                log.info("phase %d: early stop after epoch %d (best %s %.4f)", phase,
                         epoch + 1, monitor, d["best"])
                self.model.stop_training = True

    return EpochCheckpoint()


def _restore_best(run_dir: Path, model) -> None:
    best = run_dir / "best.weights.h5"
    if best.exists():
        model.load_weights(best)


# ------------------------------------------------------------------------- phases


def _extract(extractor, ds, *, verbose: bool, desc: str) -> tuple[np.ndarray, ...]:
    """Run every window through frontend + frozen backbone once (phase 1's cache)."""
    from tqdm.auto import tqdm

    xs, ys, ids = [], [], []
    for x, y, rid in tqdm(ds, desc=desc, unit="batch", disable=not verbose, leave=False):
        xs.append(np.asarray(extractor(x, training=False)))
        ys.append(np.asarray(y))
        ids.append(np.asarray(rid))
    if not xs:
        return np.zeros((0, extractor.output.shape[-1]), np.float32), np.zeros((0, 0)), \
            np.zeros(0, int)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ids)


def _class_weights(y_one_hot: np.ndarray, n_classes: int) -> list[float]:
    counts = np.bincount(y_one_hot.argmax(1), minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights.tolist()


def train(data_dir: str | os.PathLike, output_dir: str | os.PathLike, *,
          config: TrainConfig | None = None, resume: bool = False,
          strategy: str = "default", validation_dir: str | os.PathLike | None = None,
          verbose: bool = False, export: bool = True) -> TrainResult:
    """Train a species classifier on a folder-per-species tree of recordings.

    Parameters
    ----------
    data_dir : path
        ``DATA_DIR/<species>/<recordings>``.
    output_dir : path
        The run directory; created. Holds ``model.keras``, ``config.json``,
        ``labels.txt``, ``split.csv``, ``history.json``/``.csv``,
        ``learning_curves.png``, ``report/`` and (with ``export``) ``model.tflite``.
    config : TrainConfig
        All settings; saved as ``config.json``. Ignored with ``resume`` (the saved
        settings are used so that the run continues as it started).
    resume : bool
        Continue an interrupted run in ``output_dir`` from its last completed epoch.
    strategy : {"default", "mirrored"}
        ``tf.distribute`` strategy (``mirrored``: all local GPUs).
    validation_dir : path, optional
        A separate folder-per-species tree for validation instead of a split.
    """
    started = time.perf_counter()
    keras = require("keras", purpose="train a model")
    from .evaluate import evaluate_index, write_report
    from .model import build_model, feature_extractor, head_model, set_fine_tuning
    from .plots import plot_learning_curves

    distribution = _strategy(strategy)  # a bad name fails before anything is written
    run_dir = Path(output_dir)
    if resume:
        if not (run_dir / "config.json").exists():
            raise DatasetError(f"{run_dir}: nothing to resume (no config.json); start a new "
                               "run without --resume")
        saved = load_config(TrainConfig, run_dir / "config.json")
        if config is not None and config != saved:
            log.warning("resume: using the settings saved in %s, not the ones given",
                        run_dir / "config.json")
        config = saved
    else:
        config = config or TrainConfig()
        if (run_dir / "state.json").exists():
            raise InvalidParameterError(
                f"The 'output_dir' parameter must be a new or empty run directory. Got "
                f"{str(run_dir)!r}, which holds a run; pass resume=True (--resume) or "
                "choose another directory.")
    run_dir.mkdir(parents=True, exist_ok=True)
    _seed_everything(config.seed)

    index = index_dataset(data_dir, group_pattern=config.group_pattern)
    if index.kind == "images":
        raise DatasetError(
            f"{data_dir}: holds spectrogram PNGs (the original notebook's format). birdsong "
            "trains from the recordings themselves, so that the exported model takes raw "
            "audio and computes the same spectrogram inside; point train at the folder of "
            "recordings those images were made from.")
    if resume and (run_dir / "split.csv").exists():
        train_idx, val_idx = _read_split(run_dir, index)
    elif validation_dir is not None:
        train_idx = index
        val_idx = index_dataset(validation_dir, group_pattern=config.group_pattern,
                                labels=index.labels)
        val_idx.skipped, index.skipped = [], index.skipped + val_idx.skipped
    else:
        train_idx, val_idx = split_recordings(index, validation_fraction=config.validation_fraction,
                                              seed=config.seed)
    labels = index.labels
    save_config(config, run_dir / "config.json")
    atomic_write_text(run_dir / "labels.txt", "\n".join(labels) + "\n")
    _write_split(run_dir, train_idx, val_idx)
    log.info("%d species, %d training and %d validation recordings, %d skipped",
             len(labels), len(train_idx.recordings), len(val_idx.recordings),
             len(index.skipped))

    state = _State(run_dir)
    skips = SkipLog()
    has_val = bool(val_idx.recordings)
    monitor = "val_loss" if has_val else "loss"
    fit_verbose = 2 if verbose else 0

    with distribution.scope():
        checkpoint = run_dir / "checkpoint.weights.h5"
        resuming = resume and checkpoint.exists()
        model = build_model(labels, config, load_weights=not resuming)
        if resuming:
            model.load_weights(checkpoint)
            if state.data["phase"] == 2 and state.data["epoch"] == 0:
                _restore_best(run_dir, model)  # phase 2 starts from phase 1's best
            log.info("resumed at phase %d epoch %d", state.data["phase"], state.data["epoch"])

        # phase 1: frozen backbone on cached features
        train_ids = make_dataset(train_idx, config, training=False, skips=skips, with_ids=True)
        phase1 = state.data["phase"] == 1 and state.data["epoch"] < config.epochs_frozen
        if phase1:
            xtr, ytr, _ = _extract(feature_extractor(model), train_ids, verbose=verbose,
                                   desc="caching training features")
        else:  # only the labels are needed (class weights): decode, no network pass
            ytr = np.concatenate([np.asarray(y) for _, y, _ in train_ids] or
                                 [np.zeros((0, len(labels)))])
        if len(ytr) == 0:
            raise DatasetError(f"{data_dir}: no training window could be decoded")
        weights = (_class_weights(ytr, len(labels)) if config.class_weighting
                   else [1.0] * len(labels))
        val_plain = (make_dataset(val_idx, config, training=False, skips=skips,
                                  with_ids=True) if has_val else None)
        if phase1:
            tf = require("tensorflow")
            xva, yva, _ = (_extract(feature_extractor(model), val_plain, verbose=verbose,
                                    desc="caching validation features")
                           if has_val else (None, None, None))
            head = head_model(model)
            head.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                         loss="categorical_crossentropy", metrics=["accuracy"])
            sw = np.asarray(weights, np.float32)[ytr.argmax(1)]
            ds = (tf.data.Dataset.from_tensor_slices((xtr, ytr, sw))
                  .shuffle(len(xtr), seed=config.seed).batch(config.batch_size))
            head.fit(ds, validation_data=(xva, yva) if has_val else None,
                     epochs=config.epochs_frozen, initial_epoch=state.data["epoch"],
                     callbacks=[_callback(run_dir, model, state, 1, monitor, config.patience)],
                     verbose=fit_verbose, shuffle=False)
            _restore_best(run_dir, model)
        if state.data["phase"] == 1:
            state.data.update(phase=2, epoch=0, best=None, wait=0)
            state.save()

        # phase 2: fine-tune the top of the backbone
        if state.data["epoch"] < config.epochs_finetune:
            unfrozen = set_fine_tuning(model, config.fine_tune_from,
                                       pretrained=config.weights is not None)
            log.info("phase 2: fine-tuning %d backbone layers from %s", len(unfrozen),
                     config.fine_tune_from)
            model.compile(optimizer=keras.optimizers.Adam(config.finetune_learning_rate),
                          loss="categorical_crossentropy", metrics=["accuracy"])
            train_ds = make_dataset(train_idx, config, training=True, skips=skips,
                                    class_weights=weights)
            val_ds = (make_dataset(val_idx, config, training=False, skips=skips)
                      if has_val else None)
            with warnings.catch_warnings():
                # The window count is unknown until the first pass has decoded every
                # file; Keras then reports the dataset's end as an interruption.
                warnings.filterwarnings("ignore", message="Your input ran out of data")
                model.fit(train_ds, validation_data=val_ds, epochs=config.epochs_finetune,
                          initial_epoch=state.data["epoch"],
                          callbacks=[_callback(run_dir, model, state, 2, monitor,
                                               config.patience)],
                          verbose=fit_verbose, shuffle=False)
            _restore_best(run_dir, model)

    model_path = run_dir / "model.keras"
    with atomic_path(model_path, suffix=".keras") as tmp:
        model.save(tmp)
    history = state.data["history"]
    _write_history(run_dir, history)
    plot_learning_curves(history, run_dir / "learning_curves.png")

    skipped = sorted(index.skipped + skips.items, key=lambda s: s.path)
    report = None
    if has_val:
        report = evaluate_index(lambda x: np.asarray(model(x, training=False)), val_idx,
                                config=config, skips=skips, batch_size=config.batch_size,
                                progress=verbose)
        skipped = sorted(index.skipped + skips.items, key=lambda s: s.path)
        report["skipped"] = [{"path": s.path, "reason": s.reason} for s in skipped]
        report["model"] = str(model_path)
        write_report(report, run_dir / "report")
    atomic_write_text(run_dir / "skipped.json", json.dumps(
        [{"path": s.path, "reason": s.reason} for s in skipped], indent=2) + "\n")
    tflite_path = None
    if export:
        from .export import export_model

        tflite_path = export_model(run_dir, run_dir / "model.tflite", model=model)
    state.data["done"] = True
    state.save()
    _remember(tflite_path or model_path)
    result = TrainResult(run_dir, model_path, labels, history, report, skipped, tflite_path,
                         time.perf_counter() - started)
    summary = {"version": __version__, "data_dir": str(Path(data_dir).resolve()),
               "labels": list(labels), "seconds": result.seconds,
               "per_recording_accuracy": result.accuracy,
               "train_recordings": len(train_idx.recordings),
               "validation_recordings": len(val_idx.recordings), "skipped": len(skipped)}
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return result


def _seed_everything(seed: int) -> None:
    """Same seed, same data, same machine: the same model. Seeds Python, NumPy and
    TensorFlow and switches on TensorFlow's op determinism for this process (threaded
    CPU kernels otherwise sum in a varying order and runs drift apart)."""
    keras = require("keras")
    tf = require("tensorflow")
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _remember(path: Path) -> None:
    from .registry import remember_model

    try:
        remember_model(path)
    except OSError as exc:  # a read-only home must not fail a finished run
        log.warning("could not record %s as the latest model: %s", path, exc)


def _write_history(run_dir: Path, history: dict[str, list[dict[str, float]]]) -> None:
    atomic_write_text(run_dir / "history.json", json.dumps(history, indent=2) + "\n")
    keys = sorted({k for rows in history.values() for row in rows for k in row} - {"epoch"})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["phase", "epoch", *keys])
    for phase, rows in history.items():
        for row in rows:
            w.writerow([phase, row["epoch"], *(row.get(k, "") for k in keys)])
    atomic_write_text(run_dir / "history.csv", buf.getvalue())
