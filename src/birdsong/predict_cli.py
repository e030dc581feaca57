"""``birdsong predict``: files and folders in, a table, JSON lines, CSV or Raven out.

Light tier: no TensorFlow. Results are written and flushed file by file, so an
interrupted run leaves valid output (every finished row of a CSV) behind.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .audio import is_audio_file
from .errors import AudioError, InvalidParameterError
from .inference import Classifier, Prediction, load_classifier

__all__ = ["collect_files", "parse_shard", "run_predict"]

RAVEN_HEADER = ["Selection", "View", "Channel", "Begin File", "Begin Time (s)",
                "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)", "Species", "Score"]
CSV_HEADER = ["path", "label", "score", "top_k", "detections", "duration", "error"]


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N; None -> (0, 1)."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        i, n = -1, 0
    if not (n >= 1 and 0 <= i < n):
        raise InvalidParameterError(f"The '--shard' parameter must be I/N with 0 <= I < N "
                                    f"(e.g. 0/4). Got {text!r} instead.")
    return i, n


def collect_files(paths: list[str]) -> list[Path]:
    """Audio files named directly, plus those found recursively in named folders; sorted
    and de-duplicated so that every shard sees the same list."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            for root, dirs, files in os.walk(p, followlinks=False):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                found.update(Path(root) / f for f in files
                             if not f.startswith(".") and is_audio_file(f))
        elif p.exists():
            found.add(p)
        else:
            raise FileNotFoundError(f"No such file or folder: {p}")
    return sorted(found)


def _top_k_text(pred: Prediction) -> str:
    return "|".join(f"{k}:{v:.4f}" for k, v in pred.top_k)


class _Writer:
    def __init__(self, fmt: str, out: IO[str], clf: Classifier) -> None:
        self.fmt, self.out, self.clf = fmt, out, clf
        self.selection = 0
        self.csv = csv.writer(out, delimiter="\t" if fmt == "raven" else ",",
                              lineterminator="\n")
        if fmt == "csv":
            self.csv.writerow(CSV_HEADER)
        elif fmt == "raven":
            self.csv.writerow(RAVEN_HEADER)
        elif fmt == "table":
            out.write(f"{'file':40s} {'species':28s} {'score':>6s}  detections\n")
        out.flush()

    def write(self, path: Path, pred: Prediction | None, error: str | None) -> None:
        if self.fmt == "json":
            obj = pred.to_dict() if pred else {"path": str(path), "error": error}
            self.out.write(json.dumps(obj) + "\n")
        elif self.fmt == "csv":
            self.csv.writerow([str(path), pred.label if pred else "",
                               f"{pred.score:.4f}" if pred else "",
                               _top_k_text(pred) if pred else "",
                               len(pred.detections) if pred else "",
                               f"{pred.duration:.3f}" if pred else "", error or ""])
        elif self.fmt == "raven":
            f = self.clf.features
            for d in (pred.detections if pred else []):
                self.selection += 1
                self.csv.writerow([self.selection, "Spectrogram 1", 1, str(path),
                                   f"{d.start:.3f}", f"{d.end:.3f}", f"{f.fmin:g}",
                                   f"{f.fmax:g}", d.label, f"{d.score:.4f}"])
        else:
            name = str(path) if len(str(path)) <= 40 else "..." + str(path)[-37:]
            if pred is None:
                self.out.write(f"{name:40s} error: {error}\n")
            else:
                events = ", ".join(f"{d.label} {d.start:.1f}-{d.end:.1f}s ({d.score:.2f})"
                                   for d in pred.detections[:4])
                more = f" +{len(pred.detections) - 4}" if len(pred.detections) > 4 else ""
                self.out.write(f"{name:40s} {pred.label:28s} {pred.score:6.3f}  "
                               f"{events or '-'}{more}\n")
        self.out.flush()


def _predictions(clf: Classifier, files: list[Path], args: argparse.Namespace
                 ) -> Iterator[tuple[Path, Prediction | None, str | None]]:
    for path in files:
        try:
            yield path, clf.predict(path, hop_seconds=args.hop_seconds, overlap=args.overlap,
                                    top_k=args.top_k, min_score=args.min_score), None
        except (AudioError, OSError) as exc:
            yield path, None, str(exc)


def run_predict(args: argparse.Namespace) -> int:
    index, count = parse_shard(args.shard)
    files = collect_files(args.paths)[index::count]
    kwargs = {"num_threads": args.threads} if args.threads else {}
    clf = load_classifier(args.model, **kwargs)
    out: IO[str] = (open(args.output, "w", newline="", encoding="utf-8")  # noqa: SIM115
                    if args.output
                    else sys.stdout)
    failures = 0
    try:
        writer = _Writer(args.format, out, clf)
        from tqdm.auto import tqdm

        show = not args.quiet and len(files) > 1
        for path, pred, error in tqdm(_predictions(clf, files, args), total=len(files),
                                      unit="file", disable=not show, file=sys.stderr):
            failures += pred is None
            writer.write(path, pred, error)
    finally:
        if out is not sys.stdout:
            out.close()
    if failures:
        print(f"birdsong: {failures} of {len(files)} file(s) could not be read",
              file=sys.stderr)
    return 1 if files and failures == len(files) else 0
