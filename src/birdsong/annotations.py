"""Annotation tables (strong labels): Raven selection tables, Audacity labels, plain CSV.

Light tier (numpy and the standard library; no TensorFlow). A table names species per
time span of a recording. This module reads and writes tables;
:mod:`birdsong.annotation_index` pairs them with recordings and turns the spans into
per-window label vectors.

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

Rows that cannot be used (unparseable numbers, end not after start, an empty label)
are returned as :class:`SkippedRow` records naming the table and the 1-based line;
they never stop a run.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._io import atomic_write_text

__all__ = [
    "SPECIES_COLUMNS",
    "Annotation",
    "AnnotationTable",
    "SkippedRow",
    "read_audacity",
    "read_csv",
    "read_raven",
    "raven_header",
    "raven_rows",
    "read_table",
    "write_raven",
]

SPECIES_COLUMNS: tuple[str, ...] = (
    "Species",
    "Annotation",
    "Label",
    "Common Name",
    "Class",
    "Species Code",
)
"""Species columns tried in order when ``species_column`` is not given."""

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
    value = (
        float(text.replace(",", ".")) if text.count(",") == 1 and "." not in text else float(text)
    )
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _basename(name: str) -> str:
    """The file name of a path written on any system (``C:\\a\\b.wav`` -> ``b.wav``)."""
    return re.split(r"[\\/]", name.strip())[-1]


def _row(
    table: AnnotationTable,
    line: int,
    file: str,
    start: str | None,
    end: str | None,
    label: str | None,
    low: str | None = None,
    high: str | None = None,
    score: str | None = None,
    offset: str | None = None,
) -> None:
    """Validate one row; append an Annotation or a SkippedRow to ``table``."""
    name = str(table.path)
    values: dict[str, float | None] = {}
    for key, text in (
        ("start", start),
        ("end", end),
        ("low frequency", low),
        ("high frequency", high),
        ("score", score),
        ("file offset", offset),
    ):
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
        table.skipped.append(
            SkippedRow(name, line, f"high frequency {hi:g} Hz is below low frequency {lo:g} Hz")
        )
        return
    table.annotations.append(
        Annotation(file, float(s), float(e), label, lo, hi, name, line, values["score"])
    )


def read_raven(
    path: str | os.PathLike, *, species_column: str | None = None, file: str = ""
) -> AnnotationTable:
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
        table.skipped.append(
            SkippedRow(
                str(path),
                1,
                f"not a Raven selection table (no {_RAVEN_BEGIN!r}/{_RAVEN_END!r} column)",
            )
        )
        return table
    tried = (species_column,) if species_column else SPECIES_COLUMNS
    species = next((column[c.lower()] for c in tried if c.lower() in column), None)
    if species is None:
        table.skipped.append(
            SkippedRow(
                str(path), 1, f"no species column (tried {', '.join(tried)}); pass species_column="
            )
        )
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
        if key not in rows or (
            "spectrogram" in view
            and "spectrogram" not in (cell(rows[key][1], "View") or "").lower()
        ):
            rows[key] = (number, cells)
    for number, cells in sorted(rows.values(), key=lambda item: item[0]):
        named = cell(cells, "Begin File") or cell(cells, "Begin Path") or ""
        _row(
            table,
            number,
            _basename(named) if named.strip() else file,
            cell(cells, _RAVEN_BEGIN),
            cell(cells, _RAVEN_END),
            cell(cells, header[species]),
            cell(cells, _RAVEN_LOW),
            cell(cells, _RAVEN_HIGH),
            cell(cells, "Score") or cell(cells, "Confidence"),
            cell(cells, "File Offset (s)") if named.strip() else None,
        )
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
                table.annotations[-1] = replace(table.annotations[-1], low_freq=low, high_freq=high)
            continue
        if len(cells) < 2:
            table.skipped.append(
                SkippedRow(str(path), number, "expected start, end and label separated by tabs")
            )
            continue
        count = len(table.annotations)
        _row(table, number, file, cells[0], cells[1], "\t".join(cells[2:]))
        if len(table.annotations) > count:
            last_line = number
    if not timed and table.skipped:  # a README, not a label track: one record, not one a line
        table.skipped = [
            SkippedRow(
                str(path),
                table.skipped[0].line,
                "not an annotation table (no line starts with two times separated by a tab)",
            )
        ]
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
        table.skipped.append(
            SkippedRow(
                str(path), 1, f"CSV header lacks {', '.join(missing)} (need file,start,end,label)"
            )
        )
        return table
    line = reader.line_num
    for cells in reader:
        number, line = line + 1, reader.line_num
        if not any(c.strip() for c in cells):
            continue

        def cell(name: str, cells: list[str] = cells) -> str | None:
            i = names.get(name)
            return cells[i] if i is not None and i < len(cells) else None

        _row(
            table,
            number,
            (cell("file") or "").strip(),
            cell("start"),
            cell("end"),
            cell("label"),
            cell("low_freq"),
            cell("high_freq"),
            cell("score"),
        )
    return table


def _is_raven(path: Path) -> bool:
    with open(path, "rb") as fh:
        return _RAVEN_BEGIN.encode() in fh.readline()


def read_table(
    path: str | os.PathLike, *, species_column: str | None = None, file: str = ""
) -> AnnotationTable:
    """Read any supported table: ``.csv`` as CSV, a ``.txt`` whose header has
    ``Begin Time (s)`` as Raven, any other ``.txt`` as an Audacity label track."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_csv(path)
    if _is_raven(path):
        return read_raven(path, species_column=species_column, file=file)
    return read_audacity(path, file=file)


