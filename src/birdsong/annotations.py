"""Annotation tables (strong labels): Raven selection tables, Audacity labels, plain CSV.

Light tier (numpy and the standard library; no TensorFlow). A table names species per
time span of a recording; :func:`index_annotations` pairs tables with recordings and
:func:`window_labels` turns the spans into per-window multi-hot label vectors.

Formats read
------------
Raven selection table (``.txt``, tab-separated)
    ``Begin Time (s)``, ``End Time (s)``, optional ``Low Freq (Hz)``/``High Freq (Hz)``,
    a species column (``species_column``, or the first of :data:`SPECIES_COLUMNS`
    present), optional ``Begin File`` / ``Begin Path`` naming the recording, optional
    ``File Offset (s)`` (then the row starts at that offset in ``Begin File``, as Raven
    writes for tables spanning several files) and an optional ``Score``/``Confidence``.
    Raven lists a selection once per view (``Waveform 1``, ``Spectrogram 1``); rows that
    repeat a ``Selection`` number are one selection and are read once.
Audacity label track (``.txt``, tab-separated ``start end label``)
    A following line starting with ``\\`` holds the label's frequency range; it is not a
    label of its own (its low/high frequency are attached to the label above it).
CSV (``.csv``, header ``file,start,end,label``)
    Optional ``low_freq``, ``high_freq``, ``score`` columns; names are case-insensitive.

Rows that cannot be used (unparseable numbers, end not after start, an empty label, an
unknown file, times past the end of the recording) are returned as :class:`SkippedRow`
records naming the table and the 1-based line; they never stop a run.

Pairing and completeness
------------------------
A row that names its recording (Raven ``Begin File``/``Begin Path``, CSV ``file``) is
paired by that name: relative to the table's folder, then to the root, then by file
name anywhere under the root. Otherwise the table is paired by its own name:
``rec1.Table.1.selections.txt`` and ``rec1.txt`` both belong to ``rec1.<audio ext>``
(same folder first, then a unique match anywhere under the root).

A recording with a table is *fully annotated* by default: a window with no selection is
a negative for every species ("no bird"). Recordings listed in ``partial`` (or all, with
``partial=True``) are weakly annotated: a window with no selection is unknown, and
:func:`recording_targets` marks it so that training leaves it out.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import numbers
import os
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_write_text
from .audio import AUDIO_EXTENSIONS, audio_info
from .dataset import Skipped
from .errors import AudioError, parameter_error

__all__ = [
    "SPECIES_COLUMNS",
    "AnnotatedRecording",
    "Annotation",
    "AnnotationIndex",
    "AnnotationTable",
    "SkippedRow",
    "index_annotations",
    "read_audacity",
    "read_csv",
    "read_raven",
    "read_table",
    "recording_targets",
    "window_labels",
    "write_raven",
]

log = logging.getLogger(__name__)

SPECIES_COLUMNS: tuple[str, ...] = ("Species", "Annotation", "Label", "Common Name", "Class",
                                    "Species Code", "Sound Type")
"""Species columns tried in order when ``species_column`` is not given."""

TABLE_EXTENSIONS = (".txt", ".csv")
END_TOLERANCE_SECONDS = 0.01
"""A selection may end this far past the end of its recording (rounding); it is clipped."""

_RAVEN_BEGIN, _RAVEN_END = "Begin Time (s)", "End Time (s)"
_RAVEN_LOW, _RAVEN_HIGH = "Low Freq (Hz)", "High Freq (Hz)"
_RAVEN_SUFFIX = re.compile(r"(\.Table\.\d+)?\.selections$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Annotation:
    """One annotated span: ``label`` sings from ``start`` to ``end`` seconds in ``file``.

    ``source`` and ``line`` name the table and its 1-based line; ``score`` is set for
    detections read back from a table written by :func:`write_raven`.
    """

    file: str
    start: float
    end: float
    label: str
    low_freq: float | None = None
    high_freq: float | None = None
    source: str = ""
    line: int = 0
    score: float | None = None


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A table row (or a whole table, ``line`` 0/1) that could not be used, and why."""

    table: str
    line: int
    reason: str

    @property
    def path(self) -> str:
        """``table:line``, so that these list beside :class:`birdsong.dataset.Skipped`."""
        return f"{self.table}:{self.line}"

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class AnnotationTable:
    """A parsed table: its usable rows and the rows it skipped."""

    path: Path
    format: str  # "raven", "audacity" or "csv"
    annotations: list[Annotation] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)


