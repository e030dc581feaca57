"""Decode recordings to mono float32 at the model rate, and cut them into windows.

Light tier: numpy, soundfile (libsndfile: WAV, FLAC, OGG/Vorbis, MP3, AIFF, ...) and
soxr (a high-quality resampler). Long files are read in blocks, so a multi-hour field
recording is walked window by window in bounded memory with :func:`stream_windows`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .config import DEFAULT_SAMPLE_RATE
from .errors import AudioError, InvalidParameterError, parameter_error

__all__ = [
    "AUDIO_EXTENSIONS",
    "DEFAULT_SAMPLE_RATE",
    "MAX_ABS_SAMPLE",
    "AudioInfo",
    "Window",
    "activity",
    "activity_from_energy",
    "audio_info",
    "check_sample_rate",
    "frame",
    "frame_energy_db",
    "is_audio_file",
    "load_audio",
    "resample",
    "stream_windows",
]

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64")
_KNOWN_UNSUPPORTED = (".m4a", ".aac", ".mp4", ".wma", ".opus", ".webm", ".amr")
_FORMATS_HELP = "WAV, FLAC, OGG/Vorbis, MP3, AIFF (anything libsndfile decodes)"
#: Native sample rates outside this range are taken for a damaged header (a 1 Hz "file"
#: would be upsampled 32000-fold).
_NATIVE_RATES = (1000, 10_000_000)
#: Samples (frames x channels) decoded at once, whatever the rate and channel count.
_MAX_BLOCK_SAMPLES = 1 << 22
#: Larger sample magnitudes are not audio (float audio lies in [-1, 1], a little beyond
#: when clipped; even integer-scaled floats stay below 2**31): a damaged float file.
MAX_ABS_SAMPLE = 1e10

Source = str | os.PathLike | BinaryIO


def _name(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return str(getattr(source, "name", "<file object>"))


def is_audio_file(path: str | os.PathLike) -> bool:
    """True when the file name has an extension birdsong decodes."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def _check_path(source: Source) -> None:
    if not isinstance(source, (str, os.PathLike)):
        if not hasattr(source, "read"):
            raise InvalidParameterError(
                "The 'source' parameter must be a path or a binary file object. "
                f"Got {type(source).__name__} instead."
            )
        return
    path = Path(source)
    if not path.exists():
        if path.is_symlink():
            raise FileNotFoundError(
                f"No such audio file: {path} (a broken symbolic link or a symlink loop)"
            )
        raise FileNotFoundError(f"No such audio file: {path}")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not path.is_file():  # a FIFO or device would block or never end
        raise AudioError(f"{path}: not a regular file (a pipe, socket or device)")
    if path.suffix.lower() in _KNOWN_UNSUPPORTED:
        raise AudioError(
            f"{path}: the {path.suffix} format is not supported; convert it to one of "
            f"{_FORMATS_HELP} (e.g. ffmpeg -i in{path.suffix} out.flac)"
        )


def _native_path(source: str | os.PathLike):
    """The path for libsndfile: a name that is not valid in the file-system encoding
    (e.g. Latin-1 bytes on a UTF-8 system) is passed as the original bytes."""
    path = os.fspath(source)
    if isinstance(path, str) and sys.platform != "win32":
        try:
            path.encode(sys.getfilesystemencoding())
        except UnicodeEncodeError:
            return os.fsencode(path)
    return path