# ------------------------------------------------------------------------------- writing
_RAVEN_HEADER = (
    "Selection",
    "View",
    "Channel",
    _RAVEN_BEGIN,
    _RAVEN_END,
    _RAVEN_LOW,
    _RAVEN_HIGH,
    "Begin File",
    "File Offset (s)",
    "Species",
)


def _clean(text: object) -> str:
    return str(text).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def write_raven(
    path: str | os.PathLike,
    detections: Iterable[Any],
    *,
    file: str = "",
    freq_range: tuple[float, float] = (0.0, 16000.0),
) -> Path:
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
    lines = [raven_header(scored=scored)]
    lines += raven_rows(items, file=file, freq_range=freq_range, scored=scored)
    return atomic_write_text(path, "\n".join(lines) + "\n")


def raven_header(*, scored: bool = True) -> str:
    """The header line of the tables :func:`write_raven` writes (no line break)."""
    return "\t".join(_RAVEN_HEADER + (("Score",) if scored else ()))


def raven_rows(
    detections: Iterable[Any],
    *,
    file: str = "",
    freq_range: tuple[float, float] = (0.0, 16000.0),
    first_selection: int = 1,
    scored: bool = True,
) -> list[str]:
    """Table lines (no line breaks) for ``detections``, numbered from
    ``first_selection``: what :func:`write_raven` writes, for a writer that streams a
    table recording by recording (``birdsong predict --format raven``)."""
    lines = []
    for i, d in enumerate(detections, start=first_selection):
        low = getattr(d, "low_freq", None)
        high = getattr(d, "high_freq", None)
        name = _basename(str(getattr(d, "file", "") or file))
        start, end = float(d.start), float(d.end)
        cells = [
            str(i),
            "Spectrogram 1",
            "1",
            f"{start:.6f}",
            f"{end:.6f}",
            f"{freq_range[0] if low is None else low:.3f}",
            f"{freq_range[1] if high is None else high:.3f}",
            _clean(name),
            f"{start:.6f}",
            _clean(d.label),
        ]
        if scored:
            score = getattr(d, "score", None)
            cells.append("" if score is None else f"{float(score):.6f}")
        lines.append("\t".join(cells))
    return lines
