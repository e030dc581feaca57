"""Honest evaluation: per window and per recording, per species, with the figures.

Works on a Keras model (a run directory or ``.keras`` file) and on an exported
``.tflite`` (through the LiteRT :class:`~birdsong.inference.Classifier`). Every
recording is scanned and answered by :mod:`birdsong.rules` with the model's own
:class:`~birdsong.config.WindowRules`, exactly as ``Classifier.predict`` answers it:
the per-recording number in a report is the number a user gets. Per-window metrics are
over the windows that count (those with sound).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_write_text
from .annotation_index import AnnotationIndex
from .config import FeatureConfig, WindowRules
from .dataset import DatasetIndex, index_dataset
from .errors import AudioError, ModelError
from .metrics import classification_metrics, is_collapsed
from .pipeline import SkipLog
from .rules import ScannedRecording, recording_scores, scan_recording

__all__ = ["evaluate", "evaluate_index", "write_report"]

log = logging.getLogger(__name__)

Scorer = Callable[[np.ndarray], np.ndarray]


def _scans(
    recordings,
    scorer: Scorer,
    features: FeatureConfig,
    rules: WindowRules,
    batch_size: int,
    *,
    desc: str,
    progress: bool,
):
    """Each recording with its scan, or with the error that made it unreadable."""
    from tqdm.auto import tqdm

    for rec in tqdm(
        recordings, desc=desc, unit="file", disable=not progress, file=sys.stderr, leave=False
    ):
        try:
            yield (
                rec,
                scan_recording(
                    rec.path,
                    scorer,
                    features=features,
                    hop_seconds=rules.hop_seconds,
                    batch_windows=batch_size,
                ),
            )
        except (AudioError, OSError) as exc:
            yield rec, exc


def evaluate_index(
    scorer: Scorer,
    index: DatasetIndex,
    *,
    features: FeatureConfig,
    rules: WindowRules,
    labels: Sequence[str] | None = None,
    multi_label: bool = False,
    batch_size: int = 32,
    skips: SkipLog | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score every recording of ``index`` and compute the metrics.

    ``scorer`` maps windows ``(n, num_samples)`` to probabilities ``(n, n_classes)``.
    ``per_recording`` / ``per_window`` are single-label metrics over the recordings of a
    class; a multi-label model also gets ``multi_label``: per-species average precision,
    class-mean AP (cmAP) and ROC-AUC over the windows that count, "no bird" recordings
    included (every species absent). The report says ``collapsed: true`` when the model
    gives the same output for every window (it has learnt nothing).
    """

    from .dataset import target_vectors
    from .soundscape_metrics import soundscape_metrics

    labels = list(labels or index.labels)
    skips = skips or SkipLog()
    rules = rules.for_clip(features.clip_seconds)
    window_scores, window_true, rec_scores, rec_true, per_recording = [], [], [], [], []
    all_scores, all_targets = [], []
    for rec, scan in _scans(
        index.recordings, scorer, features, rules, batch_size, desc="evaluating", progress=progress
    ):
        if not isinstance(scan, ScannedRecording):
            skips.add(str(rec.path), str(scan))
            continue
        if rec.strong:  # an annotation table: species per window, several at once
            from .annotation_index import window_labels

            targets = window_labels(
                rec.annotations, scan.starts, clip_seconds=features.clip_seconds, labels=labels
            )
            known = np.ones(len(targets), bool) if rec.complete else targets.any(axis=1)
            all_scores.append(scan.scores[known])
            all_targets.append(targets[known])
            per_recording.append(
                {"path": str(rec.path), "label": "(annotation table)", "windows": int(known.sum())}
            )
            continue
        clip, chosen = recording_scores(scan, rules, exclusive=not multi_label)
        target = target_vectors([rec], labels)[0]
        all_scores.append(scan.scores[chosen])
        all_targets.append(np.tile(target, (len(chosen), 1)))
        if rec.label in labels:
            truth = labels.index(rec.label)
            window_scores.append(scan.scores[chosen])
            window_true += [truth] * len(chosen)
            rec_scores.append(clip)
            rec_true.append(truth)
        per_recording.append(
            {
                "path": str(rec.path),
                "label": rec.label,
                "predicted": labels[int(np.argmax(clip))],
                "score": float(np.max(clip)),
                "windows": int(len(chosen)),
            }
        )
    if not rec_true:
        raise ModelError(
            "no recording of the model's species could be evaluated (every "
            "file was skipped, or none belongs to one of its classes)"
        )
    ws = np.concatenate(window_scores)
    report = {
        "labels": labels,
        "rules": dataclasses.asdict(rules),
        "multi_label": multi_label,
        "per_window": classification_metrics(np.asarray(window_true), ws, labels),
        "per_recording": classification_metrics(np.asarray(rec_true), np.stack(rec_scores), labels),
        "collapsed": is_collapsed(np.concatenate(all_scores)),
        "recordings": per_recording,
        "skipped": [{"path": k.path, "reason": k.reason} for k in skips.items],
    }
    # every counted window's scores and targets, for choosing thresholds (not saved)
    report["window_targets"] = np.concatenate(all_targets)
    report["window_scores"] = np.concatenate(all_scores)
    if multi_label:
        report["multi_label_metrics"] = soundscape_metrics(
            report["window_targets"], report["window_scores"], labels
        )
    return report


