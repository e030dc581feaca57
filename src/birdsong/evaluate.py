"""Honest evaluation: per window and per recording, per species, with the figures.

Works on a Keras model (a run directory or ``.keras`` file) and on an exported
``.tflite`` (through the LiteRT :class:`~birdsong.inference.Classifier`). Windows are
chosen as in training (the most active ones of each recording); a recording's score is
the mean of its windows' probabilities.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_write_text
from .config import FeatureConfig, TrainConfig, from_dict
from .dataset import DatasetIndex, index_dataset
from .errors import AudioError, ModelError
from .metrics import aggregate_by_group, classification_metrics
from .pipeline import SkipLog, recording_windows

__all__ = ["evaluate", "evaluate_index", "write_report"]

log = logging.getLogger(__name__)

Scorer = Callable[[np.ndarray], np.ndarray]


def evaluate_index(scorer: Scorer, index: DatasetIndex, *, config: TrainConfig,
                   labels: Sequence[str] | None = None, batch_size: int = 32,
                   skips: SkipLog | None = None, progress: bool = False) -> dict[str, Any]:
    """Score every recording of ``index`` and compute the metrics.

    ``scorer`` maps windows ``(n, num_samples)`` to probabilities ``(n, n_classes)``.
    """
    from tqdm.auto import tqdm

    labels = list(labels or index.labels)
    skips = skips or SkipLog()

    def windows_of(path: Path) -> np.ndarray | None:
        try:
            return recording_windows(path, config)
        except (AudioError, OSError) as exc:
            skips.add(str(path), str(exc))
            return None

    scores, y_true, rec_ids, used = [], [], [], []
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        decoded = pool.map(windows_of, [r.path for r in index.recordings])
        for rec, windows in tqdm(zip(index.recordings, decoded), total=len(index.recordings),
                                 desc="evaluating", unit="file", disable=not progress):
            if windows is None:
                continue
            for i in range(0, len(windows), batch_size):
                scores.append(np.asarray(scorer(windows[i:i + batch_size]), np.float64))
            y_true += [labels.index(rec.label)] * len(windows)
            rec_ids += [len(used)] * len(windows)
            used.append(rec)
    if not used:
        raise ModelError("no recording could be evaluated (every file was skipped)")
    s = np.concatenate(scores)
    y = np.asarray(y_true)
    rs, ry, ids = aggregate_by_group(s, y, np.asarray(rec_ids))
    per_recording = [{"path": str(used[i].path), "label": used[i].label,
                      "predicted": labels[int(rs[k].argmax())],
                      "score": float(rs[k].max()),
                      "windows": int(np.sum(np.asarray(rec_ids) == i))}
                     for k, i in enumerate(ids)]
    return {"labels": labels, "per_window": classification_metrics(y, s, labels),
            "per_recording": classification_metrics(ry, rs, labels),
            "recordings": per_recording,
            "skipped": [{"path": k.path, "reason": k.reason} for k in skips.items]}


def _keras_scorer(path: Path) -> tuple[Scorer, TrainConfig, list[str]]:
    from .model import load_keras_model, read_run

    config, labels = read_run(path if path.is_dir() else path.parent)
    model = load_keras_model(path)
    return (lambda x: np.asarray(model(x, training=False))), config, labels


def _tflite_scorer(path: Path) -> tuple[Scorer, TrainConfig, list[str]]:
    from .inference import Classifier

    clf = Classifier(path)
    settings = clf.info.settings
    if "train" in settings:
        config = from_dict(TrainConfig, settings["train"])
    else:
        config = TrainConfig(features=from_dict(FeatureConfig, settings["features"])
                             if "features" in settings else clf.features)
    return clf.predict_windows, config, list(clf.labels)


def evaluate(model: str | os.PathLike, data_dir: str | os.PathLike, *,
             out_dir: str | os.PathLike | None = None, batch_size: int = 32,
             progress: bool = False) -> dict[str, Any]:
    """Evaluate a run directory, ``.keras`` or ``.tflite`` model on a labelled folder.

    Folders of species the model does not know are skipped and listed in the report.
    With ``out_dir`` the report files are written there (see :func:`write_report`).
    """
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"No such model: {path}")
    scorer, config, labels = (_tflite_scorer(path) if path.suffix == ".tflite"
                              else _keras_scorer(path))
    index = index_dataset(data_dir, group_pattern=config.group_pattern, labels=labels,
                          min_species=1)
    skips = SkipLog()
    report = evaluate_index(scorer, index, config=config, labels=labels,
                            batch_size=batch_size, skips=skips, progress=progress)
    report["skipped"] = [{"path": s.path, "reason": s.reason} for s in index.skipped] + \
        report["skipped"]
    report["model"] = str(path)
    report["data"] = str(data_dir)
    if out_dir is not None:
        write_report(report, out_dir)
    return report


def _markdown(report: dict[str, Any]) -> str:
    lines = [f"# Evaluation report\n\nModel: `{report.get('model', '?')}`  "]
    for level in ("per_recording", "per_window"):
        m = report[level]
        lines += [f"\n## {level.replace('_', ' ').capitalize()} (n = {m['n']})\n",
                  f"- top-1 accuracy: {m['top1_accuracy']:.3f}",
                  f"- top-3 accuracy: {m['top3_accuracy']:.3f}",
                  f"- macro F1: {m['macro_f1']:.3f}",
                  f"- macro ROC-AUC: {m['macro_roc_auc']:.3f}\n",
                  "| species | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | "
                  f"{v['support']} |" for k, v in m["per_species"].items()]
    skipped = report.get("skipped", [])
    lines.append(f"\n## Skipped files ({len(skipped)})\n")
    lines += [f"- `{s['path']}`: {s['reason']}" for s in skipped] or ["none"]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write ``report.json``, ``report.md``, ``per_species.csv`` and, per level,
    ``confusion_matrix_<level>.csv`` / ``.png`` into ``out_dir``."""
    from .plots import plot_confusion_matrix

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, default=float) + "\n")
    atomic_write_text(out / "report.md", _markdown(report))
    labels = report["labels"]
    for level in ("per_recording", "per_window"):
        cm = report[level]["confusion_matrix"]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["true \\ predicted", *labels])
        for label, row in zip(labels, cm):
            w.writerow([label, *row])
        atomic_write_text(out / f"confusion_matrix_{level}.csv", buf.getvalue())
        plot_confusion_matrix(cm, labels, out / f"confusion_matrix_{level}.png",
                              title=f"Confusion matrix ({level.replace('_', ' ')})")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["level", "species", "precision", "recall", "f1", "support", "roc_auc"])
    for level in ("per_recording", "per_window"):
        for k, v in report[level]["per_species"].items():
            w.writerow([level, k, v["precision"], v["recall"], v["f1"], v["support"],
                        v["roc_auc"]])
    atomic_write_text(out / "per_species.csv", buf.getvalue())
    return out