@dataclass(frozen=True)
class AnnotatedRecording:
    """A recording with its selections (``file`` of each is ``str(path)``)."""

    path: Path
    duration: float
    annotations: tuple[Annotation, ...]
    tables: tuple[Path, ...]
    complete: bool = True

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(sorted({a.label for a in self.annotations}))


@dataclass
class AnnotationIndex:
    """What :func:`index_annotations` found under ``root``."""

    root: Path
    labels: tuple[str, ...]
    recordings: list[AnnotatedRecording]
    skipped: list[SkippedRow | Skipped] = field(default_factory=list)
    unannotated: list[Path] = field(default_factory=list)

    def annotations(self) -> list[Annotation]:
        return [a for r in self.recordings for a in r.annotations]


# ------------------------------------------------------------------------------- parsing
def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:  # Raven on Windows writes the ANSI code page
        return data.decode("latin-1")


def _number(text: str | None) -> float | None:
    """A finite float, ``None`` for an empty cell; raises ValueError otherwise."""
    text = (text or "").strip()
    if not text:
        return None
    value = float(text.replace(",", ".")) if text.count(",") == 1 and "." not in text \
        else float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _basename(name: str) -> str:
    """The file name of a path written on any system (``C:\\a\\b.wav`` -> ``b.wav``)."""
    return re.split(r"[\\/]", name.strip())[-1]


def _row(table: AnnotationTable, line: int, file: str, start: str | None, end: str | None,
         label: str | None, low: str | None = None, high: str | None = None,
         score: str | None = None, offset: str | None = None) -> None:
    """Validate one row; append an Annotation or a SkippedRow to ``table``."""
    name = str(table.path)
    values: dict[str, float | None] = {}
    for key, text in (("start", start), ("end", end), ("low frequency", low),
                      ("high frequency", high), ("score", score), ("file offset", offset)):
        try:
            values[key] = _number(text)
        except ValueError:
            table.skipped.append(SkippedRow(name, line, f"{key} {text!r} is not a number"))
            return
    s, e = values["start"], values["end"]
    if s is None or e is None:
        table.skipped.append(SkippedRow(name, line, "missing start or end time"))
        return
    if s < 0:
        table.skipped.append(SkippedRow(name, line, f"start {s:g} s is negative"))
        return
    if e <= s:
        table.skipped.append(SkippedRow(name, line, f"end {e:g} s is not after start {s:g} s"))
        return
    if values["file offset"] is not None:  # Raven: times on a multi-file timeline
        s, e = values["file offset"], values["file offset"] + (e - s)
    label = (label or "").strip()
    if not label:
        table.skipped.append(SkippedRow(name, line, "empty label"))
        return
    lo, hi = values["low frequency"], values["high frequency"]
    if lo is not None and hi is not None and hi < lo:
        table.skipped.append(SkippedRow(name, line, f"high frequency {hi:g} Hz is below "
                                                    f"low frequency {lo:g} Hz"))
        return
    table.annotations.append(Annotation(file, float(s), float(e), label, lo, hi, name, line,
                                        values["score"]))


