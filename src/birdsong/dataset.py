"""Index a folder-per-species tree of recordings and split it by recording.

Light tier (no TensorFlow): walking folders, reading headers, choosing splits. The
``tf.data`` pipeline that decodes and windows the recordings lives in
:mod:`birdsong.pipeline`.

Layout::

    DATA_DIR/
      Common_Blackbird/  XC123456.mp3  blackbird_ind02_rec01.wav ...
      Coal_Tit/          ...

Every file that cannot be used is listed in ``DatasetIndex.skipped`` with the reason;
nothing is dropped silently and nothing stops the run.

Files are indexed by what they are (device and inode), not what they are called: a
recording reachable under two species (a folder symlink from one species into another,
a hard link) is skipped and reported, never used under both labels or on both sides
of a split; a recording reachable twice under one species is used once.
"""

from __future__ import annotations

import csv
import logging
import os
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio import AUDIO_EXTENSIONS, audio_info
from .config import DEFAULT_GROUP_PATTERN, is_background
from .errors import AudioError, DatasetError, parameter_error

__all__ = [
    "DatasetIndex",
    "Recording",
    "Skipped",
    "index_dataset",
    "split_from_csv",
    "split_recordings",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png",)


@dataclass(frozen=True)
class Recording:
    """One labelled file. ``group`` keeps near-copies (same recording or same
    individual) on one side of a split.

    A folder gives a recording one ``label`` (a weak label: every window inherits it).
    An annotation table gives it ``annotations`` instead (strong labels: species per
    time span, several at once; ``label`` is then ``""``), ``complete`` when the table
    covers the whole recording (windows without a selection are then "no bird")."""

    path: Path
    label: str
    group: str
    duration: float = 0.0
    annotations: tuple[Any, ...] = ()
    complete: bool = True
    strong: bool = False  # labelled by an annotation table


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class DatasetIndex:
    root: Path
    labels: tuple[str, ...]
    recordings: list[Recording]
    skipped: list[Skipped] = field(default_factory=list)
    kind: str = "audio"  # "audio" or "images" (a tree of spectrogram PNGs)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(self.labels, 0)
        for r in self.recordings:
            if r.label in out:
                out[r.label] += 1
            for label in {a.label for a in r.annotations}:
                if label in out:
                    out[label] += 1
        return out

    def subset(self, recordings: Sequence[Recording]) -> DatasetIndex:
        return DatasetIndex(self.root, self.labels, list(recordings), [], self.kind)


def _group(label: str, path: Path, root: Path, pattern: re.Pattern[str] | None) -> str:
    """``Species/<match>`` when the file name matches ``group_pattern`` (one bird, or
    pieces of one original recording); otherwise the file's own path (its own group)."""
    if pattern is not None:
        m = pattern.search(path.stem)
        if m:
            return f"{label}/{m.group(0).lower()}"
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _walk(folder: Path) -> tuple[list[Path], list[Skipped]]:
    """All files under a folder, following symlinks without looping.

    A symlinked folder that leads back to the species folder or above it (a loop, which
    would also pull other species' recordings in under this label) is skipped.
    """
    files: list[Path] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    top = os.path.realpath(folder)
    for dirpath, dirnames, filenames in os.walk(
        folder,
        followlinks=True,
        onerror=lambda e: skipped.append(Skipped(str(e.filename), str(e.strerror))),
    ):
        real = os.path.realpath(dirpath)
        if real in seen:
            skipped.append(Skipped(dirpath, "symlink loop (folder already visited)"))
            dirnames[:] = []
            continue
        seen.add(real)
        for name in sorted(filenames):
            if not name.startswith("."):
                files.append(Path(dirpath) / name)
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            p = Path(dirpath) / d
            if p.suffix.lower() in AUDIO_EXTENSIONS and not p.is_symlink():
                skipped.append(Skipped(str(p), "is a directory, not an audio file"))
                continue
            target = os.path.realpath(p)
            if target in seen or top == target or top.startswith(target.rstrip(os.sep) + os.sep):
                skipped.append(Skipped(str(p), "symlink loop (leads back to a folder above it)"))
                continue
            keep.append(d)
        dirnames[:] = keep
    return files, skipped


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _once_each(recordings: list[Recording]) -> tuple[list[Recording], list[Skipped]]:
    """Keep each file (same device and inode) once. A file found under two or more
    labels is skipped under all of them: which label is right cannot be known, and
    using it twice would put one recording on both sides of a split."""
    by_file: dict[tuple[int, int] | Path, list[Recording]] = defaultdict(list)
    for r in recordings:
        by_file[_identity(r.path) or r.path].append(r)
    kept: list[Recording] = []
    skipped: list[Skipped] = []
    for same in by_file.values():
        labels = sorted({r.label for r in same})
        if len(labels) > 1:
            for r in same:
                others = ", ".join(str(o.path) for o in same if o is not r)
                skipped.append(
                    Skipped(
                        str(r.path),
                        f"the same file is reachable under "
                        f"{len(labels)} species ({', '.join(labels)}) as "
                        f"{others}; skipped, never used under two labels",
                    )
                )
            continue
        first, *rest = sorted(same, key=lambda r: str(r.path))
        kept.append(first)
        skipped.extend(
            Skipped(str(r.path), f"the same file as {first.path} (a link); used once") for r in rest
        )
    order = {id(r): i for i, r in enumerate(recordings)}
    return sorted(kept, key=lambda r: order[id(r)]), skipped


def index_dataset(
    root: str | os.PathLike,
    *,
    group_pattern: str | None = DEFAULT_GROUP_PATTERN,
    labels: Sequence[str] | None = None,
    check_files: bool = True,
    min_species: int = 2,
) -> DatasetIndex:
    """Index ``root/<species>/**/<recording>``.

    Parameters
    ----------
    root : path
        One sub-folder per species; recordings anywhere below it (WAV, FLAC, OGG, MP3,
        ...). A tree of PNG spectrogram images (the original notebook's format) is
        recognised too (``kind == "images"``).
    group_pattern : str or None
        A regular expression searched in each file name; files sharing the match (e.g.
        ``ind03``, one individual bird) share a split group. Without a match a file is
        its own group.
    labels : sequence of str, optional
        The model's species (evaluation): folders outside it are skipped and reported.
    check_files : bool
        Read each audio header now, so that broken files are reported up front.
    min_species : int
        Fewer usable species than this raises :class:`DatasetError`.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"No such dataset folder: {root}")
    if not root.is_dir():
        raise DatasetError(f"{root}: the dataset must be a folder with one sub-folder per species")
    pattern = re.compile(group_pattern, re.IGNORECASE) if group_pattern else None
    species = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    skipped: list[Skipped] = []
    recordings: list[Recording] = []
    kinds: set[str] = set()
    wanted = None if labels is None else set(labels)
    folders: dict[str, Path] = {}
    for folder in species:
        label = folder.name
        if wanted is not None and label not in wanted:
            skipped.append(
                Skipped(str(folder), f"species {label!r} is not one of the model's labels")
            )
            continue
        folders[label] = folder
        files, problems = _walk(folder)
        skipped.extend(problems)
        for path in files:
            ext = path.suffix.lower()
            if ext in IMAGE_EXTENSIONS:
                kinds.add("images")
                recordings.append(Recording(path, label, _group(label, path, root, pattern)))
                continue
            if ext not in AUDIO_EXTENSIONS:
                skipped.append(
                    Skipped(str(path), f"not an audio file (extension {ext or 'none'!r})")
                )
                continue
            duration = 0.0
            if check_files:
                try:
                    info = audio_info(path)
                except (AudioError, OSError) as exc:
                    skipped.append(Skipped(str(path), str(exc)))
                    continue
                if info.frames <= 0:
                    skipped.append(Skipped(str(path), "the file contains no samples"))
                    continue
                duration = info.duration
            kinds.add("audio")
            recordings.append(Recording(path, label, _group(label, path, root, pattern), duration))
    recordings, twice = _once_each(recordings)
    skipped.extend(twice)
    usable = {r.label for r in recordings}
    for label, folder in folders.items():
        if label not in usable:
            skipped.append(Skipped(str(folder), "species folder has no usable recordings"))
    if len(kinds) > 1:
        raise DatasetError(f"{root}: mixes audio files and PNG images; use one kind per dataset")
    found = sorted({r.label for r in recordings})
    final_labels = tuple(labels) if labels is not None else tuple(found)
    for s in skipped:
        log.warning("skipped %s: %s", s.path, s.reason)
    if len(found) < min_species:
        raise DatasetError(
            f"{root}: found {len(found)} species with usable recordings "
            f"({', '.join(found) or 'none'}); at least {min_species} are needed "
            f"(one sub-folder per species). Skipped: {len(skipped)} file(s)."
        )
    return DatasetIndex(root, final_labels, recordings, skipped, kinds.pop() if kinds else "audio")


def split_recordings(
    index: DatasetIndex,
    *,
    validation_fraction: float = 0.2,
    seed: int = 0,
    min_groups: int = 2,
) -> tuple[DatasetIndex, DatasetIndex]:
    """Split into training and validation, stratified by species, grouped.

    No group (recording, or individual when the file names show it) has files on both
    sides. Per species, whole groups go to validation until about
    ``validation_fraction`` of its recordings are there; a species with fewer than
    ``min_groups`` groups (at least 2: one group can never be split) stays in training
    only (logged): with two or three birds, holding one out costs more than early
    stopping on it gains.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise parameter_error("validation_fraction", "in [0, 1)", validation_fraction)
    if isinstance(min_groups, bool) or not isinstance(min_groups, int) or min_groups < 2:
        raise parameter_error("min_groups", "an integer >= 2", min_groups)
    rng = random.Random(seed)
    by_label: dict[str, dict[str, list[Recording]]] = defaultdict(lambda: defaultdict(list))
    for r in index.recordings:
        by_label[r.label][r.group].append(r)
    train: list[Recording] = []
    val: list[Recording] = []
    for label in sorted(by_label):
        groups = sorted(by_label[label])
        rng.shuffle(groups)
        total = sum(len(by_label[label][g]) for g in groups)
        target = validation_fraction * total
        taken = 0
        for i, g in enumerate(groups):
            members = by_label[label][g]
            remaining = len(groups) - i
            if (
                validation_fraction > 0
                and len(groups) >= min_groups
                and remaining > 1
                and taken < target
                and (taken == 0 or taken + len(members) <= target + 0.5)
            ):
                val.extend(members)
                taken += len(members)
            else:
                train.extend(members)
        if validation_fraction > 0 and taken == 0:
            log.warning(
                "species %s has %d group(s) (%d file(s)), fewer than %d; all of them train "
                "and it has no validation recordings",
                label,
                len(groups),
                total,
                min_groups,
            )
    return index.subset(train), index.subset(val)


def split_from_csv(index: DatasetIndex, csv_path: str | os.PathLike) -> dict[str, DatasetIndex]:
    """Split by a CSV with columns ``path,split`` (optionally ``label``).

    ``path`` is relative to the dataset root; ``split`` is any name (train, validation,
    test). A row naming an unknown file or label raises :class:`DatasetError` naming
    the row; indexed files absent from the CSV are left out and logged.
    """
    csv_path = Path(csv_path)
    by_path = {r.path.relative_to(index.root).as_posix(): r for r in index.recordings}
    parts: dict[str, list[Recording]] = defaultdict(list)
    try:
        # surrogateescape: rows may name files whose names are not valid UTF-8
        with open(csv_path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"path", "split"} <= set(reader.fieldnames):
                raise DatasetError(
                    f"{csv_path}: needs a header with the columns 'path' and "
                    f"'split'. Got {reader.fieldnames!r}."
                )
            for line, row in enumerate(reader, start=2):
                path_text, split = row.get("path"), row.get("split")
                if not path_text or not path_text.strip() or not split or not split.strip():
                    raise DatasetError(
                        f"{csv_path}, line {line}: needs a 'path' and a 'split' value. Got {row!r}."
                    )
                rel = Path(path_text.strip()).as_posix()
                rec = by_path.get(rel)
                if rec is None:
                    raise DatasetError(
                        f"{csv_path}, line {line}: {rel!r} is not a usable "
                        f"recording under {index.root}"
                    )
                label = (row.get("label") or "").strip()
                if label and label != rec.label:
                    if label not in index.labels:
                        raise DatasetError(
                            f"{csv_path}, line {line}: unknown label "
                            f"{label!r}; known: {', '.join(index.labels)}"
                        )
                    raise DatasetError(
                        f"{csv_path}, line {line}: label {label!r} disagrees "
                        f"with the folder {rec.label!r}"
                    )
                parts[split.strip().lower()].append(rec)
    except csv.Error as exc:
        raise DatasetError(f"{csv_path}: not a readable CSV file ({exc})") from exc
    missing = len(index.recordings) - sum(len(v) for v in parts.values())
    if missing:
        log.warning("%d indexed file(s) are not named in %s and are left out", missing, csv_path)
    return {name: index.subset(recs) for name, recs in parts.items()}


def model_labels(labels: Sequence[str], *, multi_label: bool) -> tuple[str, ...]:
    """The classes a model scores: every folder's label, except that a multi-label model
    learns "no bird" folders (``_Background``) as recordings with every species absent."""
    return tuple(label for label in labels if not (multi_label and is_background(label)))


def target_vectors(recordings: Sequence[Recording], labels: Sequence[str]):
    """One row per recording: 1 for its folder's species, 0 elsewhere (all 0 for a
    recording whose label is not a class, such as ``_Background`` in a multi-label
    model). Returns ``np.ndarray [shape=(n_recordings, n_labels), dtype=float32]``."""
    import numpy as np

    position = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(recordings), len(labels)), np.float32)
    for row, rec in enumerate(recordings):
        if rec.label in position:
            out[row, position[rec.label]] = 1.0
    return out
