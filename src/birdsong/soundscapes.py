"""Synthetic soundscapes: long recordings of several species with Raven selection tables.

Demo and test data for strong labels, offline. Each recording is the background of
:func:`birdsong.synth.background` (pink/brown noise, wind, the odd distractor chirp
that belongs to no species) with songs of :func:`birdsong.synth.song` placed at known
times, some overlapping another species, one quiet stretch without songs or added
noise, and noise events (broadband crackles, low rumbles) that are not birds. Next to
each recording a Raven selection table lists every song with its time span and the
frequency band holding 95 % of its energy; :func:`birdsong.annotations.read_raven`
reads it and :func:`birdsong.annotation_index.index_annotations` pairs it by name.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import synth
from ._io import atomic_path
from .annotations import Annotation, write_raven
from .errors import parameter_error

__all__ = ["Soundscape", "soundscape", "write_soundscapes"]

log = logging.getLogger(__name__)

DEFAULT_SPECIES: tuple[str, ...] = synth.DEFAULT_SPECIES[:6]
_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16")}


@dataclass(frozen=True)
class Soundscape:
    """One synthetic soundscape: its songs (as annotations), noise events and the quiet
    stretch (start, end) in seconds. ``path``/``table`` are set once written."""

    songs: tuple[Annotation, ...]
    noise_events: tuple[tuple[float, float], ...]
    quiet: tuple[float, float]
    duration: float
    sample_rate: int
    path: Path | None = None
    table: Path | None = None


def _band(x: np.ndarray, sr: int, share: float = 0.95) -> tuple[float, float]:
    """The frequency band (Hz) holding ``share`` of the energy of ``x``, to 10 Hz."""
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1.0 / sr)
    cumulative = np.cumsum(power) / max(float(power.sum()), 1e-30)
    tail = (1.0 - share) / 2
    low = freqs[int(np.searchsorted(cumulative, tail))]
    high = freqs[min(int(np.searchsorted(cumulative, 1.0 - tail)), freqs.size - 1)]
    return math.floor(low / 10) * 10.0, math.ceil(high / 10) * 10.0


def _noise_event(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A non-bird sound: a broadband crackle (twigs, rain) or a low rumble (traffic)."""
    if rng.random() < 0.5:  # crackle: clicks of band-passed noise
        n = int(rng.uniform(0.2, 0.8) * sr)
        clicks = np.zeros(n)
        at = rng.integers(0, n, int(rng.integers(8, 40)))
        clicks[at] = rng.uniform(0.3, 1.0, at.size) * rng.choice([-1.0, 1.0], at.size)
        low, high = 500.0, min(12000.0, 0.45 * sr)
    else:  # rumble: slowly swelling low-frequency noise
        n = int(rng.uniform(1.0, 4.0) * sr)
        clicks = rng.standard_normal(n)
        low, high = 30.0, 300.0
    spec = np.fft.rfft(clicks)
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spec[(freqs < low) | (freqs > high)] = 0.0
    x = np.fft.irfft(spec, n) * np.sin(np.pi * np.arange(n) / n) ** 2
    return x / max(float(np.sqrt(np.mean(x**2))), 1e-12)


