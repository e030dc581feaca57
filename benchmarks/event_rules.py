"""How detections are timed and thresholded, measured on the demo's annotated soundscapes.

For each seed, ``birdsong demo`` is run into ``WORK/seed-S`` (skipped when that folder
already holds a finished run). With ``--overlay P`` the demo's training settings are
trained again on the same data with ``augment.overlay_probability`` P, into
``WORK/seed-S/run-overlay-P`` (``--overlay 0``: the multi-label demo as it trained
before overlays were its default). The model is then rescored, without retraining,
under:

- two timing rules for a run of windows that name a species:
  ``first-last-note`` (the rule before commit cbe02e8: the song began in the part of the first
  window that the window before did not cover, and ended in the part of the last that
  the window after does not cover) and ``middle`` (each window answers for its middle
  hop, :func:`birdsong.rules.detect_events` now);
- three threshold rules, all chosen on the run's validation windows: ``best-F1``,
  ``best-F1, floor 0.5`` (what training now saves for sigmoid outputs) and ``midway,
  floor 0.5`` (each floored threshold moved halfway down to the next lower validation
  score, which gives the same validation precision and recall: tried, not adopted).

Event precision, recall and F1 are counted as ``birdsong evaluate`` counts them (one
detection per selection, the detection covering at least half of the selection), and
also with intersection over union >= 0.5, which rewards tight boundaries.

    .venv/bin/python benchmarks/event_rules.py --seeds 0 1 2 --work /tmp/event-rules
    .venv/bin/python benchmarks/event_rules.py --seeds 0 --weights path/to/no_top.h5
    .venv/bin/python benchmarks/event_rules.py --seeds 0 1 2 --overlay 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def previous_rule(
    starts, scores, *, thresholds, labels, multi_label, clip_seconds, hop_seconds, duration
):
    """The timing rule before commit cbe02e8, kept here for comparison; called as
    :func:`birdsong.rules.detect_events` is."""
    clip, hop = clip_seconds, hop_seconds
    from birdsong.config import is_background

    active = scores >= thresholds[None, :]
    if not multi_label:
        active &= np.arange(scores.shape[1])[None, :] == scores.argmax(axis=1)[:, None]
    for i, name in enumerate(labels):
        if is_background(name):
            active[:, i] = False
    events = []
    for label in np.flatnonzero(active.any(axis=0)):
        on = np.concatenate([[False], active[:, label], [False]])
        edges = np.flatnonzero(on[1:] != on[:-1])
        for first, stop in zip(edges[::2], edges[1::2]):
            last = stop - 1
            s0, s1 = float(starts[first]), float(starts[last])
            start = 0.0 if first == 0 else s0 + clip - hop
            end = duration if last == len(starts) - 1 else s1 + hop
            if start >= end:
                centre = (s0 + s1 + clip) / 2
                start, end = max(0.0, centre - hop / 2), min(duration, centre + hop / 2)
            best = float(scores[first:stop, label].max())
            events.append((start, min(end, duration), int(label), best))
    return events


def midway(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Each threshold moved halfway down to the next lower validation score of its
    species: the same precision and recall on the validation windows (no window scores
    in between), more room for field windows a little below the clean ones."""
    out = np.array(thresholds, dtype=np.float64)
    for k in range(scores.shape[1]):
        below = scores[:, k][scores[:, k] < out[k]]
        if below.size:
            out[k] = (out[k] + below.max()) / 2
    return out


