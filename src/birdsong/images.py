"""Spectrogram pictures for people, rendered by the model's own frontend layer.

Two kinds: a whole-recording picture with time and frequency axes (optionally with the
per-window images the model sees underneath), and the model images themselves written
as PNG files (grey scale, the exact image the network receives, [-1, 1] -> 0..255).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import numpy as np

from ._io import atomic_write_bytes, check_output_file
from .audio import _stream, audio_info, frame
from .config import FeatureConfig, min_hop_seconds
from .errors import AudioError, parameter_error
from .plots import new_figure, save_figure

__all__ = ["model_images", "render_recording", "save_image_png"]

log = logging.getLogger(__name__)


def _frontend(config: FeatureConfig):
    from .features import MelSpectrogram

    return MelSpectrogram(config)


def model_images(
    signal: np.ndarray,
    *,
    config: FeatureConfig,
    hop_seconds: float | None = None,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """The images the model sees for each window of a signal at ``config.sample_rate``.

    Returns images ``(n_windows, H, W, 3)`` in [-1, 1] and window start times (s).
    ``hop_seconds`` is at least 1/20 of a window (closer windows are near copies).
    """
    check_hop(config, hop_seconds)
    windows, starts = frame(
        signal,
        sample_rate=config.sample_rate,
        clip_seconds=config.clip_seconds,
        hop_seconds=hop_seconds,
    )
    layer = _frontend(config)
    images = [
        np.asarray(layer(windows[i : i + batch_size])) for i in range(0, len(windows), batch_size)
    ]
    return np.concatenate(images), starts


def png_grey8(grey: np.ndarray) -> bytes:
    """A true 8-bit greyscale PNG (colour type 0) of a ``uint8`` array ``(H, W)``."""
    import struct
    import zlib

    grey = np.ascontiguousarray(grey, dtype=np.uint8)
    h, w = grey.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = np.hstack([np.zeros((h, 1), np.uint8), grey]).tobytes()  # filter 0 per row
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows, 6))
        + chunk(b"IEND", b"")
    )


def check_hop(
    config: FeatureConfig, hop_seconds: float | None, *, name: str = "hop_seconds"
) -> None:
    """``hop_seconds`` is None (one window after another) or in
    [:func:`~birdsong.config.min_hop_seconds`, 60 s] (pictures may skip between windows)."""
    if hop_seconds is None:
        return
    low = min_hop_seconds(config.clip_seconds)
    ok = (
        isinstance(hop_seconds, int | float)
        and not isinstance(hop_seconds, bool)
        and np.isfinite(hop_seconds)
        and low <= hop_seconds <= 60.0
    )
    if not ok:
        raise parameter_error(
            name,
            f"a number of seconds in [{low:g}, 60] (1/20 of a "
            f"{config.clip_seconds:g}-s window at least)",
            hop_seconds,
        )


def _excerpt(
    source, *, sample_rate: int, start_seconds: float, max_seconds: float | None
) -> tuple[np.ndarray, bool, float]:
    """Samples from ``start_seconds`` for at most ``max_seconds``, whether the recording
    goes on after them, and the seconds read. Blocks before the start are decoded and
    dropped, so memory stays bounded by the excerpt."""
    first = int(round(start_seconds * sample_rate))
    last = None if max_seconds is None else first + int(round(max_seconds * sample_rate))
    parts: list[np.ndarray] = []
    pos, more = 0, False
    for block, _ in _stream(source, sample_rate, 30.0):
        if last is not None and pos >= last:
            more = block.size > 0
            break
        n = block.shape[0]
        lo, hi = max(first - pos, 0), n if last is None else min(last - pos, n)
        if hi > lo:
            parts.append(block[lo:hi])
        pos += n
        if last is not None and pos > last:
            more = True
            break
    if not parts:
        raise parameter_error(
            "start_seconds",
            f"before the end of the recording ({pos / sample_rate:g} s)",
            start_seconds,
        )
    return np.concatenate(parts).astype(np.float32, copy=False), more, pos / sample_rate


def save_image_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write one model image (H, W, channels) in [-1, 1] as an 8-bit grey PNG,
    atomically (the channels are identical; the first is written)."""
    grey = np.clip((np.asarray(image)[..., 0] + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    return atomic_write_bytes(path, png_grey8(grey))


def _mel_ticks(config: FeatureConfig) -> tuple[list[float], list[str]]:
    from .features import hz_to_mel

    lo, hi = hz_to_mel(config.fmin), hz_to_mel(config.fmax)
    ticks = [
        f
        for f in (100, 250, 500, 1000, 2000, 4000, 8000, 12000, 16000)
        if config.fmin <= f <= config.fmax
    ]
    pos = [(float(hz_to_mel(f)) - lo) / (hi - lo) * config.n_mels for f in ticks]
    labels = [f"{f / 1000:g}k" if f >= 1000 else str(f) for f in ticks]
    return pos, labels


def render_recording(
    source,
    out_png: str | os.PathLike,
    *,
    config: FeatureConfig | None = None,
    windows: bool = False,
    hop_seconds: float | None = None,
    start_seconds: float = 0.0,
    max_seconds: float | None = 600.0,
    title: str | None = None,
) -> Path:
    """Draw a recording's mel spectrogram (time and frequency axes) to a PNG.

    The picture uses the same STFT, mel filterbank and dB scale as the model. With
    ``windows=True`` the per-window model images are drawn in a row underneath.
    ``start_seconds`` and ``max_seconds`` choose the stretch drawn (default: the first
    10 minutes); a recording that goes on beyond it is logged as a warning, so a cut
    picture never passes for the whole recording. ``out_png`` may not be ``source``.
    """
    config = config or FeatureConfig()
    is_path = isinstance(source, str | os.PathLike)
    check_output_file(out_png, inputs=[source] if is_path else [], name="out_png")
    if not (
        isinstance(start_seconds, int | float) and np.isfinite(start_seconds) and start_seconds >= 0
    ):
        raise parameter_error("start_seconds", "a number of seconds >= 0", start_seconds)
    if max_seconds is not None and not (
        isinstance(max_seconds, int | float) and np.isfinite(max_seconds) and max_seconds > 0
    ):
        raise parameter_error("max_seconds", "a number of seconds > 0, or None", max_seconds)
    check_hop(config, hop_seconds)
    rate = config.sample_rate
    signal, more, _ = _excerpt(
        source, sample_rate=rate, start_seconds=float(start_seconds), max_seconds=max_seconds
    )
    if more:
        name = Path(str(getattr(source, "name", source))).name
        total = ""
        if is_path:
            with contextlib.suppress(AudioError, OSError):
                total = f" of {audio_info(source).duration:.1f} s"
        shown = (start_seconds, start_seconds + signal.size / rate)
        log.warning(
            "%s: drew %.1f-%.1f s%s only (choose the stretch with start_seconds/"
            "max_seconds, on the command line --start/--duration)",
            name,
            *shown,
            total,
        )
    if signal.size < config.n_fft:
        signal = np.pad(signal, (0, config.n_fft - signal.size))
    layer = _frontend(config)
    db = np.asarray(layer.decibels(signal[None]))[0].T  # (n_mels, frames)
    duration = signal.size / rate
    offset = float(start_seconds)
    images = starts = None
    if windows:
        images, starts = model_images(signal, config=config, hop_seconds=hop_seconds)
    rows = 2 if windows else 1
    fig = new_figure(figsize=(min(24, 4 + duration * 0.8), 4.2 * rows))
    ax = fig.add_subplot(rows, 1, 1)
    top = max(float(db.max()), config.min_reference_db)
    mesh = ax.imshow(
        db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(offset, offset + duration, 0, config.n_mels),
        vmin=top - config.db_range,
        vmax=top,
        interpolation="nearest",
    )
    pos, labels = _mel_ticks(config)
    ax.set_yticks(pos, labels)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz, mel scale)")
    ax.set_title(title or Path(str(getattr(source, "name", source))).name)
    fig.colorbar(mesh, ax=ax, label="dB re full scale", pad=0.01)
    if images is not None and starts is not None:
        n = len(images)
        for i, (img, start) in enumerate(zip(images[:12], starts[:12])):
            sub = fig.add_subplot(rows, min(n, 12), min(n, 12) + i + 1)
            sub.imshow(img[..., 0], cmap="gray", vmin=-1, vmax=1)
            begin = offset + start
            sub.set_title(f"{begin:.1f}-{begin + config.clip_seconds:.1f} s", fontsize=8)
            sub.axis("off")
    return save_figure(fig, out_png)
