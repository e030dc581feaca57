"""One run directory: every stage reads and writes a training run through this object.

::

    runs/NAME/
      config.json        TrainConfig (all settings, the window rules included)
      labels.txt         one species per line, in the order of the model's outputs
      split.csv          path, label, split, group, root: which recording went where
      state.json         how far training got (``--resume`` continues from it)
      best.weights.h5    the best epoch so far of the current phase
      .backup/           Keras BackupAndRestore: last epoch's weights and optimizer
      model.keras        the trained model (the best epoch)
      history.json/.csv  per-epoch metrics of both phases
      learning_curves.png
      report/            evaluation on the validation recordings
      model.tflite       the exported model
      thresholds.json    per-species detection thresholds chosen on the validation windows
      skipped.json       files that could not be used, with the reason
      summary.json       what the run produced, for people and for later commands

Light tier: no TensorFlow here; Keras files are only named, never opened.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._io import atomic_write_text
from .config import TrainConfig, load_config, save_config, saved_rules_hop
from .dataset import DatasetIndex, Recording, Skipped
from .errors import DatasetError, InvalidParameterError, ModelError, parameter_error

__all__ = ["RunDir", "Split"]

SPLIT_COLUMNS = ["path", "label", "split", "group", "root"]
SIDES = ("train", "validation")


#: TrainConfig fields added after runs were first saved, with the value (or a function
#: of the saved config giving the value) that reproduces what a run saved without them
#: did.
ADDED_FIELDS: dict[str, Any] = {
    "finetune_average_epochs": 0.0,
    "min_epoch_windows": 0,
    "train_hop_seconds": saved_rules_hop,
    "augment.overlay_probability": 0.0,
}


@dataclass(frozen=True)
class Split:
    """Which recordings were used for training and which for validation."""

    train: list[Recording]
    validation: list[Recording]

    def side(self, name: str) -> list[Recording]:
        if name not in SIDES:
            raise parameter_error("split", f"one of {', '.join(SIDES)}", name)
        return self.train if name == "train" else self.validation


class RunDir:
    """The files of one training run (see the module docstring for the layout)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    # ------------------------------------------------------------------ locations
    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def labels_path(self) -> Path:
        return self.path / "labels.txt"

    @property
    def split_path(self) -> Path:
        return self.path / "split.csv"

    @property
    def state_path(self) -> Path:
        return self.path / "state.json"

    @property
    def keras_path(self) -> Path:
        return self.path / "model.keras"

    @property
    def tflite_path(self) -> Path:
        return self.path / "model.tflite"

    @property
    def best_weights_path(self) -> Path:
        return self.path / "best.weights.h5"

    @property
    def backup_dir(self) -> Path:
        return self.path / ".backup"

    @property
    def report_dir(self) -> Path:
        return self.path / "report"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    # ------------------------------------------------------------------ questions
    def is_run(self) -> bool:
        """True when this folder holds a run (its settings and labels)."""
        return self.config_path.is_file() and self.labels_path.is_file()

    def has_started(self) -> bool:
        """True when training began here (``--resume`` can continue it)."""
        return self.state_path.is_file()

    def require(self) -> RunDir:
        """This object, or a :class:`ModelError` saying what is missing."""
        if not self.path.is_dir():
            raise ModelError(f"{self.path}: expected a run directory (from `birdsong train`)")
        missing = [p.name for p in (self.config_path, self.labels_path) if not p.is_file()]
        if missing:
            raise ModelError(f"{self.path}: not a complete run directory (no {', '.join(missing)})")
        return self

    # ----------------------------------------------------------- config and labels
    def read_config(self) -> TrainConfig:
        """The run's settings. A field that a run written by an older release lacks gets
        the value that release used (:data:`ADDED_FIELDS`), not today's default, so that
        resuming or re-evaluating such a run does what it did."""
        self.require()
        try:
            return load_config(TrainConfig, self.config_path, missing=ADDED_FIELDS)
        except InvalidParameterError as exc:
            raise ModelError(f"{self.config_path}: unusable settings ({exc})") from exc

    def write_config(self, config: TrainConfig) -> Path:
        return save_config(config, self.config_path)

    def read_labels(self) -> list[str]:
        self.require()
        text = self.labels_path.read_text(encoding="utf-8", errors="surrogateescape")
        return [s for s in text.split("\n") if s]

    def write_labels(self, labels: list[str] | tuple[str, ...]) -> Path:
        return atomic_write_text(self.labels_path, "\n".join(labels) + "\n")

    def read(self) -> tuple[TrainConfig, list[str]]:
        """The settings and labels (a :class:`ModelError` if either is missing)."""
        return self.read_config(), self.read_labels()

    # ------------------------------------------------------------------- the split
    def write_split(self, train: DatasetIndex, validation: DatasetIndex) -> Path:
        """``split.csv``: each recording's path relative to its side's root, so a
        validation folder outside the training folder is recorded too."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(SPLIT_COLUMNS)
        for name, part in zip(SIDES, (train, validation)):
            root = Path(part.root).resolve()
            for r in part.recordings:
                try:
                    rel = Path(r.path).resolve().relative_to(root).as_posix()
                except ValueError:
                    rel = Path(r.path).resolve().as_posix()
                w.writerow([rel, r.label, name, r.group, root.as_posix()])
        return atomic_write_text(self.split_path, buf.getvalue())

    def read_split(self) -> Split:
        """The recordings of each side. Runs of birdsong 0.1 (no ``root`` column) are
        read against the data folder recorded in ``summary.json``."""
        if not self.split_path.is_file():
            raise ModelError(f"{self.path}: no split.csv (the run never started training)")
        fallback = self.read_summary().get("data_dir")
        parts: dict[str, list[Recording]] = {side: [] for side in SIDES}
        with open(self.split_path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                side = row.get("split")
                root = row.get("root") or fallback
                if side not in parts or not row.get("path") or not root:
                    raise ModelError(f"{self.split_path}, line {line}: unusable row {row!r}")
                parts[side].append(
                    Recording(Path(root) / row["path"], row.get("label", ""), row.get("group", ""))
                )
        return Split(parts["train"], parts["validation"])

    # ------------------------------------------------------------ state and history
    def read_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise DatasetError(
                f"{self.state_path}: unreadable ({exc}); start a new run in another folder"
            ) from exc
        return data if isinstance(data, dict) else {}

    def write_state(self, state: dict[str, Any]) -> Path:
        return atomic_write_text(self.state_path, json.dumps(state, indent=2) + "\n")

    def write_history(self, history: dict[str, list[dict[str, float]]]) -> None:
        atomic_write_text(self.path / "history.json", json.dumps(history, indent=2) + "\n")
        keys = sorted({k for rows in history.values() for row in rows for k in row} - {"epoch"})
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["phase", "epoch", *keys])
        for phase, rows in history.items():
            for row in rows:
                w.writerow([phase, row["epoch"], *(row.get(k, "") for k in keys)])
        atomic_write_text(self.path / "history.csv", buf.getvalue())

    def write_skipped(self, skipped: list[Skipped]) -> Path:
        return atomic_write_text(
            self.path / "skipped.json",
            json.dumps([{"path": s.path, "reason": s.reason} for s in skipped], indent=2) + "\n",
        )

    @property
    def thresholds_path(self) -> Path:
        return self.path / "thresholds.json"

    def write_thresholds(self, thresholds: dict[str, Any]) -> Path:
        """``thresholds.json``: the rule, and per species its threshold with the precision
        and recall it gave on the validation windows."""
        return atomic_write_text(self.thresholds_path, json.dumps(thresholds, indent=2) + "\n")

    def read_thresholds(self) -> dict[str, float] | None:
        """``{species: threshold}``, or None when the run chose none."""
        try:
            data = json.loads(self.thresholds_path.read_text(encoding="utf-8"))
            return {k: float(v["threshold"]) for k, v in data["per_species"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def read_summary(self) -> dict[str, Any]:
        try:
            data = json.loads(self.summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_summary(self, summary: dict[str, Any]) -> Path:
        return atomic_write_text(self.summary_path, json.dumps(summary, indent=2) + "\n")