def soundscape(
    *,
    species: Sequence[str] = DEFAULT_SPECIES,
    seconds: float = 60.0,
    sample_rate: int = 32000,
    seed: int = 0,
    overlap_probability: float = 0.3,
    snr_db: tuple[float, float] = (3.0, 20.0),
) -> tuple[np.ndarray, Soundscape]:
    """Synthesise one soundscape.

    Parameters
    ----------
    species : sequence of str
        Who may sing (names for :func:`birdsong.synth.song`).
    seconds : float, default 60.0
        Length.
    sample_rate : int, default 32000
        Rate in Hz.
    seed : int, default 0
        Seeds everything: background, singers, times, levels.
    overlap_probability : float, default 0.3
        Chance that a song is joined by another species singing over it.
    snr_db : (float, float), default (3, 20)
        Range of each song's power over the background's (both over the song's span).

    Returns
    -------
    audio : numpy.ndarray [shape=(round(seconds * sample_rate),), dtype=float32]
        Peak in [0.1, 0.8].
    Soundscape
        The songs (``file`` empty), noise events and quiet stretch.
    """
    owner = "soundscape"
    names = tuple(species) if not isinstance(species, str) else ()
    if not names or not all(isinstance(s, str) and s for s in names):
        raise parameter_error(
            "species", "a non-empty sequence of species names", species, owner=owner
        )
    if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 5):
        raise parameter_error("seconds", "a number >= 5", seconds, owner=owner)
    if not (isinstance(overlap_probability, int | float) and 0 <= overlap_probability <= 1):
        raise parameter_error(
            "overlap_probability", "a number in [0, 1]", overlap_probability, owner=owner
        )
    try:
        lo_snr, hi_snr = (float(v) for v in snr_db)
    except (TypeError, ValueError):
        lo_snr = hi_snr = math.nan
    if not (math.isfinite(lo_snr) and math.isfinite(hi_snr) and lo_snr <= hi_snr):
        raise parameter_error(
            "snr_db", "a (low, high) pair of finite numbers, low <= high", snr_db, owner=owner
        )
    sr = int(sample_rate)
    rng = np.random.default_rng([int(seed) % 2**63, 20260])
    n = round(seconds * sr)
    mix = synth.background(duration_seconds=seconds, sample_rate=sr, seed=int(seed)).astype(
        np.float64
    )
    mix /= max(float(np.sqrt(np.mean(mix**2))), 1e-12)  # unit-RMS background
    quiet_len = 0.15 * seconds
    q0 = float(rng.uniform(0.1 * seconds, 0.9 * seconds - quiet_len))
    quiet = (round(q0, 3), round(q0 + quiet_len, 3))

    def free(a: float, b: float) -> bool:  # inside the recording and outside the quiet part
        return a >= 0.1 and b <= seconds - 0.3 and (b <= quiet[0] or a >= quiet[1])

    def place(x: np.ndarray, at: float, snr: float) -> tuple[int, int]:
        i = round(at * sr)
        j = min(n, i + x.size)
        mix[i:j] += x[: j - i] * (10 ** (snr / 20) / max(float(np.sqrt(np.mean(x**2))), 1e-12))
        return i, j

    songs: list[Annotation] = []

    def sing(name: str, at: float) -> float | None:
        x = synth.song(
            name,
            sample_rate=sr,
            individual=int(rng.integers(10_000)),
            seed=int(rng.integers(2**31)),
        ).astype(np.float64)
        if not free(at, at + x.size / sr):
            return None
        i, j = place(x, at, float(rng.uniform(lo_snr, hi_snr)))
        low, high = _band(x, sr)
        songs.append(Annotation("", i / sr, j / sr, name, low, high))
        return j / sr

    t = float(rng.uniform(0.3, 2.0))
    while t < seconds - 1.0:
        if quiet[0] - 0.5 < t < quiet[1]:
            t = quiet[1] + float(rng.uniform(0.1, 0.6))
            continue
        name = names[int(rng.integers(len(names)))]
        end = sing(name, t)
        if end is None:  # did not fit before the quiet stretch or the end: move on
            t += 1.0
            continue
        if len(names) > 1 and rng.random() < overlap_probability:
            other = [s for s in names if s != name][int(rng.integers(len(names) - 1))]
            at = t + float(rng.uniform(0.0, 0.6)) * (end - t)
            end = max(end, sing(other, at) or end)
        t = end + float(rng.uniform(0.5, 4.0))

    noise: list[tuple[float, float]] = []
    for _ in range(max(1, round(seconds / 15))):
        x = _noise_event(rng, sr)
        starts = rng.uniform(0.0, seconds - x.size / sr, 20)
        outside = (starts + x.size / sr <= quiet[0]) | (starts >= quiet[1])
        if outside.any():  # anywhere but the quiet stretch, over songs or not
            i, j = place(x, float(starts[np.argmax(outside)]), float(rng.uniform(0.0, 12.0)))
            noise.append((i / sr, j / sr))
    peak = float(rng.uniform(0.1, 0.8))
    audio = (mix * (peak / max(float(np.max(np.abs(mix))), 1e-12))).astype(np.float32)
    songs.sort(key=lambda a: (a.start, a.label))
    return audio, Soundscape(tuple(songs), tuple(sorted(noise)), quiet, n / sr, sr)


def write_soundscapes(
    out_dir: str | os.PathLike,
    *,
    n: int = 4,
    seconds: float = 60.0,
    species: Sequence[str] = DEFAULT_SPECIES,
    sample_rate: int = 32000,
    seed: int = 0,
    format: str = "wav",
    overlap_probability: float = 0.3,
) -> list[Soundscape]:
    """Write ``n`` soundscapes, each with a Raven selection table beside it.

    Files are ``out_dir/soundscape_<NN>.<format>`` and
    ``out_dir/soundscape_<NN>.Table.1.selections.txt`` (``Begin File`` names the
    recording; ``Species`` the singer). Written atomically; the same arguments give the
    same files.

    Parameters
    ----------
    out_dir : path
        Created if needed.
    n : int, default 4
        Number of recordings.
    seconds : float, default 60.0
        Length of each (>= 5).
    species : sequence of str
        Who may sing; by default the first six of :data:`birdsong.synth.DEFAULT_SPECIES`.
    sample_rate : int, default 32000
    seed : int, default 0
        Recording ``k`` uses seed ``seed * 1000 + k``.
    format : {"wav", "flac"}, default "wav"
        16-bit PCM.
    overlap_probability : float, default 0.3
        See :func:`soundscape`.

    Returns
    -------
    list of Soundscape
        With ``path``, ``table`` and songs whose ``file`` is the recording's path.
    """
    import soundfile as sf

    owner = "write_soundscapes"
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise parameter_error("n", "an int >= 1", n, owner=owner)
    if format not in _FORMATS:
        raise parameter_error("format", f"one of {tuple(_FORMATS)}", format, owner=owner)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    written: list[Soundscape] = []
    for k in range(n):
        audio, scape = soundscape(
            species=species,
            seconds=seconds,
            sample_rate=sample_rate,
            seed=int(seed) * 1000 + k,
            overlap_probability=overlap_probability,
        )
        path = root / f"soundscape_{k + 1:02d}.{format}"
        with atomic_path(path) as tmp:
            sf.write(
                tmp,
                audio,
                scape.sample_rate,
                format=_FORMATS[format][0],
                subtype=_FORMATS[format][1],
            )
        songs = tuple(
            Annotation(str(path), a.start, a.end, a.label, a.low_freq, a.high_freq)
            for a in scape.songs
        )
        table = write_raven(
            root / f"{path.stem}.Table.1.selections.txt",
            songs,
            file=path.name,
            freq_range=(0.0, sample_rate / 2),
        )
        written.append(
            Soundscape(
                songs,
                scape.noise_events,
                scape.quiet,
                scape.duration,
                scape.sample_rate,
                path,
                table,
            )
        )
    log.info("Wrote %d soundscapes (%g s each) to %s", n, seconds, root)
    return written