def _demo(seed: int, folder: Path, weights: str) -> None:
    if (folder / "run" / "model.tflite").is_file() and (folder / "soundscapes").is_dir():
        return
    exe = Path(sys.executable).with_name("birdsong")
    cmd = [str(exe), "demo", str(folder), "--seed", str(seed), "--weights", weights]
    print("running", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _retrain(seed: int, folder: Path, weights: str, overlay: float) -> Path:
    """The demo's training settings with ``overlay`` on the demo's data; the run dir."""
    import dataclasses

    from birdsong.demo import demo_config
    from birdsong.workflow import train

    run = folder / f"run-overlay-{overlay:g}"
    if not (run / "model.tflite").is_file():
        config = demo_config(weights=None if weights.lower() == "none" else weights, seed=seed)
        augment = dataclasses.replace(config.augment, overlay_probability=overlay)
        print(f"training {run}", flush=True)
        train(folder / "data", run, config=dataclasses.replace(config, augment=augment))
    return run


def measure(folder: Path, run: Path | None = None) -> dict:
    from birdsong.annotation_index import index_annotations
    from birdsong.annotations import Annotation
    from birdsong.dataset import index_dataset, split_from_csv
    from birdsong.evaluation import evaluate_index
    from birdsong.inference import Classifier
    from birdsong.rules import detect_events, scan_recording
    from birdsong.soundscape_metrics import event_metrics
    from birdsong.thresholds import SIGMOID_FLOOR, choose_thresholds

    run = run or folder / "run"
    clf = Classifier(run / "model.tflite")
    labels = list(clf.labels)
    split = split_from_csv(index_dataset(folder / "data"), run / "split.csv")
    val = evaluate_index(
        clf.predict_windows,
        split["validation"],
        features=clf.features,
        rules=clf.rules,
        labels=labels,
        multi_label=clf.multi_label,
    )
    vs, vt = val["window_scores"], val["window_targets"]
    floored = choose_thresholds(vs, vt, labels, floor=SIGMOID_FLOOR).thresholds
    chosen = {
        "best-F1": choose_thresholds(vs, vt, labels).thresholds,
        "best-F1, floor 0.5": floored,
        "midway, floor 0.5": np.maximum(midway(vs, floored), SIGMOID_FLOOR),
    }
    hop, clip = clf.rules.hop_seconds, clf.features.clip_seconds
    scans = []
    for rec in index_annotations(folder / "soundscapes").recordings:
        scan = scan_recording(rec.path, clf.predict_windows, features=clf.features, hop_seconds=hop)
        scans.append((rec, scan))

    out = {}
    for rule_name, rule in (("first-last-note", previous_rule), ("middle", detect_events)):
        for thr_name, thr in chosen.items():
            detections, selections = [], []
            for rec, scan in scans:
                for start, end, k, score in rule(
                    scan.starts,
                    scan.scores,
                    thresholds=thr,
                    labels=labels,
                    multi_label=clf.multi_label,
                    clip_seconds=clip,
                    hop_seconds=hop,
                    duration=scan.duration,
                ):
                    detections.append(Annotation(str(rec.path), start, end, labels[k], score=score))
                selections += [a for a in rec.annotations if a.label in labels]
            for overlap in ("annotation", "iou"):
                m = event_metrics(detections, selections, labels=labels, overlap=overlap)["overall"]
                out[f"{rule_name} | {thr_name} | {overlap}"] = m
    return {
        "hop_seconds": hop,
        "clip_seconds": clip,
        "results": out,
        "songs_by_best_score": best_scores(scans, labels, clip, floored),
    }


def best_scores(scans, labels, clip: float, thresholds: np.ndarray) -> dict[str, dict[str, int]]:
    """Each annotated song's best score for its species over the windows that hold all of
    it (or, for a song longer than a window, that overlap it), counted in bands: how
    many songs the model does not hear at all, and how many only a lower threshold
    would find; and of each band, how many overlap a song of another species."""
    names = ("under 0.1", "0.1 to 0.5", "0.5 to its threshold", "at or over")
    bands = {name: {"songs": 0, "overlapping another species": 0} for name in names}
    for rec, scan in scans:
        ends = scan.starts + clip
        for a in rec.annotations:
            if a.label not in labels:
                continue
            k = labels.index(a.label)
            holds = (scan.starts <= a.start + 1e-6) & (ends >= a.end - 1e-6)
            if not holds.any():
                holds = (scan.starts < a.end) & (ends > a.start)
            best = float(scan.scores[holds, k].max())
            if best < 0.1:
                band = names[0]
            elif best < 0.5:
                band = names[1]
            elif best < thresholds[k]:
                band = names[2]
            else:
                band = names[3]
            bands[band]["songs"] += 1
            bands[band]["overlapping another species"] += any(
                b.label != a.label and b.start < a.end and b.end > a.start for b in rec.annotations
            )
    return bands


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--weights", default="none", help="as birdsong demo --weights")
    parser.add_argument(
        "--overlay",
        type=float,
        help="retrain the demo's model with this overlay probability (default: the demo's own)",
    )
    parser.add_argument("--work", default="event-rules-work", help="demo folders go here")
    parser.add_argument("--out", default="benchmarks/results/event-rules.json")
    args = parser.parse_args()
    work = Path(args.work)
    per_seed = {}
    for seed in args.seeds:
        folder = work / f"seed-{seed}"
        _demo(seed, folder, args.weights)
        run = None if args.overlay is None else _retrain(seed, folder, args.weights, args.overlay)
        per_seed[seed] = measure(folder, run)
    keys = list(per_seed[args.seeds[0]]["results"])
    print(f"\nevent precision / recall / F1 on the demo soundscapes, seeds {args.seeds}")
    print(
        f"{'timing | thresholds | overlap >= 0.5 of':52s} {'P':>6s} {'R':>6s} {'F1':>6s}  F1 per seed"
    )
    summary = {}
    for key in keys:
        rows = [per_seed[s]["results"][key] for s in args.seeds]
        mean = {
            m: statistics.fmean(r[m] or 0.0 for r in rows) for m in ("precision", "recall", "f1")
        }
        summary[key] = {**mean, "f1_per_seed": [r["f1"] for r in rows]}
        seeds = " ".join(f"{r['f1'] or 0:.3f}" for r in rows)
        print(
            f"{key:52s} {mean['precision']:6.3f} {mean['recall']:6.3f} {mean['f1']:6.3f}  {seeds}"
        )
    print("\nsongs by their best score (windows holding them; thresholds floored at 0.5):")
    for seed in args.seeds:
        print(f"  seed {seed}: {per_seed[seed]['songs_by_best_score']}")
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
        "weights": args.weights,
        "overlay": args.overlay,
        "seeds": args.seeds,
        "mean": summary,
        "per_seed": per_seed,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
