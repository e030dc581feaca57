"""Pair annotation tables with their recordings; per-window labels from selections.

Pairing
-------
A row that names its recording (Raven ``Begin File``/``Begin Path``, CSV ``file``) is
paired by that name: relative to the table's folder, then to the root, then by file
name anywhere under the root. Otherwise the table is paired by its own name:
``rec1.Table.1.selections.txt`` and ``rec1.txt`` both belong to ``rec1.<audio ext>``
(same folder first, then a unique match anywhere under the root). Rows naming an
unknown file, or starting/ending past the end of the recording, are reported as
:class:`birdsong.annotations.SkippedRow` records; an unpaired table is reported once.

Completeness
------------
A recording with a table is *fully annotated* by default: a window with no selection is
a negative for every species ("no bird"). Recordings listed in ``partial`` (or all, with
``partial=True``) are weakly annotated: a window with no selection is unknown, and
:func:`recording_targets` marks it so that training leaves it out.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import random
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .annotations import _RAVEN_SUFFIX, Annotation, SkippedRow, _basename, read_table
from .audio import AUDIO_EXTENSIONS, audio_info
from .dataset import Recording, Skipped
from .errors import AudioError, parameter_error

__all__ = [
    "AnnotatedRecording",
    "AnnotationIndex",
    "index_annotations",
    "recording_targets",
    "window_labels",
]

log = logging.getLogger(__name__)

TABLE_EXTENSIONS = (".txt", ".csv")
END_TOLERANCE_SECONDS = 0.01
"""A selection may end this far past the end of its recording (rounding); it is clipped."""


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
    if isinstance(partial, str):  # one name, not its characters
        partial = {partial}
    return path.name in partial or path.stem in partial or str(path) in partial


def index_annotations(
    folder: str | os.PathLike,
    *,
    species_column: str | None = None,
    labels: Sequence[str] | None = None,
    partial: bool | Collection[str] = False,
) -> AnnotationIndex:
    """Find annotation tables under ``folder`` and pair them with their recordings.

    Parameters
    ----------
    folder : path
        Searched recursively for recordings (:data:`birdsong.audio.AUDIO_EXTENSIONS`)
        and tables (``.txt``, ``.csv``); hidden files are ignored.
    species_column : str, optional
        Raven species column (see :func:`birdsong.annotations.read_raven`).
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
        try:
            table = read_table(path, species_column=species_column)
        except OSError as exc:
            skipped.append(Skipped(str(path), f"cannot read the table: {exc}"))
            continue
        skipped.extend(table.skipped)
        if not table.annotations:
            continue
        own = pick(by_stem.get(_table_stem(path), []), path.parent)
        orphans: list[Annotation] = []
        for a in table.annotations:
            if a.file:
                exact = [p for p in (path.parent / a.file, root / a.file) if p.is_file()]
                rec = exact[0] if exact else pick(by_name.get(_basename(a.file), []), path.parent)
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
            skipped.append(
                SkippedRow(
                    str(path),
                    orphans[0].line,
                    (
                        f"no recording named {_table_stem(path)}.<audio> pairs with this table (or "
                        f"several do); {len(orphans)} row(s) left out"
                    ),
                )
            )

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
        recordings.append(
            AnnotatedRecording(
                rec,
                duration,
                tuple(sorted(keep, key=lambda a: (a.start, a.end, a.label))),
                tuple(used_tables[rec]),
                not _is_partial(rec, partial),
            )
        )
    final = (
        tuple(labels)
        if labels is not None
        else tuple(sorted({a.label for r in recordings for a in r.annotations}))
    )
    unannotated = [p for p in audio if p not in found]
    log.info(
        "Annotations: %d recordings, %d labels, %d skipped rows/files",
        len(recordings),
        len(final),
        len(skipped),
    )
    return AnnotationIndex(root, final, recordings, skipped, unannotated)


# ------------------------------------------------------------------------------ windows
def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def window_labels(
    annotations: Iterable[Annotation],
    window_starts: Sequence[float] | np.ndarray,
    *,
    clip_seconds: float,
    labels: Sequence[str],
    min_overlap: float = 0.5,
) -> np.ndarray:
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
        raise parameter_error(
            "annotations", "the selections of one recording", sorted(files), owner=owner
        )
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
        w = starts[first : first + step, None]
        overlap = np.minimum(e[None, :], w + clip_seconds) - np.maximum(s[None, :], w)
        rows, cols = np.nonzero((overlap > eps) & (overlap >= need[None, :]))
        out[first + rows, col[cols]] = 1.0
    return out


def recording_targets(
    recording: AnnotatedRecording,
    window_starts: Sequence[float] | np.ndarray,
    *,
    clip_seconds: float,
    labels: Sequence[str],
    min_overlap: float = 0.5,
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
    targets = window_labels(
        recording.annotations,
        window_starts,
        clip_seconds=clip_seconds,
        labels=labels,
        min_overlap=min_overlap,
    )
    known = np.ones(len(targets), bool) if recording.complete else targets.any(axis=1)
    return targets, known


def annotated_recordings(
    folder: str | os.PathLike,
    *,
    validation_fraction: float,
    seed: int,
    species_column: str | None = None,
) -> tuple[list[Recording], list[Recording], list[Skipped], tuple[str, ...]]:
    """Recordings with annotation tables (Raven, Audacity, CSV) under ``folder``, split
    by recording: ``(train, validation, skipped, species found)``. Bad rows and
    unpaired tables are in ``skipped`` with the table's name and line."""
    found = index_annotations(folder, species_column=species_column)
    recs = [
        Recording(
            r.path, "", r.path.as_posix(), r.duration, tuple(r.annotations), r.complete, strong=True
        )
        for r in found.recordings
    ]
    order = list(range(len(recs)))
    random.Random(seed).shuffle(order)
    n_val = int(round(validation_fraction * len(recs))) if len(recs) > 1 else 0
    val = [recs[i] for i in sorted(order[:n_val])]
    train = [recs[i] for i in sorted(order[n_val:])]
    skipped = [Skipped(getattr(s, "path", str(s)), s.reason) for s in found.skipped]
    return train, val, skipped, tuple(found.labels)