def evaluate_soundscapes(
    scorer: Scorer,
    index: AnnotationIndex,
    *,
    features: FeatureConfig,
    rules: WindowRules,
    labels: Sequence[str],
    multi_label: bool,
    thresholds: np.ndarray,
    min_overlap: float = 0.5,
    batch_size: int = 32,
    progress: bool = False,
) -> dict[str, Any]:
    """What the field reports on annotated soundscapes (long recordings with selection
    tables, several species at once).

    Per window (windows every ``rules.hop_seconds``; a window is labelled with every
    species whose selection overlaps it by ``min_overlap`` of the selection or of the
    window): per-species average precision, class-mean AP (cmAP; species without a
    positive window are skipped) and macro ROC-AUC. Per event: the model's detections
    (:func:`birdsong.rules.detect_events` with ``thresholds``, exactly as ``predict``
    makes them) matched one-to-one to the selections they cover by at least
    ``min_overlap``; precision, recall and F1 per species. Windows of partly annotated
    recordings count only where a selection says what is there.
    """

    from .annotation_index import recording_targets
    from .annotations import Annotation
    from .rules import detect_events
    from .soundscape_metrics import event_metrics, precision_recall_curves, soundscape_metrics

    rules = rules.for_clip(features.clip_seconds)
    labels = list(labels)
    all_targets, all_scores, detections, selections = [], [], [], []
    skipped = [{"path": getattr(s, "path", str(s)), "reason": s.reason} for s in index.skipped]
    for rec, scan in _scans(
        index.recordings, scorer, features, rules, batch_size, desc="soundscapes", progress=progress
    ):
        if not isinstance(scan, ScannedRecording):
            skipped.append({"path": str(rec.path), "reason": str(scan)})
            continue
        targets, known = recording_targets(
            rec,
            scan.starts,
            clip_seconds=features.clip_seconds,
            labels=labels,
            min_overlap=min_overlap,
        )
        all_targets.append(targets[known])
        all_scores.append(scan.scores[known])
        name = str(rec.path)
        for start, end, label, score in detect_events(
            scan.starts,
            scan.scores,
            thresholds=thresholds,
            labels=labels,
            multi_label=multi_label,
            clip_seconds=features.clip_seconds,
            hop_seconds=rules.hop_seconds,
            duration=scan.duration,
        ):
            detections.append(Annotation(name, start, end, labels[label], score=score))
        selections += [a for a in rec.annotations if a.label in labels]
    if not all_scores:
        raise ModelError("no annotated recording could be evaluated (every file was skipped)")
    t, s = np.concatenate(all_targets), np.concatenate(all_scores)
    return {
        "kind": "soundscapes",
        "labels": labels,
        "rules": dataclasses.asdict(rules),
        "multi_label": multi_label,
        "recordings": len(all_scores),
        "window_metrics": soundscape_metrics(t, s, labels),
        "event_metrics": event_metrics(
            detections, selections, labels=labels, min_overlap=min_overlap
        ),
        "thresholds": {k: float(v) for k, v in zip(labels, thresholds)},
        "pr_curves": precision_recall_curves(t, s, labels),
        "collapsed": is_collapsed(s),
        "skipped": skipped,
    }


def _keras_scorer(path: Path) -> tuple[Scorer, FeatureConfig, WindowRules, list[str], bool]:
    from .model import load_keras_model
    from .rundir import RunDir

    config, labels = RunDir(path if path.is_dir() else path.parent).read()
    model = load_keras_model(path)
    return (
        (lambda x: np.asarray(model(x, training=False))),
        config.features,
        config.windows,
        labels,
        config.multi_label,
    )


def _tflite_scorer(path: Path) -> tuple[Scorer, FeatureConfig, WindowRules, list[str], bool]:
    from .inference import Classifier

    clf = Classifier(path)
    return clf.predict_windows, clf.features, clf.rules, list(clf.labels), clf.multi_label


