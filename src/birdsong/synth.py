"""Seeded synthetic bird-like songs: demo data for training and for tests.

Each species is a deterministic template (syllables, frequency ranges, durations,
rhythm); each individual shifts pitch and tempo a little; each song jitters around
its individual. Recordings put songs in pink/brown noise with wind and distractor
chirps, at a random SNR and overall gain, so neither loudness nor one frequency band
identifies a species. All energy stays below 15 kHz. Needs only numpy (and
soundfile to write files).
"""

from __future__ import annotations

import logging
import math
import operator
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from birdsong._io import atomic_path

from .errors import InvalidParameterError, parameter_error

__all__ = [
    "DEFAULT_SPECIES",
    "DemoDatasetSummary",
    "DIFFICULTIES",
    "SongEvent",
    "background",
    "field_recording",
    "long_recording",
    "recording",
    "song",
    "write_demo_dataset",
]

logger = logging.getLogger(__name__)

DEFAULT_SPECIES: tuple[str, ...] = (
    "Arctic_Warbler", "Barn_Swallow", "Black-headed_Gull", "Black_Redstart", "Brambling",
    "Coal_Tit", "Common_Blackbird", "Common_Buzzard", "Common_Chaffinch",
    "Common_Grasshopper_Warbler", "Common_Whitethroat", "Common_Wood_Pigeon",
)  # fmt: skip

