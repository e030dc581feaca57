"""Field conditions for the synthetic generator: the acoustic scene and a cheap recorder.

:func:`birdsong.synth.field_recording` and ``write_demo_dataset(difficulty="field")``
build on this module. A field recording is what a person with a handheld recorder
brings home, made in vectorised numpy:

* the bird: a bout of songs (pauses of 0.25-1.2 s) of one individual, whose pitch (+-6 %), tempo (+-12 %) and
  repertoire (which phrases, how many repeats, its own syllable shapes) are its own;
* the place: reverb (exponentially decaying noise, RT60 0.05-1 s, a drawn
  direct-to-reverberant ratio) and distance (a low-pass at 4-15 kHz);
* the noise bed: coloured noise (power ~ 1/f^beta, beta 0.5-2) plus, each by chance,
  gusty wind, rain clicks, insect stridulation, mains hum and faint distant birds of
  species that are not in the dataset;
* other species of the dataset as quieter distractors (4-14 dB under the bird);
* the recorder: high-pass, band limit, resonances, spectral tilt, self-noise, gain,
  sometimes clipping and sometimes a stretch of digital silence (a dropout).

The SNR is measured, not assumed: the bird's power over the spans where it sings (at
the microphone, after reverb and distance) over the noise bed's power, scaled to a
value drawn from ``snr_db``. Calibration (benchmarks/README.md): with these settings
MFCC means + logistic regression score about 0.5-0.6 per recording on held-out birds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import synth
from .synth import _Phrase, _Syl, _Template

__all__ = ["FIELD_FORMATS", "FIELD_RATES", "FieldRecording", "render"]

#: Sample rates a field dataset mixes (Hz).
FIELD_RATES: tuple[int, ...] = (16000, 22050, 32000, 44100, 48000)
#: File formats a field dataset mixes: (extension, soundfile subtype).
#: How far one bird strays from its species (fractions): pitch, tempo, each syllable's
#: frequencies; and how strongly a recorder colours (tilt in dB/octave, resonance dB).
#: Calibrated so that MFCC means + logistic regression score about 0.55-0.75.
PITCH, TEMPO, SYLLABLE = 0.06, 0.12, 0.05
TILT_DB, RESONANCE_DB = 1.5, (-3.0, 5.0)
#: How far under the bird the distractor species sing (dB).
DISTRACTOR_DB = (4.0, 14.0)
DISTRACTOR_PROBABILITY = 0.5
#: Pause between the bird's songs (seconds).
PAUSE = (0.25, 1.2)
FIELD_FORMATS: tuple[tuple[str, str], ...] = (
    ("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "FLOAT"), ("flac", "PCM_16"),
    ("flac", "PCM_24"), ("ogg", "VORBIS"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FieldRecording:
    """One synthetic field recording and how it was made.

    ``audio`` is what the file holds (float32, ``(n,)`` mono or ``(n, 2)`` stereo,
    after the recorder). ``song``, ``distractor`` and ``noise`` are the three parts at
    the microphone (float32, ``(n,)``, before the recorder), so that
    ``10 * log10(mean(song[spans]**2) / mean(noise**2)) == snr_db``, where ``spans`` are
    ``song_spans`` (seconds) turned into samples.
    """

    audio: np.ndarray
    sample_rate: int
    snr_db: float
    song_spans: tuple[tuple[float, float], ...]
    song: np.ndarray
    distractor: np.ndarray
    noise: np.ndarray
    distractors: tuple[str, ...]
    rt60_seconds: float
    clipped_fraction: float
    silence_seconds: float
    noise_kinds: tuple[str, ...]


# --------------------------------------------------------------------------- individuals
@lru_cache(maxsize=1024)
def individual_template(name: str, individual: int) -> _Template:
    """The species template as one bird sings it: its repertoire and syllable shapes.

    A bird keeps about 70 % of the species' phrases (at least two where the species
    has two), repeats them its own number of times, and draws each syllable's start and
    end frequency (+-5 %), duration (x0.8-1.25), note rate and noise share once.
    """
    tpl = synth._template(name)
    rng = synth._rng("field-individual", name, individual)
    phrases = list(tpl.phrases)
    if len(phrases) >= 3:
        keep = max(2, round(0.7 * len(phrases)))
        idx = np.sort(rng.permutation(len(phrases))[:keep])
        phrases = [phrases[i] for i in idx]
    out = []
    for ph in phrases:
        syls = []
        for s in ph.syls:
            f0 = s.f0 * rng.uniform(1 - SYLLABLE, 1 + SYLLABLE)
            f1 = s.f1 * rng.uniform(1 - SYLLABLE, 1 + SYLLABLE)
            syls.append(
                _Syl(
                    s.kind,
                    float(f0),
                    float(f1),
                    float(s.dur * rng.uniform(0.8, 1.25)),
                    s.curve,
                    s.harm,
                    float(s.rate * rng.uniform(0.85, 1.15)),
                    s.duty,
                    float(np.clip(s.noise + rng.uniform(-0.1, 0.1), 0, 0.9)),
                    s.vib,
                )
            )
        count = ph.count + (int(rng.integers(-1, 3)) if ph.count >= 2 else 0)
        out.append(
            _Phrase(
                tuple(syls),
                max(1, count),
                ph.gap * float(rng.uniform(0.7, 1.4)),
                ph.rgap,
                ph.tempo,
                ph.step,
                ph.amp,
            )
        )
    pick = min(tpl.pick, len(out)) if tpl.pick else 0
    return _Template(tuple(out), tpl.gap * float(rng.uniform(0.7, 1.4)), pick)


def field_song(name: str, individual: int, seed: int, sr: int) -> np.ndarray:
    """One song of a field individual (peak 1, float32)."""
    return synth._render_song(
        name,
        individual,
        seed,
        sr,
        tpl=individual_template(name, individual),
        pitch=PITCH,
        tempo=TEMPO,
    )


# ----------------------------------------------------------------------------- spectra
def _size(n: int) -> int:
    return 1 << max(n - 1, 1).bit_length()


def _filter(x: np.ndarray, gain: np.ndarray, size: int) -> np.ndarray:
    """Apply a zero-phase magnitude response (``rfft`` bins of ``size``) to ``x``."""
    return np.fft.irfft(np.fft.rfft(x, size) * gain, size)[: len(x)]


def _coloured(
    rng: np.random.Generator, n: int, sr: int, beta: float, lo: float, hi: float
) -> np.ndarray:
    """Gaussian noise with power ~ 1/f^beta between lo and hi Hz, unit RMS."""
    size = _size(n)
    f = np.fft.rfftfreq(size, 1.0 / sr)
    shape = ((f >= lo) & (f <= hi)) / np.maximum(f, 1.0) ** (beta / 2)
    spec = rng.standard_normal((2, len(f)))
    x = np.fft.irfft((spec[0] + 1j * spec[1]) * shape, size)[:n]
    return x / synth._rms(x)


def _slow(rng: np.random.Generator, n: int, sr: int, rate: float) -> np.ndarray:
    """A smooth positive random envelope varying at about ``rate`` Hz (mean ~1)."""
    k = max(int(n / sr * rate) + 3, 4)
    pts = rng.lognormal(0.0, 0.6, k)
    return np.interp(np.linspace(0, k - 1, n), np.arange(k), pts)


def _noise_bed(
    rng: np.random.Generator, n: int, sr: int, others: list[str]
) -> tuple[np.ndarray, list[str]]:
    """Coloured noise plus wind, rain, insects, hum and faint birds, each by chance."""
    cap = synth._cap(sr)
    parts = [_coloured(rng, n, sr, rng.uniform(0.5, 2.0), 20.0, cap)]
    kinds = ["coloured"]
    if rng.random() < 0.35:  # wind: low rumble in gusts
        wind = (
            _coloured(rng, n, sr, 2.0, 15.0, rng.uniform(300, 1200))
            * _slow(rng, n, sr, rng.uniform(0.2, 1.5)) ** 2
        )
        parts.append(wind / synth._rms(wind) * 10 ** (rng.uniform(-10, 4) / 20))
        kinds.append("wind")
    if rng.random() < 0.15:  # rain: random clicks with short decaying tails
        clicks = np.zeros(n)
        hits = rng.integers(0, n, int(rng.uniform(5, 60) * n / sr))
        clicks[hits] = rng.lognormal(0.0, 0.8, len(hits)) * rng.choice([-1, 1], len(hits))
        tail = int(0.004 * sr)
        kernel = rng.standard_normal(tail) * np.exp(-np.arange(tail) / (0.0008 * sr))
        rain = np.convolve(clicks, kernel)[:n]
        rain = _filter(rain, 1.0 * (np.fft.rfftfreq(_size(n), 1 / sr) <= cap), _size(n))
        parts.append(rain / synth._rms(rain) * 10 ** (rng.uniform(-12, 0) / 20))
        kinds.append("rain")
    if rng.random() < 0.2:  # insects: a band of noise pulsed at a steady rate
        fc = float(np.exp(rng.uniform(np.log(2500), np.log(min(9000, 0.8 * cap)))))
        bw = rng.uniform(300, 1500)
        band = _coloured(rng, n, sr, 0.0, fc - bw / 2, fc + bw / 2)
        t = np.arange(n) / sr
        pulses = np.sin(2 * np.pi * rng.uniform(15, 80) * t) > rng.uniform(-0.3, 0.5)
        insects = band * pulses * _slow(rng, n, sr, 0.3)
        parts.append(insects / synth._rms(insects) * 10 ** (rng.uniform(-15, -3) / 20))
        kinds.append("insects")
    if rng.random() < 0.15:  # mains hum and its harmonics
        t = np.arange(n) / sr
        base = 50.0 if rng.random() < 0.5 else 60.0
        hum = sum(
            0.6**k * np.sin(2 * np.pi * base * (k + 1) * t + rng.uniform(0, 6.3))
            for k in range(int(rng.integers(2, 10)))
            if base * (k + 1) < cap
        )
        parts.append(hum / synth._rms(hum) * 10 ** (rng.uniform(-20, -5) / 20))
        kinds.append("hum")
    bed = np.sum(parts, axis=0)
    bed /= synth._rms(bed)
    if others and rng.random() < 0.4:  # faint distant birds that are not in the dataset
        for _ in range(int(rng.integers(1, 4))):
            name = others[int(rng.integers(len(others)))]
            x = field_song(name, int(rng.integers(10_000)), int(rng.integers(2**31)), sr)
            x = _filter(
                np.pad(x, (0, int(0.3 * sr))),
                _lowpass(sr, _size(len(x) + int(0.3 * sr)), rng.uniform(2000, 5000)),
                _size(len(x) + int(0.3 * sr)),
            )
            synth._add(bed, x, int(rng.integers(0, n)), rng.uniform(-20, -8))
        kinds.append("birds")
    return bed, kinds


# ------------------------------------------------------------------------------ place
def _lowpass(sr: int, size: int, cutoff: float, order: int = 2) -> np.ndarray:
    f = np.fft.rfftfreq(size, 1.0 / sr)
    return 1.0 / np.sqrt(1.0 + (f / cutoff) ** (2 * order))


def _room(rng: np.random.Generator, sr: int) -> tuple[np.ndarray, float]:
    """An impulse response: the direct sound plus exponentially decaying noise."""
    rt60 = float(np.exp(rng.uniform(np.log(0.05), np.log(1.0))))
    n = max(int(rt60 * sr), 16)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / rt60)
    tail[: int(0.002 * sr)] = 0.0  # the first reflection arrives after the direct sound
    drr = 10 ** (rng.uniform(0, 15) / 20)  # direct-to-reverberant ratio
    ir = tail / np.sqrt(np.sum(tail**2)) / drr
    ir[0] += 1.0
    return ir, rt60


def _place(dry: np.ndarray, ir: np.ndarray, gain: np.ndarray, size: int) -> np.ndarray:
    """Reverb and distance: convolve with ``ir`` and low-pass (one FFT each way)."""
    spec = np.fft.rfft(dry, size) * np.fft.rfft(ir, size) * gain
    return np.fft.irfft(spec, size)[: len(dry)]


def _recorder(rng: np.random.Generator, sr: int, size: int) -> np.ndarray:
    """A cheap recorder's magnitude response: high-pass, band limit, resonances, tilt."""
    f = np.maximum(np.fft.rfftfreq(size, 1.0 / sr), 1.0)
    hp = float(np.exp(rng.uniform(np.log(50), np.log(300))))
    gain = 1.0 / np.sqrt(1.0 + (hp / f) ** 4)
    if rng.random() < 0.5:  # a codec or cheap ADC that stops early
        gain /= np.sqrt(1.0 + (f / np.exp(rng.uniform(np.log(5000), np.log(15000)))) ** 8)
    db = rng.uniform(-TILT_DB, TILT_DB) * np.log2(f / 1000.0)  # tilt, dB per octave around 1 kHz
    for _ in range(int(rng.integers(0, 4))):  # resonances of the housing and windscreen
        centre = np.exp(rng.uniform(np.log(500), np.log(8000)))
        width = rng.uniform(0.1, 0.4)
        db = db + rng.uniform(*RESONANCE_DB) * np.exp(-0.5 * (np.log2(f / centre) / width) ** 2)
    return gain * 10 ** (np.clip(db, -15, 15) / 20)