class _Guarded:
    """A file object for libsndfile's callbacks: a seek the object refuses (libsndfile
    asks for negative offsets in damaged files) reports "no move" instead of raising
    inside a C callback, where the exception would only be printed."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.name = _name(f)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return self._f.seek(offset, whence)
        except (ValueError, OSError):
            return self._f.tell()

    def tell(self) -> int:
        return self._f.tell()


def _open(source: Source):
    import soundfile as sf

    _check_path(source)
    try:
        return sf.SoundFile(
            _native_path(source) if isinstance(source, (str, os.PathLike)) else _Guarded(source)
        )
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, EOFError) as exc:
        why = str(exc)
        if "does not exist or is not a regular file" in why:
            # libsndfile's MP3 reader says this of any file it cannot parse
            why = "format not recognised, or a damaged stream"
        raise AudioError(
            f"{_name(source)}: cannot decode audio ({why}); supported formats: {_FORMATS_HELP}"
        ) from exc


def _check_header(name: str, rate: int, channels: int) -> None:
    low, high = _NATIVE_RATES
    if not low <= rate <= high:
        raise AudioError(
            f"{name}: implausible sample rate {rate} Hz in the header (expected "
            f"{low}..{high}); the file is damaged or not audio"
        )
    if channels <= 0:
        raise AudioError(f"{name}: invalid header ({channels} channels)")


@dataclass(frozen=True)
class AudioInfo:
    """What a file header says: native rate, channels, length."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def audio_info(source: Source) -> AudioInfo:
    """Read a file's header (cheap) or raise :class:`AudioError` naming the file."""
    with _open(source) as f:
        info = AudioInfo(
            _name(source),
            int(f.samplerate),
            int(f.channels),
            int(f.frames),
            str(f.format),
            str(f.subtype),
        )
    _check_header(info.path, info.sample_rate, info.channels)
    return info


def check_sample_rate(sample_rate: object, *, optional: bool = False) -> int | None:
    """An int in [1000, 768000] (an integral float is accepted); ``None`` if optional."""
    if sample_rate is None and optional:
        return None
    if isinstance(sample_rate, float) and sample_rate.is_integer():
        sample_rate = int(sample_rate)
    if (
        not isinstance(sample_rate, (int, np.integer))
        or isinstance(sample_rate, bool)
        or not 1000 <= sample_rate <= 768000
    ):
        raise parameter_error(
            "sample_rate",
            "an int in [1000, 768000]" + (" or None" if optional else ""),
            sample_rate,
        )
    return int(sample_rate)


def _to_mono(block: np.ndarray) -> np.ndarray:
    return block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]