_MAX_FREQ = 15000.0
_FORMATS = {  # extension -> (soundfile format, subtype)
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
#: ``write_demo_dataset`` difficulties: the clean demo, or field conditions.
DIFFICULTIES: tuple[str, ...] = ("demo", "field")
#: Birds of no dataset species, heard faintly in the distance in field recordings.
_DISTANT_BIRDS = tuple(f"Distant_Bird_{k}" for k in range(1, 31))


@dataclass(frozen=True, slots=True)
class SongEvent:
    """One song in a :func:`long_recording`: true start and end (seconds) and species."""

    start: float
    end: float
    species: str


@dataclass(frozen=True, slots=True)
class DemoDatasetSummary:
    """What :func:`write_demo_dataset` wrote: root, species, file count, seconds of audio."""

    root: Path
    species: tuple[str, ...]
    files: int
    seconds: float


@dataclass(frozen=True, slots=True)
class _Syl:
    """A syllable: kind (sweep, whistle, trill, chips, buzz, coo), start frequency and
    end (lin/exp) or peak (arch) frequency in Hz, duration, contour, harmonic amplitudes,
    note rate (trill, chips) or AM rate (buzz), sounding fraction of a note period,
    noise fraction (a noise band around the harmonics) and vibrato depth."""

    kind: str
    f0: float
    f1: float
    dur: float
    curve: str = "lin"
    harm: tuple[float, ...] = (1.0,)
    rate: float = 0.0
    duty: float = 0.5
    noise: float = 0.0
    vib: float = 0.0


@dataclass(frozen=True, slots=True)
class _Phrase:
    """A syllable group sung ``count`` times; ``tempo``/``step`` scale time/pitch per repeat."""

    syls: tuple[_Syl, ...]
    count: int = 1
    gap: float = 0.05  # silence after each syllable
    rgap: float | None = None  # silence between repeats (default: gap)
    tempo: float = 1.0
    step: float = 1.0
    amp: float = 1.0


@dataclass(frozen=True, slots=True)
class _Template:
    phrases: tuple[_Phrase, ...]
    gap: float = 0.25  # silence between phrases
    pick: int = 0  # > 0: each song sings this many phrases, in random order


def _t(*phrases: _Phrase, gap: float = 0.25, pick: int = 0) -> _Template:
    return _Template(phrases, gap, pick)


def _p(*syls: _Syl, n: int = 1, gap: float = 0.05, **kw: float) -> _Phrase:
    return _Phrase(syls, n, gap, **kw)


_S = _Syl
_HARSH = (1.0, 0.9, 0.75, 0.6, 0.45, 0.35, 0.25)
_FLUTE, _MEW, _COO = (1.0, 0.3, 0.1), (1.0, 0.55, 0.3, 0.15), (1.0, 0.45, 0.2, 0.08)
_TEMPLATES: dict[str, _Template] = {
    "Arctic_Warbler": _t(  # a dry "dzik", then a fast buzzy trill around 4 kHz
        _p(_S("sweep", 5200, 3400, 0.05, "exp", noise=0.4)),
        _p(_S("trill", 4600, 3300, 1.5, "exp", (1.0, 0.35), rate=14, duty=0.6, noise=0.35)),
        gap=0.3),
    "Barn_Swallow": _t(  # twittering sweeps, then a grating rattle
        _p(_S("sweep", 3000, 5200, 0.07, "exp"), _S("sweep", 5600, 3200, 0.06),
           _S("whistle", 4200, 4000, 0.1, harm=(1.0, 0.4, 0.15)), n=3, gap=0.04),
        _p(_S("buzz", 3600, 3300, 0.45, harm=(1.0, 0.6, 0.4), rate=70, noise=0.5)), gap=0.12),
    "Black-headed_Gull": _t(  # harsh, noisy "kree-ar" rich in harmonics
        _p(_S("whistle", 1400, 2200, 0.2, "exp", _HARSH, noise=0.55),
           _S("whistle", 2200, 1300, 0.28, "lin", _HARSH, noise=0.55), n=2, gap=0.015, rgap=0.3)),
    "Black_Redstart": _t(  # whistle, short notes, crackling "glass-grinding", closing notes
        _p(_S("whistle", 3900, 3300, 0.3, harm=(1.0, 0.25))),
        _p(_S("sweep", 4600, 4200, 0.05), n=3, gap=0.05),
        _p(_S("chips", 7000, 2500, 0.55, "exp", rate=45, duty=0.35, noise=0.8)),
        _p(_S("sweep", 3300, 3000, 0.08, harm=(1.0, 0.3)), n=2, gap=0.08), gap=0.3),
    "Brambling": _t(  # long nasal rising buzz "dzweee", repeated
        _p(_S("buzz", 2700, 3600, 0.7, harm=(1.0, 0.8, 0.55, 0.35), rate=85, noise=0.35),
           n=2, gap=1.0)),
    "Coal_Tit": _t(  # repeated two-note "see-too"
        _p(_S("whistle", 6400, 5900, 0.12, harm=(1.0, 0.1)),
           _S("whistle", 4300, 3800, 0.13, harm=(1.0, 0.15)), n=4, gap=0.04, rgap=0.09)),
    "Common_Blackbird": _t(  # low fluting warble of varied phrases, some with a squeaky end
        _p(_S("whistle", 1800, 2500, 0.32, "arch", _FLUTE, vib=0.02),
           _S("whistle", 2600, 1700, 0.26, "exp", _FLUTE)),
        _p(_S("whistle", 1500, 2000, 0.18, harm=_FLUTE), n=2, gap=0.07),
        _p(_S("whistle", 2300, 1600, 0.35, "exp", _FLUTE, vib=0.03)),
        _p(_S("sweep", 5500, 7200, 0.05, "exp"), n=3, gap=0.035, amp=0.6),
        _p(_S("whistle", 2000, 2800, 0.4, "arch", _FLUTE, vib=0.025)),
        _p(_S("coo", 1300, 1650, 0.25, "arch", (1.0, 0.4, 0.2))), gap=0.22, pick=3),
    "Common_Buzzard": _t(  # mewing "pee-yoo": a short rise, a long hoarse descent
        _p(_S("whistle", 1900, 2500, 0.14, harm=_MEW, noise=0.15),
           _S("whistle", 2500, 1250, 0.8, "exp", _MEW, noise=0.15, vib=0.01),
           n=2, gap=0.0, rgap=1.1)),
    "Common_Chaffinch": _t(  # accelerating, descending trill ending in a flourish
        _p(_S("sweep", 6200, 4300, 0.07, "exp", (1.0, 0.2)), n=5, gap=0.1, tempo=0.88, step=0.97),
        _p(_S("sweep", 4600, 2900, 0.055, "exp", (1.0, 0.25)), n=4, gap=0.06, tempo=0.9,
           step=0.97),
        _p(_S("sweep", 2800, 4300, 0.22, "arch", (1.0, 0.3)),
           _S("sweep", 5200, 2400, 0.16, "exp", (1.0, 0.3)), gap=0.03), gap=0.07),
    "Common_Grasshopper_Warbler": _t(  # long, high, insect-like reeling
        _p(_S("trill", 7400, 5600, 3.6, rate=27, duty=0.45, noise=0.5))),
    "Common_Whitethroat": _t(  # short, scratchy, hurried warble
        _p(_S("buzz", 3100, 2900, 0.09, harm=(1.0, 0.5), rate=110, noise=0.7)),
        _p(_S("sweep", 2600, 5000, 0.06, "exp"), _S("sweep", 5800, 3000, 0.05), gap=0.02),
        _p(_S("chips", 4500, 3000, 0.16, rate=38, duty=0.4, noise=0.5)),
        _p(_S("sweep", 3500, 4800, 0.08, "arch", (1.0, 0.3), noise=0.2), n=2, gap=0.03),
        _p(_S("buzz", 4200, 3600, 0.12, harm=(1.0, 0.4), rate=90, noise=0.6)), gap=0.04, pick=5),
    "Common_Wood_Pigeon": _t(  # low five-note "coo-COO-coo, coo-coo"
        _p(_S("coo", 420, 490, 0.32, "arch", _COO, noise=0.04),
           _S("coo", 430, 510, 0.6, "arch", _COO, noise=0.04),
           _S("coo", 420, 480, 0.3, "arch", _COO, noise=0.04), gap=0.13),
        _p(_S("coo", 410, 470, 0.28, "arch", _COO, noise=0.04), n=2, gap=0.13), gap=0.4),
}  # fmt: skip


def _rng(*parts: object) -> np.random.Generator:
    """A generator seeded from strings (CRC-32) and integers (any sign)."""
    words = [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) % 2**64 for p in parts]
    return np.random.default_rng(words)