# ---------------------------------------------------------------------------- the scene
def render(
    species: str,
    *,
    individual: int,
    seed: int,
    duration_seconds: float,
    sample_rate: int,
    channels: int,
    snr_db: tuple[float, float],
    distractor_species: list[str],
    background_species: list[str],
) -> FieldRecording:
    """Render one field recording (arguments already validated by the caller)."""
    sr = sample_rate
    rng = synth._rng("field", species, individual, seed)
    n = max(round(duration_seconds * sr), 1)
    size = _size(n + sr)  # room for the longest reverb tail
    noise, kinds = _noise_bed(rng, n, sr, background_species)

    # the bird: its songs, dry, then reverb and distance
    dry = np.zeros(n)
    spans: list[tuple[int, int]] = []
    # a bout: songs follow each other after pauses of PAUSE seconds (a focal recording)
    start = int(rng.uniform(0.0, 1.5) * sr)
    while True:
        x = field_song(species, individual, int(rng.integers(2**62)), sr)
        level = 10 ** (rng.uniform(-4, 0) / 20)  # the bird turns its head, moves a little
        if spans and start + len(x) // 2 > n:  # at least half of a song fits, or stop
            break
        start = min(start, max(n - len(x) // 2, 0))
        spans.append((start, synth._add(dry, x * level / synth._rms(x), start, 0.0)))
        start = spans[-1][1] + int(rng.uniform(*PAUSE) * sr)
        if start >= n:
            break
    ir, rt60 = _room(rng, sr)
    distance = _lowpass(sr, size, float(np.exp(rng.uniform(np.log(4000), np.log(15000)))))
    song = _place(dry, ir, distance, size)
    mask = np.zeros(n, dtype=bool)
    for a, b in spans:
        mask[a:b] = True
    snr = float(rng.uniform(*snr_db))
    song *= 10 ** (snr / 20) * synth._rms(noise) / synth._rms(song[mask])

    # other species of the dataset, quieter than the bird
    distractor = np.zeros(n)
    chosen: list[str] = []
    if distractor_species and rng.random() < DISTRACTOR_PROBABILITY:
        for _ in range(int(rng.integers(1, 3))):
            name = distractor_species[int(rng.integers(len(distractor_species)))]
            x = field_song(name, int(rng.integers(10_000, 20_000)), int(rng.integers(2**62)), sr)
            x = (
                x
                / synth._rms(x)
                * synth._rms(song[mask])
                * 10 ** (-rng.uniform(*DISTRACTOR_DB) / 20)
            )
            synth._add(distractor, x, int(rng.integers(0, n)), 0.0)
            chosen.append(name)
        far = _lowpass(sr, size, float(np.exp(rng.uniform(np.log(2500), np.log(8000)))))
        distractor = _place(distractor, ir, far, size)

    # the recorder
    mix = _filter(song + distractor + noise, _recorder(rng, sr, size), size)
    mix += rng.standard_normal(n) * synth._rms(mix) * 10 ** (-rng.uniform(35, 60) / 20)
    if channels == 2:  # a second capsule: a little later, a little quieter, its own noise
        delay = int(rng.integers(0, max(int(0.001 * sr), 1) + 1))
        other = np.roll(mix, delay) * rng.uniform(0.6, 1.0)
        other += rng.standard_normal(n) * synth._rms(mix) * 10 ** (-rng.uniform(20, 40) / 20)
        audio = np.stack([mix, other], axis=1)
    else:
        audio = mix[:, None]
    clipped = 0.0
    if rng.random() < 0.1:  # driven into clipping
        audio = np.clip(audio * rng.uniform(1.3, 3.0) / np.max(np.abs(audio)), -1.0, 1.0)
        clipped = float(np.mean(np.abs(audio) >= 1.0))
    else:
        audio = audio * np.exp(rng.uniform(np.log(0.03), np.log(0.9))) / np.max(np.abs(audio))
    silence = 0.0
    if rng.random() < 0.15:  # a dropout: exact digital silence
        length = int(rng.uniform(0.3, 2.0) * sr)
        start = int(rng.choice([0, rng.integers(0, max(n - length, 1)), max(n - length, 0)]))
        audio[start : start + length] = 0.0
        silence = min(length, n - start) / sr
    return FieldRecording(
        audio=(audio[:, 0] if channels == 1 else audio).astype(np.float32),
        sample_rate=sr,
        snr_db=snr,
        song_spans=tuple((a / sr, b / sr) for a, b in spans),
        song=song.astype(np.float32),
        distractor=distractor.astype(np.float32),
        noise=noise.astype(np.float32),
        distractors=tuple(chosen),
        rt60_seconds=rt60,
        clipped_fraction=clipped,
        silence_seconds=silence,
        noise_kinds=tuple(kinds),
    )
