"""``birdsong predict``: files and folders in, a table, JSON lines, CSV or Raven out.

Light tier: no TensorFlow. Every option is checked before the output is opened, so a
mistyped option never truncates an earlier result. Results are written and flushed
file by file, so an interrupted run leaves valid output (every finished row of a CSV)
behind, and ``--resume`` continues it: files already in the output are skipped, the
rest appended.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ._io import check_output_file, printable
from .audio import is_audio_file
from .errors import AudioError, InvalidParameterError, ModelError, parameter_error
from .inference import (
    Classifier,
    Prediction,
    check_num_threads,
    hop_for_overlap,
    load_classifier,
)

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
        raise parameter_error("--shard", "I/N with 0 <= I < N (e.g. 0/4)", text)
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


def _cell(text: object) -> str:
    return printable(text, newlines=False)


def _top_k_text(pred: Prediction) -> str:
    return "|".join(f"{k}:{v:.4f}" for k, v in pred.top_k)


class _Writer:
    def __init__(self, fmt: str, out: IO[str], clf: Classifier, *, header: bool = True,
                 to_file: bool = False) -> None:
        self.fmt, self.out, self.clf = fmt, out, clf
        # Paths stay exact in a file written with -o (--resume matches them); printed on
        # stdout, their control characters are escaped like everything else.
        self.path_text = str if to_file else _cell
        self.selection = 0
        self.csv = csv.writer(out, delimiter="\t" if fmt == "raven" else ",",
                              lineterminator="\n")
        if header and fmt == "csv":
            self.csv.writerow(CSV_HEADER)
        elif header and fmt == "raven":
            self.csv.writerow(RAVEN_HEADER)
        elif header and fmt == "table":
            out.write(f"{'file':40s} {'species':28s} {'score':>6s}  detections\n")
        out.flush()

    def write(self, path: Path, pred: Prediction | None, error: str | None) -> None:
        # Labels come from the model file, errors may quote file contents: their control
        # characters are escaped in every text format (JSON escapes them itself).
        label = _cell
        if self.fmt == "json":
            obj = pred.to_dict() if pred else {"path": str(path), "error": error}
            self.out.write(json.dumps(obj) + "\n")
        elif self.fmt == "csv":
            self.csv.writerow([self.path_text(path), label(pred.label) if pred else "",
                               f"{pred.score:.4f}" if pred else "",
                               label(_top_k_text(pred)) if pred else "",
                               len(pred.detections) if pred else "",
                               f"{pred.duration:.3f}" if pred else "", label(error or "")])
        elif self.fmt == "raven":
            f = self.clf.features
            for d in (pred.detections if pred else []):
                self.selection += 1
                self.csv.writerow([self.selection, "Spectrogram 1", 1, self.path_text(path),
                                   f"{d.start:.3f}", f"{d.end:.3f}", f"{f.fmin:g}",
                                   f"{f.fmax:g}", label(d.label), f"{d.score:.4f}"])
        else:
            shown = label(path)
            name = shown if len(shown) <= 40 else "..." + shown[-37:]
            if pred is None:
                self.out.write(f"{name:40s} error: {label(error)}\n")
            else:
                events = ", ".join(f"{label(d.label)} {d.start:.1f}-{d.end:.1f}s "
                                   f"({d.score:.2f})" for d in pred.detections[:4])
                more = f" +{len(pred.detections) - 4}" if len(pred.detections) > 4 else ""
                self.out.write(f"{name:40s} {label(pred.label):28s} {pred.score:6.3f}  "
                               f"{events or '-'}{more}\n")
        self.out.flush()


def _predictions(clf: Classifier, files: list[Path], args: argparse.Namespace
                 ) -> Iterator[tuple[Path, Prediction | None, str | None]]:
    for path in files:
        try:
            yield path, clf.predict(path, hop_seconds=args.hop_seconds, overlap=args.overlap,
                                    top_k=args.top_k, min_score=args.min_score), None
        except (AudioError, ModelError, OSError) as exc:
            # ModelError: the model gave NaN or non-probabilities for this recording
            yield path, None, str(exc)


def _check_options(args: argparse.Namespace) -> None:
    """Everything that can be checked before reading a file or opening the output."""
    ms = args.min_score
    if not (isinstance(ms, int | float) and 0.0 <= ms <= 1.0):
        raise parameter_error("--min-score", "a number in [0, 1]", ms)
    if not isinstance(args.top_k, int) or args.top_k < 1:
        raise parameter_error("--top-k", "an int >= 1", args.top_k)
    if not (isinstance(args.overlap, int | float) and 0.0 <= args.overlap < float("inf")):
        raise parameter_error("--overlap", "a number of seconds >= 0", args.overlap)
    check_num_threads(args.threads, name="--threads")
    if getattr(args, "resume", False):
        if not args.output:
            raise parameter_error("--resume", "used with -o/--output (the file to continue)",
                                  True)
        if args.format not in ("csv", "json"):
            raise parameter_error("--format", "csv or json with --resume (the formats that "
                                  "list every file)", args.format)


def _finished(output: Path, fmt: str) -> set[str] | None:
    """Paths already in an earlier (perhaps interrupted) output; None when it is empty.
    A last line cut off by a kill is removed; anything else unexpected is an error, and
    the file is left as it is."""
    data = output.read_bytes()
    if not data:
        return None
    end = data.rfind(b"\n") + 1
    text = data[:end].decode("utf-8", errors="surrogateescape")
    done: set[str] = set()
    where = f"--resume: {output}"
    if fmt == "csv":
        try:
            rows = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error as exc:
            raise InvalidParameterError(f"{where} is not a readable CSV file ({exc})") \
                from exc
        if not rows or rows[0] != CSV_HEADER:
            raise InvalidParameterError(f"{where} does not start with birdsong's CSV header "
                                        f"({','.join(CSV_HEADER)}); not continuing it")
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != len(CSV_HEADER):
                raise InvalidParameterError(f"{where}, line {line}: {len(row)} fields, "
                                            f"expected {len(CSV_HEADER)}; not continuing it")
            done.add(row[0])
    else:
        for line, raw in enumerate(text.splitlines(), start=1):
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
            if not isinstance(obj, dict) or not isinstance(obj.get("path"), str):
                raise InvalidParameterError(f"{where}, line {line}: not a birdsong JSON "
                                            "result; not continuing it")
            done.add(obj["path"])
    if end < len(data):  # a row cut short by a kill: drop it, it is predicted again
        os.truncate(output, end)
    return done


def run_predict(args: argparse.Namespace) -> int:
    # 1. options, files, model and output path, all checked before anything is written
    _check_options(args)
    resume = bool(getattr(args, "resume", False))
    index, count = parse_shard(args.shard)
    files = collect_files(args.paths)[index::count]
    kwargs = {"num_threads": args.threads} if args.threads else {}
    clf = load_classifier(args.model, **kwargs)
    hop_for_overlap(clf.clip_seconds, args.overlap, name="--overlap")
    resumed = 0
    header = True
    if args.output:
        output = check_output_file(args.output, inputs=[*files, clf.path], name="--output",
                                   replace=False)
        done = _finished(output, args.format) if resume and output.is_file() else None
        if done is not None:
            header = False
            real = {os.path.realpath(d) for d in done}
            left = [f for f in files if str(f) not in done and os.path.realpath(f) not in real]
            resumed, files = len(files) - len(left), left
    # 2. only now open the output
    mode = "a" if resume else "w"
    out: IO[str] = (open(args.output, mode, newline="", encoding="utf-8",  # noqa: SIM115
                         errors="surrogateescape")
                    if args.output
                    else sys.stdout)
    failures = 0
    try:
        writer = _Writer(args.format, out, clf, header=header, to_file=bool(args.output))
        from tqdm.auto import tqdm

        show = not args.quiet and len(files) > 1
        for path, pred, error in tqdm(_predictions(clf, files, args), total=len(files),
                                      unit="file", disable=not show, file=sys.stderr):
            failures += pred is None
            writer.write(path, pred, error)
    finally:
        if out is not sys.stdout:
            out.close()
    if resumed:
        print(f"birdsong: --resume: {resumed} file(s) already in {printable(args.output)} "
              f"skipped, {len(files)} predicted", file=sys.stderr)
    if failures:
        print(f"birdsong: {failures} of {len(files)} file(s) could not be read",
              file=sys.stderr)
    return 1 if files and failures == len(files) else 0