@lru_cache(maxsize=256)
def _template(name: str) -> _Template:
    """The species template; other names get one derived (seeded) from the name."""
    if name in _TEMPLATES:
        return _TEMPLATES[name]
    rng = _rng("template", name)
    durs = {"sweep": (0.04, 0.15), "whistle": (0.1, 0.5), "trill": (0.6, 2.0)}
    durs |= {"chips": (0.1, 0.5), "buzz": (0.15, 0.8), "coo": (0.25, 0.6)}
    rates = {"trill": (10, 30), "chips": (25, 60), "buzz": (50, 130)}
    phrases = []
    for _ in range(int(rng.integers(1, 4))):
        kind = str(rng.choice(list(durs)))
        f0 = float(np.exp(rng.uniform(*np.log((300, 900) if kind == "coo" else (1500, 7000)))))
        f1 = f0 * float(np.exp(rng.uniform(-0.5, 0.4)))
        curve = str(rng.choice(["lin", "exp", "arch"]))
        harm = tuple(0.55**k for k in range(int(rng.integers(1, 5))))
        rate, duty = float(rng.uniform(*rates.get(kind, (0, 0)))), float(rng.uniform(0.3, 0.7))
        noise = float(rng.uniform(0.3, 0.8) if kind in ("buzz", "chips") else rng.uniform(0, 0.3))
        syl = _Syl(kind, f0, f1, float(rng.uniform(*durs[kind])), curve, harm, rate, duty, noise)
        count = int(rng.integers(1, 3 if kind in ("trill", "buzz", "coo") else 7))
        gap, tempo, step = rng.uniform((0.03, 0.85, 0.95), (0.3, 1.05, 1.03))
        phrases.append(_p(syl, n=count, gap=gap, tempo=tempo, step=step))
    return _t(*phrases, gap=float(rng.uniform(0.05, 0.4)))


# ------------------------------------------------------------------------------ synthesis
def _cap(sample_rate: int) -> float:
    return min(_MAX_FREQ, 0.45 * sample_rate)


def _rms(x: np.ndarray) -> float:
    return max(float(np.sqrt(np.mean(np.square(x)))), 1e-12) if len(x) else 1e-12


def _fade(n: int, attack: int, release: int) -> np.ndarray:
    env = np.ones(n)
    if attack > 0:
        env[:attack] = np.sin(0.5 * np.pi * np.arange(attack) / attack) ** 2
    if release > 0:
        env[n - release :] *= np.sin(0.5 * np.pi * np.arange(release, 0, -1) / release) ** 2
    return env


def _band_limit(x: np.ndarray, sr: int, high: float, low: float = 0.0) -> np.ndarray:
    """Zero the spectrum outside [low, high] Hz (FFT padded to a power of two)."""
    size = 1 << max(len(x) - 1, 1).bit_length()
    spec = np.fft.rfft(x, size)
    freqs = np.fft.rfftfreq(size, 1.0 / sr)
    spec[(freqs > high) | (freqs < low)] = 0.0
    return np.fft.irfft(spec, size)[: len(x)]


