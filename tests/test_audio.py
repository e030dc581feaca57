"""Audio decoding, resampling, windows and activity (real files written to tmp_path)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from birdsong.audio import activity, audio_info, frame, load_audio, stream_windows
from birdsong.errors import AudioError, InvalidParameterError


def _tone(seconds=1.0, sr=44100, freq=1000.0, channels=1, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    x = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.mark.parametrize(
    "ext,subtype",
    [
        ("wav", "PCM_16"),
        ("wav", "PCM_24"),
        ("wav", "PCM_32"),
        ("wav", "FLOAT"),
        ("wav", "PCM_U8"),
        ("flac", "PCM_16"),
        ("ogg", "VORBIS"),
        ("mp3", "MPEG_LAYER_III"),
    ],
)
def test_decodes_formats_and_bit_depths(tmp_path, ext, subtype):
    path = tmp_path / f"clip.{ext}"
    sf.write(path, _tone(1.0, 44100), 44100, subtype=subtype)
    y, sr = load_audio(path)
    assert sr == 32000 and y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size - 32000) < 0.06 * 32000  # mp3/ogg codecs pad a little
    # a 1 kHz tone survives: dominant frequency within 10 Hz
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * sr / y.size - 1000.0) < 10
    assert 0.3 < np.abs(y).max() < 0.7


def test_stereo_and_multichannel_mix_to_mono(tmp_path):
    x = np.zeros((16000, 6), np.float32)
    x[:, 0] = 0.6
    sf.write(tmp_path / "six.wav", x, 16000, subtype="FLOAT")
    y, _ = load_audio(tmp_path / "six.wav", sample_rate=None)
    assert np.allclose(y, 0.1, atol=1e-6)


def test_resampling_keeps_length_and_pitch(tmp_path):
    sf.write(tmp_path / "a.wav", _tone(2.0, 48000, 3000.0), 48000)
    y, sr = load_audio(tmp_path / "a.wav", sample_rate=22050)
    assert sr == 22050 and abs(y.size - 44100) <= 2
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * sr / y.size - 3000.0) < 5


def test_accepts_str_path_and_file_object(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, _tone(0.5, 32000), 32000)
    a, _ = load_audio(str(path))
    with open(path, "rb") as fh:
        b, _ = load_audio(fh)
    c, _ = load_audio(io.BytesIO(path.read_bytes()))
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(tmp_path / "nope.wav")


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"", "cannot decode"),
        (b"not audio at all" * 10, "cannot decode"),
    ],
)
def test_undecodable_files_name_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match="bad.wav") as err:
        load_audio(path)
    assert reason in str(err.value)


def test_zero_length_and_nonfinite(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(tmp_path / "empty.wav")
    x = np.zeros(1000, np.float32)
    x[10] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav")


def test_unsupported_container_lists_formats(tmp_path):
    (tmp_path / "song.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A ")
    with pytest.raises(AudioError, match="FLAC") as err:
        load_audio(tmp_path / "song.m4a")
    assert "song.m4a" in str(err.value)


def test_bad_sample_rate_parameter(tmp_path):
    with pytest.raises(InvalidParameterError, match="'sample_rate'"):
        load_audio(tmp_path / "x.wav", sample_rate=-5)


def test_frame_pads_short_clips_with_silence():
    w, starts = frame(np.ones(1000, np.float32), sample_rate=1000, clip_seconds=3.0)
    assert w.shape == (1, 3000) and starts.tolist() == [0.0]
    assert w[0, :1000].min() == 1.0 and w[0, 1000:].max() == 0.0


def test_frame_covers_every_sample():
    x = np.arange(7300, dtype=np.float32)
    w, starts = frame(x, sample_rate=1000, clip_seconds=3.0, hop_seconds=1.0)
    assert starts.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert w[-1, 2299] == 7299 and w[-1, 2300] == 0


def test_stream_windows_equals_frame_in_bounded_blocks(tmp_path):
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(int(7.3 * 22050))).astype(np.float32)
    sf.write(tmp_path / "long.wav", x, 22050, subtype="FLOAT")
    full, _ = load_audio(tmp_path / "long.wav", sample_rate=16000)
    ref, starts = frame(full, sample_rate=16000, clip_seconds=2.0, hop_seconds=0.75)
    got = list(
        stream_windows(
            tmp_path / "long.wav",
            sample_rate=16000,
            clip_seconds=2.0,
            hop_seconds=0.75,
            block_seconds=0.4,
        )
    )
    assert [w.start for w in got] == pytest.approx(starts.tolist())
    assert np.abs(np.stack([w.samples for w in got]) - ref).max() < 1e-4
    assert got[-1].end == pytest.approx(7.3, abs=1e-3)


def test_activity_prefers_windows_with_sound():
    sr = 16000
    rng = np.random.default_rng(1)
    noise = 0.01 * rng.standard_normal((4, sr)).astype(np.float32)
    t = np.arange(sr) / sr
    noise[2] += 0.3 * np.sin(2 * np.pi * 4000 * t) * (t < 0.5)
    scores = activity(noise, sample_rate=sr)
    assert scores.argmax() == 2 and scores[2] > 0.3 and scores[[0, 1, 3]].max() < 0.1
    assert activity(np.zeros((1, sr)), sample_rate=sr)[0] == 0.0


def test_audio_info_reads_header(tmp_path):
    sf.write(tmp_path / "s.flac", _tone(1.5, 48000, channels=2), 48000)
    info = audio_info(tmp_path / "s.flac")
    assert (info.sample_rate, info.channels) == (48000, 2)
    assert info.duration == pytest.approx(1.5)
