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
import dataclasses
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .._io import check_output_file, printable
from ..annotations import raven_header, raven_rows
from ..audio import is_audio_file
from ..config import check_hop
from ..errors import AudioError, InvalidParameterError, ModelError, parameter_error
from ..inference import (
    Classifier,
    Prediction,
    check_num_threads,
    hop_for_overlap,
    load_classifier,
)
from . import interrupt

__all__ = ["collect_files", "parse_shard", "run_predict"]

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
    """Audio files in the order given: a file as named, a folder's audio files
    (recursively) in sorted order; each file once. The same arguments give the same
    list, so every shard of ``--shard I/N`` sees the same one."""
    found: dict[Path, None] = {}
    for p in map(Path, paths):
        if p.is_dir():
            inside = []
            for root, dirs, files in os.walk(p, followlinks=False):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                inside += [
                    Path(root) / f for f in files if not f.startswith(".") and is_audio_file(f)
                ]
            found.update(dict.fromkeys(sorted(inside)))
        elif p.exists():
            found[p] = None
        else:
            raise FileNotFoundError(f"No such file or folder: {p}")
    return list(found)


def _cell(text: object) -> str:
    return printable(text, newlines=False)


def _top_k_text(pred: Prediction) -> str:
    return "|".join(f"{k}:{v:.4f}" for k, v in pred.top_k)


def _detections_text(pred: Prediction) -> str:
    """Every detection in one CSV cell: ``label start-end score`` joined by ``|``."""
    return "|".join(f"{d.label} {d.start:.3f}-{d.end:.3f} {d.score:.4f}" for d in pred.detections)


class _Writer:
    def __init__(
        self,
        fmt: str,
        out: IO[str],
        clf: Classifier,
        *,
        header: bool = True,
        to_file: bool = False,
        emit=None,
    ) -> None:
        self.fmt, self.out, self.clf = fmt, out, clf
        # Paths stay exact in a file written with -o (--resume matches them); printed on
        # stdout, their control characters are escaped like everything else.
        self.path_text = str if to_file else _cell
        self.selection = 0
        # Each file's lines are written at once (through the progress bar when it shares
        # the terminal, so that bar and results never mix).
        self.emit = emit or (lambda text: (out.write(text), out.flush()))
        self.buf = io.StringIO()
        self.csv = csv.writer(self.buf, lineterminator="\n")
        if header and fmt == "csv":
            self.csv.writerow(CSV_HEADER)
        elif header and fmt == "raven":
            self.buf.write(raven_header() + "\n")
        elif header and fmt == "table":
            self.buf.write(f"{'file':40s} {'species':28s} {'score':>6s}  detections\n")
        self._flush()

    def _flush(self) -> None:
        text = self.buf.getvalue()
        self.buf.seek(0)
        self.buf.truncate()
        if text:
            self.emit(text)

    def write(self, path: Path, pred: Prediction | None, error: str | None) -> None:
        # Labels come from the model file, errors may quote file contents: their control
        # characters are escaped in every text format (JSON escapes them itself).
        label = _cell
        if self.fmt == "json":
            obj = pred.to_dict() if pred else {"path": str(path), "error": error}
            self.buf.write(json.dumps(obj) + "\n")
        elif self.fmt == "csv":
            self.csv.writerow(
                [
                    self.path_text(path),
                    label(pred.label) if pred else "",
                    f"{pred.score:.4f}" if pred else "",
                    label(_top_k_text(pred)) if pred else "",
                    label(_detections_text(pred)) if pred else "",
                    f"{pred.duration:.3f}" if pred else "",
                    label(error or ""),
                ]
            )
        elif self.fmt == "raven":
            f = self.clf.features
            dets = [
                dataclasses.replace(d, label=label(d.label))
                for d in (pred.detections if pred else [])
            ]
            rows = raven_rows(
                dets,
                file=self.path_text(path),
                freq_range=(f.fmin, f.fmax),
                first_selection=self.selection + 1,
            )
            self.selection += len(dets)
            self.buf.write("".join(row + "\n" for row in rows))
        else:
            shown = label(path)
            name = shown if len(shown) <= 40 else "..." + shown[-37:]
            if pred is None:
                self.buf.write(f"{name:40s} error: {label(error)}\n")
            else:
                events = ", ".join(
                    f"{label(d.label)} {d.start:.1f}-{d.end:.1f}s ({d.score:.2f})"
                    for d in pred.detections[:4]
                )
                more = f" +{len(pred.detections) - 4}" if len(pred.detections) > 4 else ""
                self.buf.write(
                    f"{name:40s} {label(pred.label):28s} {pred.score:6.3f}  {events or '-'}{more}\n"
                )
        self._flush()


def _predictions(
    clf: Classifier, files: list[Path], args: argparse.Namespace
) -> Iterator[tuple[Path, Prediction | None, str | None]]:
    for path in files:
        interrupt.check()
        try:
            yield (
                path,
                clf.predict(
                    path,
                    hop_seconds=args.hop_seconds,
                    overlap=args.overlap,
                    top_k=args.top_k,
                    min_score=args.min_score,
                ),
                None,
            )
        except (AudioError, ModelError, OSError) as exc:
            # ModelError: the model gave NaN or non-probabilities for this recording
            yield path, None, str(exc)