def read_raven(path: str | os.PathLike, *, species_column: str | None = None,
               file: str = "") -> AnnotationTable:
    """Read a Raven selection table.

    Parameters
    ----------
    path : path
        The ``.txt`` table (tab-separated, one header line).
    species_column : str, optional
        The column holding the species; by default the first of :data:`SPECIES_COLUMNS`
        present (compared case-insensitively).
    file : str, default ""
        The recording for rows without ``Begin File``/``Begin Path``.

    Returns
    -------
    AnnotationTable
        A table without the time or species columns has no rows and one skipped
        record (line 1) saying what is missing.
    """
    path = Path(path)
    table = AnnotationTable(path, "raven")
    lines = _read_text(path).splitlines()
    header = [h.strip() for h in lines[0].split("\t")] if lines else []
    column = {h.lower(): i for i, h in reversed(list(enumerate(header)))}
    if _RAVEN_BEGIN.lower() not in column or _RAVEN_END.lower() not in column:
        table.skipped.append(SkippedRow(str(path), 1, f"not a Raven selection table (no "
                                                      f"{_RAVEN_BEGIN!r}/{_RAVEN_END!r} column)"))
        return table
    tried = (species_column,) if species_column else SPECIES_COLUMNS
    species = next((column[c.lower()] for c in tried if c.lower() in column), None)
    if species is None:
        table.skipped.append(SkippedRow(str(path), 1, f"no species column (tried "
                                                      f"{', '.join(tried)}); pass species_column="))
        return table

    def cell(cells: list[str], name: str) -> str | None:
        i = column.get(name.lower())
        return cells[i] if i is not None and i < len(cells) else None

    rows: dict[str, tuple[int, list[str]]] = {}  # selection id -> (line, cells)
    for number, text in enumerate(lines[1:], start=2):
        if not text.strip():
            continue
        cells = text.split("\t")
        key = (cell(cells, "Selection") or "").strip() or f"line {number}"
        view = (cell(cells, "View") or "").lower()
        if key not in rows or ("spectrogram" in view and "spectrogram" not in
                               (cell(rows[key][1], "View") or "").lower()):
            rows[key] = (number, cells)
    for number, cells in sorted(rows.values(), key=lambda item: item[0]):
        named = cell(cells, "Begin File") or cell(cells, "Begin Path") or ""
        _row(table, number, _basename(named) if named.strip() else file,
             cell(cells, _RAVEN_BEGIN), cell(cells, _RAVEN_END), cell(cells, header[species]),
             cell(cells, _RAVEN_LOW), cell(cells, _RAVEN_HIGH),
             cell(cells, "Score") or cell(cells, "Confidence"),
             cell(cells, "File Offset (s)") if named.strip() else None)
    return table


def read_audacity(path: str | os.PathLike, *, file: str = "") -> AnnotationTable:
    """Read an Audacity label track export (``start<TAB>end<TAB>label`` per line).

    A line starting with ``\\`` holds the frequency range of the label above it; it
    sets that label's ``low_freq``/``high_freq`` and is never a label itself.
    """
    path = Path(path)
    table = AnnotationTable(path, "audacity")
    last_line, timed = -1, 0
    for number, text in enumerate(_read_text(path).splitlines(), start=1):
        if not text.strip():
            continue
        cells = text.split("\t")
        with contextlib.suppress(ValueError, IndexError):
            timed += _number(cells[0]) is not None and _number(cells[1]) is not None
        if text.startswith("\\"):
            if last_line == number - 1 and table.annotations and len(cells) >= 3:
                try:
                    low, high = _number(cells[1]), _number(cells[2])
                except ValueError:
                    continue
                table.annotations[-1] = replace(table.annotations[-1], low_freq=low,
                                                high_freq=high)
            continue
        if len(cells) < 2:
            table.skipped.append(SkippedRow(str(path), number, "expected start, end and label "
                                                                "separated by tabs"))
            continue
        count = len(table.annotations)
        _row(table, number, file, cells[0], cells[1], "\t".join(cells[2:]))
        if len(table.annotations) > count:
            last_line = number
    if not timed and table.skipped:  # a README, not a label track: one record, not one a line
        table.skipped = [SkippedRow(str(path), table.skipped[0].line, "not an annotation table "
                                    "(no line starts with two times separated by a tab)")]
    return table