def _syllable(
    s: _Syl, fscale: float, tscale: float, rng: np.random.Generator, sr: int
) -> np.ndarray:
    """Render one syllable (peak 1) by phase accumulation; harmonics fade out below the cap."""
    dur = s.dur * tscale
    n = max(round(dur * sr), 32)
    t = np.arange(n) / sr
    if s.kind == "coo":
        env = _fade(n, int(0.3 * n), int(0.4 * n))
    else:
        env = _fade(n, min(int(0.015 * sr), n // 4), min(int(0.02 * sr), n // 3))
    if s.kind in ("trill", "chips"):  # repeated notes: one sweep and envelope per period
        u = (t * s.rate / tscale) % 1.0
        v = np.minimum(u / s.duty, 1.0)
        env *= np.where(u < s.duty, np.sin(np.pi * v) ** (4 if s.kind == "chips" else 2), 0.0)
    else:
        v = t / dur
    f0, f1 = s.f0 * fscale, s.f1 * fscale
    if s.curve == "exp":
        freq = f0 * (f1 / f0) ** v
    elif s.curve == "arch":
        freq = f0 + (f1 - f0) * np.sin(np.pi * v)
    else:
        freq = f0 + (f1 - f0) * v
    if s.vib:
        freq = freq * (1.0 + s.vib * np.sin(2 * np.pi * 6.5 / tscale * t))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    width = 100.0 + 0.1 * float(np.mean(freq)) if s.noise > 0 else 250.0
    top = _cap(sr) - width  # room for the noise bands and modulation sidebands
    x = np.zeros(n)
    for k, amp in enumerate(s.harm, start=1):
        gain = np.clip((top - k * freq) / 400.0, 0.0, 1.0)
        if gain.any():
            x += amp * gain * np.sin(k * phase)
    if s.noise > 0 and x.any():  # a noise band around each harmonic (ring modulation)
        band = _band_limit(rng.standard_normal(n), sr, width) * x
        x = (1 - s.noise) * x / _rms(x) + s.noise * band / _rms(band)
    if s.kind == "buzz":
        x *= 0.25 + 0.75 * ((1 + np.sin(2 * np.pi * s.rate / tscale * t)) / 2) ** 2
    x *= env
    return x / max(float(np.max(np.abs(x))), 1e-12)


def _render_song(
    name: str,
    individual: int,
    seed: int,
    sr: int,
    *,
    tpl: _Template | None = None,
    pitch: float = 0.05,
    tempo: float = 0.1,
) -> np.ndarray:
    """One song; ``tpl`` replaces the species template (a field individual's repertoire),
    ``pitch``/``tempo`` are the individual's spread around the species (fractions)."""
    tpl = tpl or _template(name)
    ind = _rng("individual", name, individual)  # the bird: pitch, tempo, per-phrase pitch
    fscale, tscale = ind.uniform(1 - pitch, 1 + pitch), ind.uniform(1 - tempo, 1 + tempo)
    phrase_f = ind.uniform(0.97, 1.03, len(tpl.phrases))
    rng = _rng("song", name, individual, seed)
    order = rng.permutation(len(tpl.phrases))[: tpl.pick] if tpl.pick else range(len(tpl.phrases))
    pieces: list[np.ndarray] = []
    for i in order:
        ph = tpl.phrases[i]
        fs = fscale * phrase_f[i] * rng.uniform(0.985, 1.015)
        ts = tscale * rng.uniform(0.94, 1.06)
        for r in range(ph.count + (int(rng.integers(-1, 2)) if ph.count >= 3 else 0)):
            tr = ts * ph.tempo**r
            for j, syl in enumerate(ph.syls):
                x = _syllable(syl, fs * ph.step**r, tr, rng, sr)
                pieces.append(x * ph.amp * rng.uniform(0.75, 1.0))
                last = j == len(ph.syls) - 1 and ph.rgap is not None
                pieces.append(np.zeros(round((ph.rgap if last else ph.gap) * tr * sr)))
        pieces[-1] = np.zeros(round(tpl.gap * ts * sr))
    y = np.concatenate(pieces[:-1])
    return (y / max(float(np.max(np.abs(y))), 1e-12)).astype(np.float32)


def _background(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Pink/brown noise plus gusty low-frequency wind, unit RMS, band-limited."""
    size = 1 << max(n - 1, 1).bit_length()
    freqs = np.fft.rfftfreq(size, 1.0 / sr)
    inband = (freqs >= 20.0) & (freqs <= _cap(sr))
    brown = inband / np.maximum(freqs, 1.0)  # amplitude 1/f: power 1/f^2
    pink = np.sqrt(brown)  # power 1/f
    a = rng.uniform(0.2, 1.0)  # mix the two at unit norm each
    shape = a * pink / np.sqrt(np.sum(brown)) + (1 - a) * brown / np.sqrt(np.sum(brown**2))
    spec = rng.standard_normal((2, len(freqs)))
    x = np.fft.irfft((spec[0] + 1j * spec[1]) * shape, size)[:n]
    x /= _rms(x)
    low = 1000  # wind: 10-150 Hz noise with slow gusts, made at 1 kHz and interpolated
    t = np.arange(max(n * low // sr, 64)) / low
    wind = _band_limit(rng.standard_normal(len(t)), low, 150.0, 10.0)
    wind *= 0.3 + np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 6.3)) ** 2
    x += rng.uniform(0.0, 1.0) * np.interp(np.arange(n) / sr, t, wind / _rms(wind))
    return x / _rms(x)


def _add(mix: np.ndarray, x: np.ndarray, start: int, snr_db: float) -> int:
    """Add ``x`` at ``start`` at ``snr_db`` over the unit background (cut with a fade)."""
    end = min(len(mix), start + len(x))
    part = x[: end - start] * (10 ** (snr_db / 20) / _rms(x))
    if len(part) < len(x):
        part *= _fade(len(part), 0, min(len(part), 320))
    mix[start:end] += part
    return end


def _distractor(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A short chirp burst that belongs to no species."""
    kind, curve = str(rng.choice(["sweep", "whistle", "chips"])), str(rng.choice(["lin", "exp"]))
    f0 = float(np.exp(rng.uniform(np.log(1000), np.log(8000))))
    f1, dur, rate, noise = rng.uniform((0.6 * f0, 0.03, 20, 0), (1.6 * f0, 0.25, 60, 0.5))
    syl = _Syl(kind, f0, f1, dur, curve, (1.0, 0.3), rate, 0.4, noise)
    x = np.concatenate([_syllable(syl, 1.0, 1.0, rng, sr), np.zeros(int(0.06 * sr))])
    return np.tile(x, int(rng.integers(1, 4)))


def _finish(mix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scale to a random peak in [0.05, 0.9] so loudness carries no label; float32."""
    peak = np.exp(rng.uniform(np.log(0.05), np.log(0.9)))  # log-uniform: -26 .. -1 dBFS
    return (mix * (peak / max(float(np.max(np.abs(mix))), 1e-12))).astype(np.float32)


# ----------------------------------------------------------------------------- validation
def _bad(func: str, name: str, requirement: str, value: object) -> InvalidParameterError:
    return parameter_error(name, requirement, value, owner=func)


def _int(func: str, name: str, value: object, low: int | None = None, high: int = 0) -> int:
    try:
        out = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        out = None
    if out is None or isinstance(value, bool) or (low is not None and out < low):
        raise _bad(func, name, "an int" if low is None else f"an int >= {low}", value)
    if high and out > high:
        raise _bad(func, name, f"an int in [{low}, {high}]", value)
    return out


def _float(func: str, name: str, value: object, positive: bool = False) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        out = math.nan
    if not math.isfinite(out) or (positive and out <= 0):
        raise _bad(func, name, "a finite number" + (" > 0" if positive else ""), value)
    return out


def _valid_name(s: object) -> bool:
    """A non-empty string usable as one folder name."""
    return isinstance(s, str) and s.strip() not in ("", ".", "..") and not set(s) & set("/\\")


def _species(func: str, value: object) -> str:
    if not _valid_name(value):
        raise _bad(func, "species", "a non-empty species name usable as a folder name", value)
    return value  # type: ignore[return-value]


def _names(func: str, value: object, *, unique: bool = False) -> tuple[str, ...]:
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0
    names = tuple(value) if ok else ()  # type: ignore[arg-type]
    ok = ok and all(_valid_name(s) for s in names)
    if not ok or (unique and len(set(names)) != len(names)):
        need = f"a non-empty sequence of {'distinct ' if unique else ''}folder-safe species names"
        raise _bad(func, "species", need, value)
    return names


def _rate(func: str, sample_rate: object) -> int:
    return _int(func, "sample_rate", sample_rate, 8000, 192000)


# ----------------------------------------------------------------------------- public API
def song(
    species: str, *, sample_rate: int = 32000, individual: int = 0, seed: int = 0
) -> np.ndarray:
    """Synthesise one song of ``species``, deterministic for the given arguments.

    Parameters
    ----------
    species : str
        A name from :data:`DEFAULT_SPECIES`, or any other (a template is derived from it).
    sample_rate : int, default 32000
        Output rate in Hz (8000-192000); content above min(15 kHz, 0.45 * rate) is dropped.
    individual : int, default 0
        Which bird: each shifts pitch (about +-5 %) and tempo (about +-10 %).
    seed : int, default 0
        Which song of that bird (small jitter; phrase choice and order where varied).

    Returns
    -------
    numpy.ndarray
        1-D float32 with peak 1, from the song's first sound to its last.
    """
    sr, name = _rate("song", sample_rate), _species("song", species)
    individual, seed = _int("song", "individual", individual), _int("song", "seed", seed)
    return _render_song(name, individual, seed, sr)


def recording(
    species: str,
    *,
    duration_seconds: float = 10.0,
    sample_rate: int = 32000,
    individual: int = 0,
    seed: int = 0,
    snr_db: tuple[float, float] = (0.0, 25.0),
) -> np.ndarray:
    """Synthesise a field recording: a few songs of one bird in background noise.

    It holds ``max(1, duration // 5)`` to ``max(2, duration // 3)`` songs, plus about
    one distractor chirp (no species) per 12 s.

    Parameters
    ----------
    species : str
        Species name (see :func:`song`).
    duration_seconds : float, default 10.0
        Length; a song longer than the recording is cut with a short fade.
    sample_rate : int, default 32000
        Output rate in Hz.
    individual : int, default 0
        Which bird sings (see :func:`song`).
    seed : int, default 0
        Which recording: song times, noise, SNRs, distractor chirps and gain.
    snr_db : tuple of float, default (0.0, 25.0)
        Range of each song's SNR (its power over its span vs. the background's power).

    Returns
    -------
    numpy.ndarray
        1-D float32 with a random peak in [0.05, 0.9], so it never clips.
    """
    func = "recording"
    sr, species = _rate(func, sample_rate), _species(func, species)
    individual, seed = _int(func, "individual", individual), _int(func, "seed", seed)
    duration = _float(func, "duration_seconds", duration_seconds, positive=True)
    try:
        lo, hi = (float(v) for v in snr_db)
    except (TypeError, ValueError):
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise _bad(func, "snr_db", "a (low, high) pair of finite numbers, low <= high", snr_db)
    rng = _rng("recording", species, individual, seed)
    n = max(round(duration * sr), 1)
    mix = _background(rng, n, sr)
    n_songs = int(rng.integers(max(1, int(duration // 5)), max(2, int(duration // 3)) + 1))
    slot = n // n_songs  # one song per slot where it fits, else anywhere
    for i in range(n_songs):
        x = _render_song(species, individual, int(rng.integers(2**62)), sr)
        if len(x) <= slot:
            start = i * slot + int(rng.integers(0, slot - len(x) + 1))
        else:
            start = int(rng.integers(0, max(n - len(x), 0) + 1))
        _add(mix, x, start, rng.uniform(lo, hi))
    for _ in range(int(rng.poisson(duration / 12))):
        _add(mix, _distractor(rng, sr), int(rng.integers(0, n)), rng.uniform(-6, 6))
    return _finish(mix, rng)


def background(
    *, duration_seconds: float = 10.0, sample_rate: int = 32000, seed: int = 0
) -> np.ndarray:
    """A recording with no bird of any species: noise, wind and the odd distractor chirp.

    Written as a ``_Background`` class by ``birdsong demo`` so that the classifier can
    say "no bird here" in the gaps of a long recording.
    """
    func = "background"
    sr, seed = _rate(func, sample_rate), _int(func, "seed", seed)
    n = max(round(_float(func, "duration_seconds", duration_seconds, positive=True) * sr), 1)
    rng = _rng("background", seed)
    mix = _background(rng, n, sr)
    for _ in range(int(rng.poisson(duration_seconds / 12))):
        _add(mix, _distractor(rng, sr), int(rng.integers(0, n)), rng.uniform(-6, 6))
    return _finish(mix, rng)


def long_recording(
    *,
    species: Sequence[str],
    events: Sequence[tuple[float, str]] | None = None,
    duration_seconds: float = 60.0,
    sample_rate: int = 32000,
    seed: int = 0,
    snr_db: float = 15.0,
) -> tuple[np.ndarray, list[SongEvent]]:
    """Synthesise a long recording with songs at known times, for testing detection.

    Parameters
    ----------
    species : sequence of str
        The species that may sing. Without ``events`` they take turns in a seeded order.
    events : sequence of (float, str), optional
        ``(start_seconds, species)`` pairs, each species one of ``species``. By default
        songs go at random times with at least 3 s of background between them and
        0.5 s before the end.
    duration_seconds : float, default 60.0
        Length of the recording.
    sample_rate : int, default 32000
        Output rate in Hz.
    seed : int, default 0
        Seeds the noise, the placement, the singing individuals and the gain.
    snr_db : float, default 15.0
        SNR of every song (its power over its span vs. the background's power).

    Returns
    -------
    audio : numpy.ndarray
        1-D float32 with a random peak in [0.05, 0.9]; no distractor chirps.
    events : list of SongEvent
        The songs, sorted by start; ``end`` is where the song stops (at the latest,
        the end of the recording).
    """
    func = "long_recording"
    sr, seed = _rate(func, sample_rate), _int(func, "seed", seed)
    names = _names(func, species)
    duration = _float(func, "duration_seconds", duration_seconds, positive=True)
    snr = _float(func, "snr_db", snr_db)
    rng = _rng("long", seed, *names)
    n = max(round(duration * sr), 1)
    mix = _background(rng, n, sr)

    def render(name: str) -> np.ndarray:
        return _render_song(name, int(rng.integers(10_000)), int(rng.integers(2**62)), sr)

    plan: list[tuple[int, str, np.ndarray]] = []
    if events is None:
        order = [names[i] for i in rng.permutation(len(names))]
        start = round(rng.uniform(0.5, 3.0) * sr)
        while True:
            name = order[len(plan) % len(order)]
            x = render(name)
            if start + len(x) > n - sr // 2:  # keep 0.5 s of background at the end
                break
            plan.append((start, name, x))
            start += len(x) + round(rng.uniform(3.0, 6.0) * sr)
    else:
        if isinstance(events, str) or not isinstance(events, Sequence):
            raise _bad(func, "events", "a sequence of (start_seconds, species) pairs", events)
        for event in events:
            try:
                at, name = float(event[0]), event[1]
                ok = len(event) == 2 and 0.0 <= at < duration and name in names
            except (TypeError, ValueError, IndexError, KeyError):
                ok = False
            if not ok:
                need = f"pairs (start, species), 0 <= start < {duration:g}, species in 'species'"
                raise _bad(func, "events", need, event)
            plan.append((round(at * sr), name, render(name)))
        plan.sort(key=lambda item: item[0])
    placed = [SongEvent(at / sr, _add(mix, x, at, snr) / sr, name) for at, name, x in plan]
    return _finish(mix, rng), placed


def field_recording(
    species: str,
    *,
    duration_seconds: float = 8.0,
    sample_rate: int = 32000,
    channels: int = 1,
    individual: int = 0,
    seed: int = 0,
    snr_db: tuple[float, float] = (-1.0, 19.0),
    distractor_species: Sequence[str] = (),
):
    """Synthesise a recording made in the field with a cheap recorder.

    One bird (pitch, tempo and repertoire of its own) sings a few songs in a place with
    reverb (RT60 up to 1 s) at a distance (a low-pass), over coloured noise and, by
    chance, wind, rain, insects, mains hum and faint birds of other (non-dataset)
    species; in about half the recordings a species of ``distractor_species`` sings
    4-14 dB under the bird. A recorder then high-passes, band-limits, colours (resonances,
    tilt) and adds its own noise; about 10 % of recordings clip and 15 % hold a stretch of
    digital silence. See :mod:`birdsong.synth_field` for the recipe.

    Parameters
    ----------
    species : str
        Species name (see :func:`song`).
    duration_seconds : float, default 8.0
        Length of the recording.
    sample_rate : int, default 32000
        Rate in Hz; content stops below min(15 kHz, 0.45 * rate), as a real recorder's.
    channels : {1, 2}, default 1
        Mono, or stereo (two capsules: a little delay, gain and noise of their own).
    individual : int, default 0
        Which bird sings.
    seed : int, default 0
        Which recording: everything about the scene and the recorder.
    snr_db : tuple of float, default (-1.0, 19.0)
        Range of the SNR, measured at the microphone: the bird's power over the spans it
        sings (after reverb and distance) over the noise bed's power.
    distractor_species : sequence of str, default ()
        Species that may be heard as quieter distractors (usually the dataset's others).

    Returns
    -------
    FieldRecording
        ``audio`` (float32, ``(n,)`` or ``(n, 2)``), the drawn ``snr_db``, the parts
        at the microphone (``song``, ``distractor``, ``noise``) and what was drawn.
    """
    from . import synth_field

    func = "field_recording"
    sr, species = _rate(func, sample_rate), _species(func, species)
    individual, seed = _int(func, "individual", individual), _int(func, "seed", seed)
    duration = _float(func, "duration_seconds", duration_seconds, positive=True)
    if _int(func, "channels", channels, 1) > 2:
        raise _bad(func, "channels", "1 or 2", channels)
    lo, hi = _pair(func, "snr_db", snr_db)
    others = [] if not distractor_species else list(_names(func, distractor_species))
    return synth_field.render(
        species,
        individual=individual,
        seed=seed,
        duration_seconds=duration,
        sample_rate=sr,
        channels=channels,
        snr_db=(lo, hi),
        distractor_species=[o for o in others if o != species],
        background_species=list(_DISTANT_BIRDS),
    )


def _pair(func: str, name: str, value: object) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise _bad(func, name, "a (low, high) pair of finite numbers, low <= high", value)
    return lo, hi


def write_demo_dataset(
    out_dir: str | Path,
    *,
    species: int | Sequence[str] = 12,
    individuals: int | None = None,
    recordings_per_individual: int = 3,
    duration_seconds: float = 8.0,
    sample_rate: int | None = None,
    seed: int = 0,
    formats: Sequence[str] | None = None,
    difficulty: str = "demo",
) -> DemoDatasetSummary:
    """Write a synthetic dataset: a folder per species, several birds per species.

    Files are ``out_dir/<Species>/<Species>_ind<II>_rec<RR>.<ext>`` (1-based, zero-padded),
    e.g. ``Coal_Tit/Coal_Tit_ind02_rec01.wav``; ``indII`` names the bird so a splitter can
    keep each bird on one side of a split. Each file is written under a temporary name,
    then renamed. The same arguments give byte-identical WAV files; another ``seed``
    gives other birds, not just other recordings.

    ``difficulty="demo"`` writes clean songs in moderate noise, all at one rate and
    format: a quick demonstration that trains to high accuracy. ``difficulty="field"``
    writes what a field season brings home (see :func:`field_recording`): 12 birds per
    species by default, SNR -1 to 19 dB, reverb, distance, noise of many kinds, other
    species as distractors in about half the files, a cheap recorder, lengths 0.6-1.6x
    ``duration_seconds``, and a mix of rates (16, 22.05, 32, 44.1, 48 kHz), mono and
    stereo (about 30 %), WAV (16/24-bit, float), FLAC (16/24-bit) and OGG Vorbis. It
    also writes ``field_conditions.csv`` at the root: what was drawn for every file.

    Parameters
    ----------
    out_dir : str or Path
        Root folder, created if needed; files of the same name are replaced.
    species : int or sequence of str, default 12
        N takes the first N of :data:`DEFAULT_SPECIES`, then ``Synthetic_Species_13``...
    individuals : int, optional
        Birds per species (>= 1); default 3 for "demo" and 12 for "field".
    recordings_per_individual : int, default 3
        Recordings per bird (>= 1).
    duration_seconds : float, default 8.0
        Length of every recording ("field": the typical length).
    sample_rate : int, optional
        Rate of every file (default 32000 for "demo", a mix for "field"); mp3 needs an
        MPEG rate (8000-48000, e.g. 32000, 44100).
    seed : int, default 0
        Seeds the birds and their recordings.
    formats : sequence of str, optional
        Cycled through the files in order: "wav" (PCM_16), "flac", "ogg" (Vorbis), "mp3".
        Default ("wav",) for "demo" and a seeded mix (see above) for "field".
    difficulty : {"demo", "field"}, default "demo"
        How hard the recordings are.

    Returns
    -------
    DemoDatasetSummary
        Root, species names, number of files and seconds of audio written.
    """
    import soundfile as sf

    func = "write_demo_dataset"
    if difficulty not in DIFFICULTIES:
        raise _bad(func, "difficulty", f"one of {', '.join(map(repr, DIFFICULTIES))}", difficulty)
    field = difficulty == "field"
    sr = None if sample_rate is None else _rate(func, sample_rate)
    seed = _int(func, "seed", seed)
    if isinstance(species, int | np.integer) and not isinstance(species, bool):
        count = _int(func, "species", species, 1)
        extra = [f"Synthetic_Species_{i + 1}" for i in range(len(DEFAULT_SPECIES), count)]
        names = (*DEFAULT_SPECIES, *extra)[:count]
    else:
        names = _names(func, species, unique=True)
    n_ind = _int(
        func, "individuals", (12 if field else 3) if individuals is None else individuals, 1
    )
    n_rec = _int(func, "recordings_per_individual", recordings_per_individual, 1)
    duration = _float(func, "duration_seconds", duration_seconds, positive=True)
    exts: list[str] = []
    if formats is not None:
        ok = isinstance(formats, Sequence) and not isinstance(formats, str) and len(formats) > 0
        exts = [str(f).lower().lstrip(".") for f in formats] if ok else []
        if not ok or any(ext not in _FORMATS for ext in exts):
            need = f"a non-empty sequence of {', '.join(_FORMATS)}"
            raise _bad(func, "formats", need, formats)
    elif not field:
        exts = ["wav"]
    if "mp3" in exts and (sr or 32000) not in _MP3_RATES:
        raise _bad(func, "sample_rate", f"one of {_MP3_RATES} to write mp3", sample_rate)
    if "mp3" in exts and field and sr is None:
        raise _bad(
            func, "sample_rate", "set (one MPEG rate) to write mp3 in field mode", sample_rate
        )

    root = Path(out_dir)
    wi, wr = max(2, len(str(n_ind))), max(2, len(str(n_rec)))
    files, seconds = 0, 0.0
    rows: list[dict[str, object]] = []
    for name in names:
        for i in range(n_ind):
            for r in range(n_rec):
                bird = seed * 100_003 + i  # another seed, other birds
                stem = root / name / f"{name}_ind{i + 1:0{wi}d}_rec{r + 1:0{wr}d}"
                if not field:
                    ext = exts[files % len(exts)]
                    rate = sr or 32000
                    audio = recording(
                        name, duration_seconds=duration, sample_rate=rate, individual=bird, seed=r
                    )
                    fmt, subtype = _FORMATS[ext]
                else:
                    pick = _rng("field-file", name, bird, r)
                    rate = sr or int(pick.choice(_field_rates()))
                    channels = 2 if pick.random() < 0.3 else 1
                    if exts:
                        ext = exts[files % len(exts)]
                        fmt, subtype = _FORMATS[ext]
                    else:
                        ext, subtype = _field_formats()[int(pick.integers(len(_field_formats())))]
                        fmt = _FORMATS[ext][0]
                    rec = field_recording(
                        name,
                        duration_seconds=duration * float(pick.uniform(0.6, 1.6)),
                        sample_rate=rate,
                        channels=channels,
                        individual=bird,
                        seed=r,
                        distractor_species=[o for o in names if o != name] or (),
                    )
                    audio = rec.audio
                    rows.append(
                        {
                            "path": f"{name}/{stem.name}.{ext}",
                            "species": name,
                            "individual": i + 1,
                            "sample_rate": rate,
                            "channels": channels,
                            "format": ext,
                            "subtype": subtype,
                            "seconds": round(len(audio) / rate, 3),
                            "snr_db": round(rec.snr_db, 2),
                            "rt60_seconds": round(rec.rt60_seconds, 3),
                            "distractors": " ".join(rec.distractors),
                            "noise": " ".join(rec.noise_kinds),
                            "clipped_fraction": round(rec.clipped_fraction, 4),
                            "silence_seconds": round(rec.silence_seconds, 3),
                        }
                    )
                path = stem.with_name(f"{stem.name}.{ext}")
                with atomic_path(path) as tmp:
                    sf.write(tmp, audio, rate, format=fmt, subtype=subtype)
                files, seconds = files + 1, seconds + len(audio) / rate
    if field:
        _write_conditions(root / "field_conditions.csv", rows)
    logger.info("Wrote %d synthetic recordings (%.0f s) to %s", files, seconds, root)
    return DemoDatasetSummary(root, names, files, seconds)


def _field_rates() -> tuple[int, ...]:
    from .synth_field import FIELD_RATES

    return FIELD_RATES


def _field_formats() -> tuple[tuple[str, str], ...]:
    from .synth_field import FIELD_FORMATS

    return FIELD_FORMATS


def _write_conditions(path: Path, rows: list[dict[str, object]]) -> None:
    import csv
    import io

    from ._io import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["path"])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