def _check_options(args: argparse.Namespace) -> None:
    """Everything that can be checked before reading a file or opening the output."""
    ms = args.min_score
    if ms is not None and not (isinstance(ms, int | float) and 0.0 <= ms <= 1.0):
        raise parameter_error("--min-score", "a number in [0, 1]", ms)
    if not isinstance(args.top_k, int) or args.top_k < 1:
        raise parameter_error("--top-k", "an int >= 1", args.top_k)
    if args.overlap is not None and args.hop_seconds is not None:
        raise InvalidParameterError("Give --hop-seconds or --overlap, not both.")
    if args.overlap is not None and not (
        isinstance(args.overlap, int | float) and 0.0 <= args.overlap < float("inf")
    ):
        raise parameter_error("--overlap", "a number of seconds >= 0", args.overlap)
    check_num_threads(args.threads, name="--threads")
    if getattr(args, "resume", False):
        if not args.output:
            raise parameter_error("--resume", "used with -o/--output (the file to continue)", True)
        if args.format not in ("csv", "json"):
            raise parameter_error(
                "--format",
                "csv or json with --resume (the formats that list every file)",
                args.format,
            )


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
            raise InvalidParameterError(f"{where} is not a readable CSV file ({exc})") from exc
        if not rows or rows[0] != CSV_HEADER:
            raise InvalidParameterError(
                f"{where} does not start with birdsong's CSV header "
                f"({','.join(CSV_HEADER)}); not continuing it"
            )
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != len(CSV_HEADER):
                raise InvalidParameterError(
                    f"{where}, line {line}: {len(row)} fields, "
                    f"expected {len(CSV_HEADER)}; not continuing it"
                )
            done.add(row[0])
    else:
        for line, raw in enumerate(text.splitlines(), start=1):
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
            if not isinstance(obj, dict) or not isinstance(obj.get("path"), str):
                raise InvalidParameterError(
                    f"{where}, line {line}: not a birdsong JSON result; not continuing it"
                )
            done.add(obj["path"])
    if end < len(data):  # a row cut short by a kill: drop it, it is predicted again
        os.truncate(output, end)
    return done


def _per_recording_tables(args: argparse.Namespace, clf: Classifier, files: list[Path]) -> int:
    """``--format raven --tables per-recording``: a Raven table per recording in the
    ``-o`` folder, named so that ``train``/``evaluate`` pair it with its recording."""
    from .._io import check_output_dir
    from ..annotations import write_raven

    folder = check_output_dir(args.output, inputs=[clf.path], name="--output")
    folder.mkdir(parents=True, exist_ok=True)
    failures = 0
    f = clf.features
    for path, pred, error in _predictions(clf, files, args):
        if pred is None:
            failures += 1
            print(f"birdsong: {printable(path)}: {printable(error)}", file=sys.stderr)
            continue
        out = write_raven(
            folder / f"{path.stem}.birdsong.selections.txt",
            pred.detections,
            file=path.name,
            freq_range=(f.fmin, f.fmax),
        )
        print(f"{printable(out)}\t{len(pred.detections)} detection(s)")
    return 1 if failures else 0


def run_predict(args: argparse.Namespace) -> int:
    # 1. options, files, model and output path, all checked before anything is written
    _check_options(args)
    per_recording = getattr(args, "tables", "combined") == "per-recording"
    if per_recording and (args.format != "raven" or not args.output):
        raise parameter_error(
            "--tables", "per-recording only with --format raven and -o FOLDER", args.tables
        )
    resume = bool(getattr(args, "resume", False))
    index, count = parse_shard(args.shard)
    found = collect_files(args.paths)
    if not found:
        print(
            f"birdsong: no audio files found in {', '.join(map(printable, args.paths))} "
            "(WAV, FLAC, OGG, MP3, AIFF)",
            file=sys.stderr,
        )
        return 1
    files = found[index::count]
    kwargs = {"num_threads": args.threads} if args.threads else {}
    clf = load_classifier(args.model, **kwargs)
    if args.overlap is not None:
        hop_for_overlap(clf.clip_seconds, args.overlap, name="--overlap")
    if args.hop_seconds is not None:
        check_hop(args.hop_seconds, clf.clip_seconds, name="--hop-seconds")
    if per_recording:
        return _per_recording_tables(args, clf, files)
    resumed = 0
    header = True
    if args.output:
        output = check_output_file(
            args.output, inputs=[*files, clf.path], name="--output", replace=False
        )
        done = _finished(output, args.format) if resume and output.is_file() else None
        if done is not None:
            header = False
            real = {os.path.realpath(d) for d in done}
            left = [f for f in files if str(f) not in done and os.path.realpath(f) not in real]
            resumed, files = len(files) - len(left), left
    # 2. only now open the output
    mode = "a" if resume else "w"
    out: IO[str] = sys.stdout
    if args.output:  # closed in the finally below
        out = open(args.output, mode, newline="", encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    failures = 0
    try:
        from tqdm.auto import tqdm

        show = not args.quiet and len(files) > 1
        emit = None
        if show and out is sys.stdout:

            def emit(text: str) -> None:  # clear the bar, print, redraw it
                tqdm.write(text, file=sys.stdout, end="")
                sys.stdout.flush()

        writer = _Writer(args.format, out, clf, header=header, to_file=bool(args.output), emit=emit)
        with tqdm(
            total=len(files), unit="file", disable=not show, file=sys.stderr, leave=False
        ) as bar:
            for path, pred, error in _predictions(clf, files, args):
                failures += pred is None
                writer.write(path, pred, error)
                bar.update(1)
    finally:
        if out is not sys.stdout:
            out.close()
    if resumed:
        print(
            f"birdsong: --resume: {resumed} file(s) already in {printable(args.output)} "
            f"skipped, {len(files)} predicted",
            file=sys.stderr,
        )
    if failures:
        print(
            f"birdsong: {failures} of {len(files)} file(s) could not be read (exit status 1)",
            file=sys.stderr,
        )
    return 1 if failures else 0