def read_csv(path: str | os.PathLike) -> AnnotationTable:
    """Read a CSV table with header ``file,start,end,label`` (plus optional
    ``low_freq``, ``high_freq``, ``score``)."""
    path = Path(path)
    table = AnnotationTable(path, "csv")
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    header = next(reader, None)
    names = {h.strip().lower(): i for i, h in enumerate(header or [])}
    missing = [c for c in ("file", "start", "end", "label") if c not in names]
    if missing:
        table.skipped.append(SkippedRow(str(path), 1, f"CSV header lacks {', '.join(missing)} "
                                                      "(need file,start,end,label)"))
        return table
    line = reader.line_num
    for cells in reader:
        number, line = line + 1, reader.line_num
        if not any(c.strip() for c in cells):
            continue

        def cell(name: str, cells: list[str] = cells) -> str | None:
            i = names.get(name)
            return cells[i] if i is not None and i < len(cells) else None

        _row(table, number, (cell("file") or "").strip(), cell("start"), cell("end"),
             cell("label"), cell("low_freq"), cell("high_freq"), cell("score"))
    return table


def _is_raven(path: Path) -> bool:
    with open(path, "rb") as fh:
        return _RAVEN_BEGIN.encode() in fh.readline()


def read_table(path: str | os.PathLike, *, species_column: str | None = None,
               file: str = "") -> AnnotationTable:
    """Read any supported table: ``.csv`` as CSV, a ``.txt`` whose header has
    ``Begin Time (s)`` as Raven, any other ``.txt`` as an Audacity label track."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_csv(path)
    if _is_raven(path):
        return read_raven(path, species_column=species_column, file=file)
    return read_audacity(path, file=file)


# ------------------------------------------------------------------------------- pairing
def _table_stem(path: Path) -> str:
    return _RAVEN_SUFFIX.sub("", path.stem)


def _walk(root: Path) -> tuple[list[Path], list[Path]]:
    audio: list[Path] = []
    tables: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            ext = os.path.splitext(name)[1].lower()
            if ext in AUDIO_EXTENSIONS:
                audio.append(Path(dirpath) / name)
            elif ext in TABLE_EXTENSIONS:
                tables.append(Path(dirpath) / name)
    return audio, tables


def _is_partial(path: Path, partial: bool | Collection[str]) -> bool:
    if isinstance(partial, bool):
        return partial
    return path.name in partial or path.stem in partial or str(path) in partial


def index_annotations(folder: str | os.PathLike, *, species_column: str | None = None,
                      labels: Sequence[str] | None = None,
                      partial: bool | Collection[str] = False) -> AnnotationIndex:
    """Find annotation tables under ``folder`` and pair them with their recordings.

    Parameters
    ----------
    folder : path
        Searched recursively for recordings (:data:`birdsong.audio.AUDIO_EXTENSIONS`)
        and tables (``.txt``, ``.csv``); hidden files are ignored.
    species_column : str, optional
        Raven species column (see :func:`read_raven`).
    labels : sequence of str, optional
        The species to keep (a model's labels); rows naming others are skipped and
        reported. By default every label found, sorted.
    partial : bool or collection of str, default False
        Recordings only partly annotated (by file name, stem or path), or ``True`` for
        all. Every other recording with a table counts as fully annotated.

    Returns
    -------
    AnnotationIndex
        Annotated recordings (sorted by path) with durations read from their headers;
        ``skipped`` lists bad rows, unpaired tables and unreadable recordings;
        ``unannotated`` lists recordings no table names.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"No such annotation folder: {root}")
    audio, tables = _walk(root)
    by_name: dict[str, list[Path]] = {}
    by_stem: dict[str, list[Path]] = {}
    for p in audio:
        by_name.setdefault(p.name, []).append(p)
        by_stem.setdefault(p.stem, []).append(p)
    skipped: list[SkippedRow | Skipped] = []

    def pick(candidates: list[Path], near: Path) -> Path | None:
        local = [p for p in candidates if p.parent == near]
        if len(local) == 1 or len(candidates) == 1:
            return (local or candidates)[0]
        return None

    found: dict[Path, list[Annotation]] = {}
    used_tables: dict[Path, list[Path]] = {}
    for path in tables:
        table = read_table(path, species_column=species_column)
        skipped.extend(table.skipped)
        if not table.annotations:
            continue
        own = pick(by_stem.get(_table_stem(path), []), path.parent)
        orphans: list[Annotation] = []
        for a in table.annotations:
            if a.file:
                exact = [p for p in (path.parent / a.file, root / a.file) if p.is_file()]
                rec = exact[0] if exact else pick(by_name.get(_basename(a.file), []),
                                                  path.parent)
                why = f"unknown file {a.file!r} (no such recording under {root})"
            elif own is None:
                orphans.append(a)
                continue
            else:
                rec = own
            if rec is None:
                skipped.append(SkippedRow(str(path), a.line, why))
                continue
            found.setdefault(rec, []).append(replace(a, file=str(rec)))
            if path not in used_tables.setdefault(rec, []):
                used_tables[rec].append(path)
        if orphans:  # one record for the table, not one per row
            skipped.append(SkippedRow(str(path), orphans[0].line, (
                f"no recording named {_table_stem(path)}.<audio> pairs with this table (or "
                f"several do); {len(orphans)} row(s) left out")))

    wanted = None if labels is None else set(labels)
    recordings: list[AnnotatedRecording] = []
    for rec in sorted(found):
        try:
            duration = audio_info(rec).duration
        except (AudioError, OSError) as exc:
            skipped.append(Skipped(str(rec), str(exc)))
            continue
        keep: list[Annotation] = []
        for a in found[rec]:
            if a.start >= duration:
                why = f"starts at {a.start:g} s, after the recording ends ({duration:g} s)"
            elif a.end > duration + END_TOLERANCE_SECONDS:
                why = f"ends at {a.end:g} s, past the end of the recording ({duration:g} s)"
            elif wanted is not None and a.label not in wanted:
                why = f"label {a.label!r} is not one of the labels"
            else:
                keep.append(replace(a, end=min(a.end, duration)))
                continue
            skipped.append(SkippedRow(a.source, a.line, why))
        recordings.append(AnnotatedRecording(
            rec, duration, tuple(sorted(keep, key=lambda a: (a.start, a.end, a.label))),
            tuple(used_tables[rec]), not _is_partial(rec, partial)))
    final = tuple(labels) if labels is not None else tuple(
        sorted({a.label for r in recordings for a in r.annotations}))
    unannotated = [p for p in audio if p not in found]
    log.info("Annotations: %d recordings, %d labels, %d skipped rows/files",
             len(recordings), len(final), len(skipped))
    return AnnotationIndex(root, final, recordings, skipped, unannotated)


