"""The whole job on one folder of recordings: train -> evaluate -> export -> remember.

The one place where the stages are composed; ``birdsong.train`` and ``birdsong train``
both call :func:`train`. Each stage reads and writes the run through
:class:`~birdsong.rundir.RunDir`.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .config import TrainConfig
from .dataset import Skipped
from .pipeline import SkipLog
from .training import train_model

__all__ = ["TrainResult", "train"]

log = logging.getLogger(__name__)

COLLAPSED_WARNING = (
    "the trained model gives the same output for every validation window: it has learnt "
    "nothing. From scratch (no pretrained weights) use the from-scratch schedule (the "
    "default when weights are none), more data, or a pretrained weights file."
)


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
    phase_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        """Per-recording top-1 accuracy on the validation recordings."""
        if not self.report:
            return None
        return self.report["per_recording"]["top1_accuracy"]

    @property
    def collapsed(self) -> bool:
        """True when the model gives the same output for every validation window."""
        return bool(self.report and self.report.get("collapsed"))


def train(
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    config: TrainConfig | None = None,
    resume: bool = False,
    strategy: str = "default",
    validation_dir: str | os.PathLike | None = None,
    annotations: str | os.PathLike | None = None,
    export: bool = True,
    progress: bool = False,
    deterministic: bool = True,
) -> TrainResult:
    """Train a species classifier, evaluate it on the validation recordings, export it
    to ``model.tflite`` and remember it as this machine's latest model.

    Parameters are those of :func:`birdsong.training.train_model`, plus ``export``
    (write ``model.tflite``). The run directory afterwards holds the model, its
    settings, split, history, learning curves and report (``report/``).
    """
    from .evaluation import evaluate_index, write_report
    from .thresholds import SIGMOID_FLOOR, choose_thresholds

    trained = train_model(
        data_dir,
        output_dir,
        config=config,
        resume=resume,
        strategy=strategy,
        validation_dir=validation_dir,
        annotations=annotations,
        progress=progress,
        deterministic=deterministic,
    )
    run, config = trained.run, trained.config
    skips = SkipLog()
    report = None
    if trained.validation_index.recordings:
        model = trained.model
        report = evaluate_index(
            lambda x: np.asarray(model(x, training=False)),
            trained.validation_index,
            features=config.features,
            rules=config.windows,
            labels=trained.labels,
            multi_label=config.multi_label,
            skips=skips,
            batch_size=config.batch_size,
            progress=progress,
        )
        report["model"] = str(run.keras_path)
        thresholds = choose_thresholds(
            report.pop("window_scores"),
            report.pop("window_targets"),
            trained.labels,
            rule="f1" if config.target_precision is None else "precision",
            target_precision=config.target_precision or 0.9,
            floor=SIGMOID_FLOOR if config.multi_label else None,
        ).to_dict()
        run.write_thresholds(thresholds)
        report["thresholds"] = thresholds
        if report["collapsed"]:
            log.warning("%s", COLLAPSED_WARNING)
            if progress:
                print(f"\nWARNING: {COLLAPSED_WARNING}\n", file=sys.stderr)
    skipped = sorted(
        {s.path: s for s in trained.skipped + skips.items}.values(), key=lambda s: s.path
    )
    if report is not None:
        report["skipped"] = [{"path": s.path, "reason": s.reason} for s in skipped]
        write_report(report, run.report_dir)
    run.write_skipped(skipped)
    tflite_path = None
    if export:
        from .exporting import export_model

        tflite_path = export_model(run.path, run.tflite_path, model=trained.model, remember=False)
    _remember(tflite_path or run.keras_path)
    result = TrainResult(
        run.path,
        run.keras_path,
        trained.labels,
        trained.history,
        report,
        skipped,
        tflite_path,
        trained.seconds.get("total", 0.0),
        {k: v for k, v in trained.seconds.items() if k != "total"},
    )
    run.write_summary(
        {
            "version": __version__,
            "data_dir": str(Path(data_dir).resolve()),
            "labels": list(trained.labels),
            "seconds": result.seconds,
            "phase_seconds": result.phase_seconds,
            "per_recording_accuracy": result.accuracy,
            "collapsed": result.collapsed,
            "train_recordings": len(trained.train_index.recordings),
            "validation_recordings": len(trained.validation_index.recordings),
            "skipped": len(skipped),
        }
    )
    return result


def _remember(path: Path) -> None:
    from .registry import remember_model

    try:
        remember_model(path)
    except OSError as exc:  # a read-only home must not fail a finished run
        log.warning("could not record %s as the latest model: %s", path, exc)