def _model_thresholds(path: Path, labels: Sequence[str], min_score: float | None) -> np.ndarray:
    """Detection thresholds as ``predict`` uses them: ``min_score``, else the model's."""
    if min_score is not None:
        return np.full(len(labels), float(min_score))
    if path.suffix == ".tflite":
        from .inference import Classifier

        chosen = Classifier(path).thresholds or {}
    else:
        from .rundir import RunDir

        chosen = RunDir(path if path.is_dir() else path.parent).read_thresholds() or {}
    return np.array([chosen.get(label, 0.5) for label in labels])


def evaluate(
    model: str | os.PathLike,
    data_dir: str | os.PathLike,
    *,
    output_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    group_pattern: str | None = None,
    min_score: float | None = None,
    min_overlap: float = 0.5,
    species_column: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate a run directory, ``.keras`` or ``.tflite`` model on labelled data.

    ``data_dir`` is either a folder per species (one label per recording: the report
    has per-recording and per-window accuracy, F1 and confusion matrices) or a folder of
    annotated recordings, each with a Raven/Audacity/CSV table beside it (the report is
    :func:`evaluate_soundscapes`'s: cmAP, ROC-AUC and event precision/recall/F1 per
    species at the model's thresholds, or ``min_score``). Folders or rows of species
    the model does not know are skipped and listed in the report. With ``output_dir``
    the report files are written there (see :func:`write_report`).
    """
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"No such model: {path}")
    scorer, features, rules, labels, multi_label = (
        _tflite_scorer(path) if path.suffix == ".tflite" else _keras_scorer(path)
    )
    if _has_tables(data_dir):
        from .annotation_index import index_annotations

        annotated = index_annotations(data_dir, labels=labels, species_column=species_column)
        if annotated.recordings:
            report = evaluate_soundscapes(
                scorer,
                annotated,
                features=features,
                rules=rules,
                labels=labels,
                multi_label=multi_label,
                thresholds=_model_thresholds(path, labels, min_score),
                min_overlap=min_overlap,
                batch_size=batch_size,
                progress=progress,
            )
            report["model"], report["data"] = str(path), str(data_dir)
            if output_dir is not None:
                write_report(report, output_dir)
            return report
    wanted = labels
    if multi_label:  # "no bird" folders are recordings with every species absent
        from .config import is_background

        wanted = labels + sorted(
            p.name for p in Path(data_dir).iterdir() if p.is_dir() and is_background(p.name)
        )
    index = index_dataset(data_dir, group_pattern=group_pattern, labels=wanted, min_species=1)
    skips = SkipLog()
    report = evaluate_index(
        scorer,
        index,
        features=features,
        rules=rules,
        labels=labels,
        multi_label=multi_label,
        batch_size=batch_size,
        skips=skips,
        progress=progress,
    )
    report["skipped"] = [{"path": s.path, "reason": s.reason} for s in index.skipped] + report[
        "skipped"
    ]
    report["model"] = str(path)
    report["data"] = str(data_dir)
    if output_dir is not None:
        write_report(report, output_dir)
    return report


def _markdown(report: dict[str, Any]) -> str:
    lines = [f"# Evaluation report\n\nModel: `{report.get('model', '?')}`  "]
    if report.get("collapsed"):
        lines.append(
            "\n**Warning: the model gives the same output for every window: it "
            "has learnt nothing.** Check the training settings (from scratch, "
            "use the from-scratch schedule) and the data.\n"
        )
    for level in ("per_recording", "per_window"):
        m = report[level]
        lines += [
            f"\n## {level.replace('_', ' ').capitalize()} (n = {m['n']})\n",
            f"- top-1 accuracy: {m['top1_accuracy']:.3f} (chance: "
            f"{m['chance_accuracy']:.3f} guessing, {m['majority_accuracy']:.3f} "
            "always naming the commonest species)",
        ]
        if "top3_accuracy" in m:
            lines.append(f"- top-3 accuracy: {m['top3_accuracy']:.3f}")
        lines += [
            f"- macro F1: {m['macro_f1']:.3f}",
            f"- macro ROC-AUC: {m['macro_roc_auc']:.3f}\n",
            "| species | precision | recall | F1 | support |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
            for k, v in m["per_species"].items()
        ]
    ml = report.get("multi_label_metrics")
    if ml:
        lines += [
            f"\n## Multi-label, per window (n = {ml.get('n_windows', '?')})\n",
            f"- class-mean average precision (cmAP): {_num(ml.get('cmap'))}",
            f"- macro ROC-AUC: {_num(ml.get('macro_roc_auc'))}",
        ]
    th = report.get("thresholds")
    if th:
        rule = "maximum F1" if th["rule"] == "f1" else f"precision >= {th['target_precision']:g}"
        if th.get("floor") is not None:
            rule += f", at least {th['floor']:g}"
        lines += [
            f"\n## Detection thresholds (chosen on these windows: {rule})\n",
            "| species | threshold | precision | recall | note |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {k} | {v['threshold']:.3f} | {_num(v['precision'])} | "
            f"{_num(v['recall'])} | {v.get('note') or ''} |"
            for k, v in th["per_species"].items()
        ]
    skipped = report.get("skipped", [])
    lines.append(f"\n## Skipped files ({len(skipped)})\n")
    lines += [f"- `{s['path']}`: {s['reason']}" for s in skipped] or ["none"]
    return "\n".join(lines) + "\n"


def _has_tables(data_dir: str | os.PathLike) -> bool:
    """True when a folder holds annotation tables (``.txt``/``.csv``) anywhere below."""
    root = Path(data_dir)
    if not root.is_dir():
        return False
    return any(
        p.suffix.lower() in (".txt", ".csv") and not p.name.startswith(".")
        for p in root.rglob("*")
        if p.is_file()
    )


def _num(value: Any) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"
    )


def write_report(report: dict[str, Any], output_dir: str | os.PathLike) -> Path:
    """Write ``report.json``, ``report.md``, ``per_species.csv`` and, per level,
    ``confusion_matrix_<level>.csv`` / ``.png`` into ``output_dir``."""
    from .plots import plot_confusion_matrix

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {k: v for k, v in report.items() if not isinstance(v, np.ndarray)}
    if report.get("kind") == "soundscapes":
        return _write_soundscape_report(report, out)
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
        plot_confusion_matrix(
            cm,
            labels,
            out / f"confusion_matrix_{level}.png",
            title=f"Confusion matrix ({level.replace('_', ' ')})",
        )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["level", "species", "precision", "recall", "f1", "support", "roc_auc"])
    for level in ("per_recording", "per_window"):
        for k, v in report[level]["per_species"].items():
            w.writerow([level, k, v["precision"], v["recall"], v["f1"], v["support"], v["roc_auc"]])
    atomic_write_text(out / "per_species.csv", buf.getvalue())
    return out


def _soundscape_markdown(report: dict[str, Any]) -> str:
    wm, em = report["window_metrics"], report["event_metrics"]
    lines = [
        f"# Soundscape evaluation\n\nModel: `{report.get('model', '?')}`  ",
        f"Data: `{report.get('data', '?')}` ({report['recordings']} annotated recordings)\n",
        f"## Per window (n = {wm['n_windows']})\n",
        f"- class-mean average precision (cmAP): {_num(wm['cmap'])}",
        f"- macro ROC-AUC: {_num(wm['macro_roc_auc'])}\n",
        f"## Events (detections matched to selections covering >= {em['min_overlap']:g} of them)\n",
        f"- overall: precision {_num(em['overall']['precision'])}, recall "
        f"{_num(em['overall']['recall'])}, F1 {_num(em['overall']['f1'])}\n",
        "| species | AP | threshold | events found | false alarms | missed | precision "
        "| recall | F1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label in report["labels"]:
        e, w = em["per_species"][label], wm["per_species"][label]
        lines.append(
            f"| {label} | {_num(w['ap'])} | {report['thresholds'][label]:.3f} | "
            f"{e['tp']} | {e['fp']} | {e['fn']} | {_num(e['precision'])} | "
            f"{_num(e['recall'])} | {_num(e['f1'])} |"
        )
    if report.get("collapsed"):
        lines.append("\n**Warning: the model gives the same output for every window.**")
    skipped = report.get("skipped", [])
    lines.append(f"\n## Skipped ({len(skipped)})\n")
    lines += [f"- `{s['path']}`: {s['reason']}" for s in skipped] or ["none"]
    return "\n".join(lines) + "\n"


def _write_soundscape_report(report: dict[str, Any], out: Path) -> Path:
    """``report.json``, ``report.md``, ``per_species.csv`` and one precision-recall
    curve per species in ``pr_curves.png``."""
    from .plots import plot_precision_recall

    atomic_write_text(out / "report.json", json.dumps(report, indent=2, default=float) + "\n")
    atomic_write_text(out / "report.md", _soundscape_markdown(report))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["species", "ap", "roc_auc", "threshold", "tp", "fp", "fn", "precision", "recall", "f1"]
    )
    for label in report["labels"]:
        wm = report["window_metrics"]["per_species"][label]
        e = report["event_metrics"]["per_species"][label]
        w.writerow(
            [
                label,
                wm["ap"],
                wm["roc_auc"],
                report["thresholds"][label],
                e["tp"],
                e["fp"],
                e["fn"],
                e["precision"],
                e["recall"],
                e["f1"],
            ]
        )
    atomic_write_text(out / "per_species.csv", buf.getvalue())
    plot_precision_recall(report["pr_curves"], report["thresholds"], out / "pr_curves.png")
    return out