# ------------------------------------------------------------------------------ windows
def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def window_labels(annotations: Iterable[Annotation], window_starts: Sequence[float] | np.ndarray,
                  *, clip_seconds: float, labels: Sequence[str],
                  min_overlap: float = 0.5) -> np.ndarray:
    """Multi-hot labels of the windows of one recording.

    A window ``[w, w + clip_seconds)`` gets a selection's label when their overlap is
    at least ``min_overlap`` times the selection's duration (most of the song lies in
    the window) **or** at least ``min_overlap`` times ``clip_seconds`` (the song fills
    most of the window), and is positive. Comparisons allow 1e-9 s of rounding, so an
    overlap of exactly the fraction counts. Labels outside ``labels`` are ignored.

    Parameters
    ----------
    annotations : iterable of Annotation
        The selections of one recording (all with the same ``file``).
    window_starts : array-like [shape=(n_windows,)]
        Window start times in seconds.
    clip_seconds : float
        Window length in seconds.
    labels : sequence of str
        The label order of the columns.
    min_overlap : float, default 0.5
        Fraction in (0, 1].

    Returns
    -------
    numpy.ndarray [shape=(n_windows, len(labels)), dtype=float32]
    """
    owner = "window_labels"
    if not (_real(min_overlap) and 0 < min_overlap <= 1):
        raise parameter_error("min_overlap", "a fraction in (0, 1]", min_overlap, owner=owner)
    if not (_real(clip_seconds) and math.isfinite(clip_seconds) and clip_seconds > 0):
        raise parameter_error("clip_seconds", "a finite number > 0", clip_seconds, owner=owner)
    annotations = list(annotations)
    files = {a.file for a in annotations}
    if len(files) > 1:
        raise parameter_error("annotations", "the selections of one recording", sorted(files),
                              owner=owner)
    starts = np.asarray(window_starts, dtype=np.float64).reshape(-1)
    column = {label: i for i, label in enumerate(labels)}
    out = np.zeros((starts.size, len(column)), dtype=np.float32)
    kept = [a for a in annotations if a.label in column]
    if not kept or not starts.size:
        return out
    s = np.array([a.start for a in kept])
    e = np.array([a.end for a in kept])
    col = np.array([column[a.label] for a in kept], dtype=np.int64)
    eps = 1e-9
    need = np.minimum(min_overlap * (e - s), min_overlap * clip_seconds) - eps
    step = max(1, 2_000_000 // len(kept))  # bounded memory on long recordings
    for first in range(0, starts.size, step):
        w = starts[first:first + step, None]
        overlap = np.minimum(e[None, :], w + clip_seconds) - np.maximum(s[None, :], w)
        rows, cols = np.nonzero((overlap > eps) & (overlap >= need[None, :]))
        out[first + rows, col[cols]] = 1.0
    return out


def recording_targets(recording: AnnotatedRecording,
                      window_starts: Sequence[float] | np.ndarray, *, clip_seconds: float,
                      labels: Sequence[str], min_overlap: float = 0.5
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Window labels of an annotated recording and which windows can be trusted.

    Returns
    -------
    targets : numpy.ndarray [shape=(n_windows, n_labels), dtype=float32]
        As :func:`window_labels`.
    known : numpy.ndarray [shape=(n_windows,), dtype=bool]
        All true for a fully annotated recording (an empty window is "no bird"); for a
        partial one, only windows with at least one label (the rest are unknown).
    """
    targets = window_labels(recording.annotations, window_starts, clip_seconds=clip_seconds,
                            labels=labels, min_overlap=min_overlap)
    known = np.ones(len(targets), bool) if recording.complete else targets.any(axis=1)
    return targets, known


# ------------------------------------------------------------------------------- writing
_RAVEN_HEADER = ("Selection", "View", "Channel", _RAVEN_BEGIN, _RAVEN_END, _RAVEN_LOW,
                 _RAVEN_HIGH, "Begin File", "File Offset (s)", "Species")


def _clean(text: object) -> str:
    return str(text).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def write_raven(path: str | os.PathLike, detections: Iterable[Any], *, file: str = "",
                freq_range: tuple[float, float] = (0.0, 16000.0)) -> Path:
    """Write selections or detections as a Raven selection table that Raven and
    :func:`read_raven` open.

    Parameters
    ----------
    path : path
        The table to write (e.g. ``rec1.BirdNET.selections.txt``); written atomically.
    detections : iterable
        Objects with ``start``, ``end`` (seconds) and ``label``, optionally ``score``,
        ``file``, ``low_freq``, ``high_freq`` (e.g. :class:`birdsong.inference.Detection`
        or :class:`Annotation`).
    file : str, default ""
        The recording for items without a ``file``; ``Begin File`` holds its file name.
    freq_range : (float, float), default (0, 16000)
        Low/high frequency (Hz) for items without their own.

    Returns
    -------
    Path
        ``path``. Columns: Selection, View, Channel, Begin/End Time (s), Low/High Freq
        (Hz), Begin File, File Offset (s), Species and, when any item has a score, Score.
    """
    items = list(detections)
    scored = any(getattr(d, "score", None) is not None for d in items)
    lines = ["\t".join(_RAVEN_HEADER + (("Score",) if scored else ()))]
    for i, d in enumerate(items, start=1):
        low = getattr(d, "low_freq", None)
        high = getattr(d, "high_freq", None)
        name = _basename(str(getattr(d, "file", "") or file))
        start, end = float(d.start), float(d.end)
        cells = [str(i), "Spectrogram 1", "1", f"{start:.6f}", f"{end:.6f}",
                 f"{freq_range[0] if low is None else low:.3f}",
                 f"{freq_range[1] if high is None else high:.3f}", _clean(name),
                 f"{start:.6f}", _clean(d.label)]
        if scored:
            score = getattr(d, "score", None)
            cells.append("" if score is None else f"{float(score):.6f}")
        lines.append("\t".join(cells))
    return atomic_write_text(path, "\n".join(lines) + "\n")