def resample(signal: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """High-quality (soxr 'HQ') resampling of a 1-D float32 signal."""
    if orig_rate == target_rate:
        return np.asarray(signal, dtype=np.float32)
    import soxr

    return soxr.resample(
        np.asarray(signal, dtype=np.float32), orig_rate, target_rate, quality="HQ"
    ).astype(np.float32, copy=False)


def _check_samples(name: str, block: np.ndarray) -> None:
    if not np.isfinite(block).all():
        raise AudioError(f"{name}: the signal contains NaN or infinite samples")
    peak = float(np.abs(block).max()) if block.size else 0.0
    if peak > MAX_ABS_SAMPLE:
        raise AudioError(
            f"{name}: samples of magnitude {peak:.3g} are not audio (expected "
            "about [-1, 1]); the file is damaged"
        )


def _blocks(f, name: str, block_frames: int) -> Iterator[np.ndarray]:
    import soundfile as sf

    while True:
        try:
            block = f.read(block_frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise AudioError(f"{name}: decoding failed part-way ({exc})") from exc
        if block.shape[0] == 0:
            return
        _check_samples(name, block)
        yield _to_mono(block)


def _stream(
    source: Source, sample_rate: int | None, block_seconds: float
) -> Iterator[tuple[np.ndarray, int]]:
    """Yield (mono float32 block at the target rate, rate); raises AudioError if empty."""
    with _open(source) as f:
        name, native, channels = _name(source), int(f.samplerate), int(f.channels)
        _check_header(name, native, channels)
        rate = native if sample_rate is None else int(sample_rate)
        resampler = None
        if rate != native:
            import soxr

            resampler = soxr.ResampleStream(native, rate, 1, dtype="float32", quality="HQ")
        got = 0
        block_frames = max(1, min(int(block_seconds * native), _MAX_BLOCK_SAMPLES // channels))
        for block in _blocks(f, name, block_frames):
            got += block.shape[0]
            yield (block if resampler is None else resampler.resample_chunk(block)), rate
        if got == 0:
            raise AudioError(f"{name}: the file contains no samples")
        if resampler is not None:
            yield resampler.resample_chunk(np.zeros(0, np.float32), last=True), rate


def load_audio(
    source: Source,
    *,
    sample_rate: int | None = DEFAULT_SAMPLE_RATE,
    max_seconds: float | None = None,
) -> tuple[np.ndarray, int]:
    """Decode a recording to a mono float32 signal.

    Parameters
    ----------
    source : str, Path or binary file object
        WAV, FLAC, OGG/Vorbis, MP3, AIFF; 8/16/24/32-bit PCM or float; any rate.
    sample_rate : int or None
        Resample to this rate (soxr, high quality); ``None`` keeps the file's rate.
    max_seconds : float, optional
        Stop after this much audio (the rest of the file is not decoded).

    Returns
    -------
    signal : np.ndarray [shape=(n,), dtype=float32]
        Channels averaged to mono.
    sample_rate : int

    Raises
    ------
    FileNotFoundError
        The path does not exist (or is a broken symlink or a symlink loop).
    AudioError
        Undecodable, unsupported, empty, not a regular file, an implausible header
        (sample rate outside 1 kHz..10 MHz), NaN/Inf samples or samples beyond
        ``MAX_ABS_SAMPLE``, or too short to give one sample at ``sample_rate``; the
        message names the file. A WAV or MP3 cut short yields the samples present; a
        FLAC cut mid-stream raises ("decoding failed part-way").
    """
    sample_rate = check_sample_rate(sample_rate, optional=True)
    if max_seconds is not None and not (
        isinstance(max_seconds, (int, float)) and np.isfinite(max_seconds) and max_seconds > 0
    ):
        raise parameter_error("max_seconds", "a number > 0 or None", max_seconds)
    parts: list[np.ndarray] = []
    rate = sample_rate or 0
    total = 0
    limit = None if max_seconds is None else int(max_seconds * (sample_rate or 1))
    for block, rate in _stream(source, sample_rate, 30.0):
        if limit is not None and sample_rate is None and not parts and total == 0:
            limit = int(max_seconds * rate)  # type: ignore[operator]
        parts.append(block)
        total += block.shape[0]
        if limit is not None and total >= limit:
            break
    signal = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if limit is not None:
        signal = signal[:limit]
    if signal.size == 0:
        raise AudioError(f"{_name(source)}: the file holds too little audio to resample")
    return signal.astype(np.float32, copy=False), int(rate)


# ----------------------------------------------------------------------------- windows


def _window_count(length: int, size: int, hop: int) -> int:
    """Windows at 0, hop, 2*hop, ... covering every sample; at least one."""
    if length <= size:
        return 1
    return 1 + int(np.ceil((length - size) / hop))


def _hop_samples(
    clip_seconds: float, hop_seconds: float | None, sample_rate: int
) -> tuple[int, int]:
    size = int(round(clip_seconds * sample_rate))
    hop = size if hop_seconds is None else int(round(hop_seconds * sample_rate))
    if size < 1:
        raise parameter_error("clip_seconds", "> 0", clip_seconds)
    if hop < 1:
        raise parameter_error("hop_seconds", "> 0", hop_seconds)
    return size, hop


def frame(
    signal: np.ndarray, *, sample_rate: int, clip_seconds: float, hop_seconds: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a signal into fixed windows.

    Windows start at 0, hop, 2*hop, ... until every sample is covered. A clip shorter
    than one window, and the tail of a longer one, are padded with zeros at the end
    (silence, never a repeat of the song, so the model does not hear two songs).

    Returns
    -------
    windows : np.ndarray [shape=(n_windows, clip_seconds*sample_rate), dtype=float32]
    starts : np.ndarray [shape=(n_windows,)]  start time of each window in seconds
    """
    size, hop = _hop_samples(clip_seconds, hop_seconds, sample_rate)
    signal = np.asarray(signal, dtype=np.float32).reshape(-1)
    n = _window_count(signal.size, size, hop)
    padded = np.zeros((n - 1) * hop + size, np.float32)
    padded[: signal.size] = signal
    windows = np.lib.stride_tricks.sliding_window_view(padded, size)[::hop][:n].copy()
    return windows, np.arange(n) * hop / sample_rate


@dataclass(frozen=True)
class Window:
    """One window of a streamed recording."""

    start: float
    end: float
    samples: np.ndarray


def stream_windows(
    source: Source,
    *,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    clip_seconds: float = 3.0,
    hop_seconds: float | None = None,
    block_seconds: float = 60.0,
) -> Iterator[Window]:
    """Walk a recording of any length window by window in bounded memory.

    Yields the same windows as ``frame(load_audio(source)...)`` (same starts, same
    zero padding of the tail) while holding only about ``block_seconds`` of audio.
    ``end`` is the window's end in the recording, clipped to the recording's length.
    """
    sample_rate = check_sample_rate(sample_rate)
    size, hop = _hop_samples(clip_seconds, hop_seconds, sample_rate)
    buf = np.zeros(0, np.float32)
    offset = 0  # sample index of buf[0] in the recording
    next_start = 0
    total = 0
    for block, _ in _stream(source, sample_rate, block_seconds):
        total += block.shape[0]
        buf = np.concatenate([buf, block]) if buf.size else block
        while next_start + size <= offset + buf.size:
            i = next_start - offset
            yield Window(
                next_start / sample_rate,
                (next_start + size) / sample_rate,
                buf[i : i + size].copy(),
            )
            next_start += hop
        drop = min(next_start - offset, buf.size)
        if drop > 0:
            buf, offset = buf[drop:], offset + drop
    if total == 0:  # as load_audio: e.g. one sample at 48 kHz is nothing at 16 kHz
        raise AudioError(f"{_name(source)}: the file holds too little audio to resample")
    n = _window_count(total, size, hop)
    while next_start < n * hop and (next_start < total or next_start == 0):
        i = next_start - offset
        w = np.zeros(size, np.float32)
        part = buf[max(i, 0) : i + size]
        w[: part.size] = part
        yield Window(next_start / sample_rate, min(next_start + size, total) / sample_rate, w)
        next_start += hop


# ---------------------------------------------------------------------------- activity


def activity(
    windows: np.ndarray, *, sample_rate: int, noise_floor_db: float | None = None
) -> np.ndarray:
    """Score how much sound (above the background) each window holds, in [0, 1].

    The score is the fraction of 25-ms frames whose pre-emphasised energy is at least
    10 dB above the noise floor. Pre-emphasis (y[n] - 0.97 y[n-1]) keeps wind rumble
    from counting as song. The floor is the recording's 20th percentile frame energy
    (estimated across all given windows) unless ``noise_floor_db`` is given. Digital
    silence scores 0. Equal to ``activity_from_energy(frame_energy_db(windows))``.

    Parameters
    ----------
    windows : np.ndarray [shape=(n_windows, n_samples)]
    """
    return activity_from_energy(
        frame_energy_db(windows, sample_rate=sample_rate), noise_floor_db=noise_floor_db
    )


def frame_energy_db(windows: np.ndarray, *, sample_rate: int) -> np.ndarray:
    """Pre-emphasised energy (dB) of each window's 25-ms frames.

    Returns
    -------
    np.ndarray [shape=(n_windows, n_frames), dtype=float64]
    """
    w = np.atleast_2d(np.asarray(windows, dtype=np.float32))
    if w.shape[0] == 0:
        return np.zeros((0, max(1, w.shape[1] // max(1, int(0.025 * sample_rate)))))
    return np.concatenate(
        [_frame_energy_db(w[i : i + 8], sample_rate) for i in range(0, w.shape[0], 8)]
    )  # 8 rows: small copies


def activity_from_energy(
    energy_db: np.ndarray, *, noise_floor_db: float | None = None
) -> np.ndarray:
    """Activity per window from :func:`frame_energy_db` rows; the noise floor is the
    20th percentile of every frame given (the whole recording) unless given."""
    energy_db = np.atleast_2d(np.asarray(energy_db, dtype=np.float64))
    if energy_db.size == 0:
        return np.zeros(energy_db.shape[0], np.float32)
    floor = np.percentile(energy_db, 20) if noise_floor_db is None else noise_floor_db
    active = (energy_db >= floor + 10.0) & (energy_db > -100.0)
    return active.mean(axis=1).astype(np.float32)


def _frame_energy_db(w: np.ndarray, sample_rate: int) -> np.ndarray:
    """Pre-emphasised energy (dB) of 25-ms frames, shape ``(n_windows, n_frames)``."""
    hop = max(1, int(0.025 * sample_rate))
    emph = np.diff(w, axis=1, prepend=w[:, :1]) + 0.03 * w
    n_frames = max(1, emph.shape[1] // hop)
    frames = (
        emph[:, : n_frames * hop].reshape(w.shape[0], n_frames, -1)
        if emph.shape[1] >= hop
        else emph[:, None, :]
    )
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=2) + 1e-12)
