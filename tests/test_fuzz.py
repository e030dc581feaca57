"""Property tests (hypothesis) over the audio loader and the frontend (issue 6, item 4).

For any bytes in a file or a buffer, :func:`birdsong.load_audio` returns a finite mono
float32 signal or raises a :class:`~birdsong.BirdsongError` (or FileNotFoundError);
never another exception, a crash or a hang. For any array, ``Classifier.predict``
returns scores that are probabilities or raises a BirdsongError; the
``MelSpectrogram`` layer maps any waveform the loader can return (finite, magnitude
at most ``MAX_ABS_SAMPLE``) to a finite image in [-1, 1].

Runs are deterministic by default (``derandomize``), so the suite never turns flaky;
set ``BIRDSONG_FUZZ=explore`` to search with fresh random inputs and ten times more
examples. Hypothesis' example database is off: nothing is written outside tmp_path.
"""

from __future__ import annotations

import faulthandler
import io
import os
import struct

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from birdsong.audio import MAX_ABS_SAMPLE, activity, frame, load_audio, stream_windows
from birdsong.errors import BirdsongError
from conftest import SR, tiny_features

# an exception raised inside a C callback (e.g. soundfile's seek) is only printed:
# count it as a failure
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")

_EXPLORE = os.environ.get("BIRDSONG_FUZZ") == "explore"
settings.register_profile(
    "birdsong-fuzz",
    deadline=None,
    database=None,
    derandomize=not _EXPLORE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fuzz(n: int):
    """``n`` examples (x10 when exploring), no deadline, no database."""
    return settings(settings.get_profile("birdsong-fuzz"), max_examples=n * (10 if _EXPLORE else 1))


HANG_SECONDS = 300


@pytest.fixture(autouse=True)
def _no_hang():
    """A hang inside a C decoder cannot be interrupted from Python: after HANG_SECONDS
    dump every thread's stack and exit, so a hang fails loudly instead of forever."""
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module", autouse=True)
def _hypothesis_home(tmp_path_factory):
    """Hypothesis caches what it learns (e.g. constants of the code under test) under
    ``./.hypothesis``; keep it under the test's temporary folder instead."""
    from hypothesis import configuration

    configuration.set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    configuration.set_hypothesis_home_dir(None)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# ------------------------------------------------------------------ the audio loader


def _seed_files() -> dict[str, bytes]:
    """Small valid files of each container, to mutate."""
    t = np.arange(int(0.3 * SR)) / SR
    x = (0.4 * np.sin(2 * np.pi * 1500 * t)).astype(np.float32)
    stereo = np.stack([x, -x], axis=1)
    out = {}
    for name, data, fmt, subtype in [
        ("pcm16.wav", x, "WAV", "PCM_16"),
        ("float.wav", x, "WAV", "FLOAT"),
        ("u8.wav", stereo, "WAV", "PCM_U8"),
        ("s.flac", stereo, "FLAC", "PCM_16"),
        ("s.ogg", x, "OGG", "VORBIS"),
        ("s.mp3", x, "MP3", "MPEG_LAYER_III"),
        ("s.aiff", x, "AIFF", "PCM_24"),
    ]:
        buf = io.BytesIO()
        sf.write(buf, data, SR, format=fmt, subtype=subtype)
        out[name] = buf.getvalue()
    return out


SEEDS = _seed_files()
EXTS = [".wav", ".flac", ".mp3", ".ogg", ".aiff", ".au"]
RATES = st.sampled_from([None, 16000, 32000])


def _check_loaded(result, rate) -> None:
    y, sr = result
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.ndim == 1
    assert y.size > 0 and np.isfinite(y).all()
    assert isinstance(sr, int) and sr > 0
    if rate is not None:
        assert sr == rate


def _load_or_refuse(source, rate) -> None:
    try:
        result = load_audio(source, sample_rate=rate)
    except (BirdsongError, FileNotFoundError):
        return
    _check_loaded(result, rate)


@fuzz(80)
@given(data=st.binary(max_size=3000), ext=st.sampled_from(EXTS), rate=RATES)
def test_any_bytes_in_a_file(scratch, data, ext, rate):
    path = scratch / f"any{ext}"
    path.write_bytes(data)
    _load_or_refuse(path, rate)


@st.composite
def mutated(draw):
    """A valid file with bytes overwritten, a chunk inserted, and/or cut short."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    buf = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(0, 8))):
        pos = draw(st.integers(0, len(buf) - 1))
        # the header is where the structure lives: bias edits towards it
        if draw(st.booleans()):
            pos = pos % 96
        buf[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        pos = draw(st.integers(0, len(buf)))
        buf[pos:pos] = draw(st.binary(min_size=1, max_size=64))
    if draw(st.booleans()):
        buf = buf[: draw(st.integers(0, len(buf)))]
    return name, bytes(buf)


@fuzz(120)
@given(case=mutated(), rate=RATES)
def test_mutated_valid_files(scratch, case, rate):
    name, data = case
    path = scratch / f"mut{os.path.splitext(name)[1]}"
    path.write_bytes(data)
    _load_or_refuse(path, rate)
    _load_or_refuse(io.BytesIO(data), rate)


@st.composite
def wav_headers(draw):
    """A RIFF/WAVE header with arbitrary fields (format, channels, rate, bits, sizes)
    and an arbitrary payload: absurd rates, thousands of channels, lying sizes."""
    fmt_tag = draw(st.sampled_from([1, 3, 6, 7, 0xFFFE, 0, 2, 0x55]))
    channels = draw(st.one_of(st.integers(0, 8), st.integers(0, 0xFFFF)))
    rate = draw(
        st.one_of(st.sampled_from([1, 100, 999, 8000, 44100, 384000]), st.integers(0, 0xFFFFFFFF))
    )
    bits = draw(st.sampled_from([0, 1, 8, 12, 16, 24, 32, 64, 255]))
    align = max(1, channels * bits // 8) & 0xFFFF
    payload = draw(st.binary(max_size=2048))
    data_size = draw(st.one_of(st.just(len(payload)), st.integers(0, 0xFFFFFFFF)))
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, (rate * align) & 0xFFFFFFFF, align, bits)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_size)
        + payload
    )
    riff_size = draw(st.one_of(st.just(len(body)), st.integers(0, 0xFFFFFFFF)))
    return b"RIFF" + struct.pack("<I", riff_size) + body


@fuzz(120)
@given(data=wav_headers(), rate=RATES)
def test_wav_headers_with_arbitrary_fields(scratch, data, rate):
    path = scratch / "hdr.wav"
    path.write_bytes(data)
    _load_or_refuse(path, rate)


@fuzz(40)
@given(case=mutated(), hop=st.sampled_from([None, 0.05, 0.13]))
def test_stream_windows_of_mutated_files(scratch, case, hop):
    """Windows are finite, full length, start at 0, hop apart; or a BirdsongError."""
    name, data = case
    path = scratch / f"win{os.path.splitext(name)[1]}"
    path.write_bytes(data)
    try:
        windows = list(
            stream_windows(
                path, sample_rate=SR, clip_seconds=0.1, hop_seconds=hop, block_seconds=0.07
            )
        )
    except (BirdsongError, FileNotFoundError):
        return
    assert windows and windows[0].start == 0.0
    step = hop or 0.1
    for k, w in enumerate(windows):
        assert w.samples.shape == (int(0.1 * SR),) and np.isfinite(w.samples).all()
        assert w.start == pytest.approx(k * step, abs=1e-9) and w.end > w.start


# ------------------------------------------------------------------------- arrays

FINITE = st.floats(-MAX_ABS_SAMPLE, MAX_ABS_SAMPLE, allow_nan=False, width=32)


@fuzz(60)
@given(
    x=hnp.arrays(np.float32, st.integers(0, 3000), elements=FINITE),
    clip=st.sampled_from([0.1, 0.25, 1.0]),
    hop=st.sampled_from([None, 0.05, 0.3]),
)
def test_frame_and_activity_of_any_finite_signal(x, clip, hop):
    windows, starts = frame(x, sample_rate=1000, clip_seconds=clip, hop_seconds=hop)
    size = int(round(clip * 1000))
    assert windows.shape[1] == size and len(starts) == len(windows) >= 1
    last = int(round(starts[-1] * 1000))
    assert last + size >= x.size  # every sample is covered
    scores = activity(windows, sample_rate=1000)
    assert scores.shape == (len(windows),) and ((scores >= 0) & (scores <= 1)).all()


@st.composite
def any_arrays(draw):
    """Arrays of any dtype, 0-3 dims and any values, NaN, Inf and extremes included."""
    dtype = draw(
        st.sampled_from([np.float32, np.float64, np.int16, np.uint8, np.bool_, np.complex64])
    )
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=40))
    if draw(st.booleans()):  # long enough for several windows at a low rate
        shape = draw(st.sampled_from([(2500,), (1200, 2), (3, 1100)]))
    if dtype in (np.float32, np.float64):
        width = 32 if dtype == np.float32 else 64
        elements = st.one_of(
            st.floats(width=width),
            st.sampled_from([0.0, 1.0, -1.0, 1e-40, 3e38, np.nan, np.inf]).map(dtype),
        )
        fill = st.floats(-1, 1, width=width) if draw(st.booleans()) else None
        return draw(hnp.arrays(dtype, shape, elements=elements, fill=fill))
    return draw(hnp.arrays(dtype, shape))


SAMPLE_RATES = st.one_of(
    st.sampled_from([1000, 8000, 16000, 44100]),
    st.integers(-5, 2_000_000),
    st.floats(allow_nan=True),
    st.none(),
)


@pytest.fixture(scope="module")
def classifier(trained_run):
    from birdsong.inference import Classifier

    return Classifier(trained_run.tflite_path)


@fuzz(100)
@given(x=any_arrays(), rate=SAMPLE_RATES, overlap=st.sampled_from([0.0, 0.5]))
@example(x=np.zeros((2, 3, 400), np.float32), rate=16000, overlap=0.0)  # 3-D
@example(x=np.ones(500, np.complex64), rate=16000, overlap=0.0)
@example(x=np.full(500, 1e30), rate=16000, overlap=0.0)  # finite, absurd
@example(x=np.full(500, 3e38, np.float32), rate=16000, overlap=0.0)
@example(x=np.zeros((5, 0), np.float32), rate=16000, overlap=0.0)
@example(x=np.zeros(500, np.float32), rate=-16000, overlap=0.0)
@example(x=np.zeros(500, np.float32), rate=float("nan"), overlap=0.0)
@example(x=np.zeros(500, np.float32), rate=10**9, overlap=0.0)
@example(x=np.array([0.5], np.float32), rate=48000, overlap=0.0)  # < 1 sample at 16k
@example(x=np.int16([32767, -32768] * 800), rate=16000, overlap=0.5)
def test_classifier_on_any_array(classifier, x, rate, overlap):
    """Any array: a Prediction whose scores are probabilities, or a BirdsongError."""
    try:
        pred = classifier.predict(x, sample_rate=rate, overlap=overlap)
    except BirdsongError:
        return
    scores = np.array(list(pred.scores.values()))
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
    assert scores.sum() == pytest.approx(1.0, abs=1e-3)
    assert pred.label in classifier.labels and pred.windows and pred.duration >= 0
    for w in pred.windows:
        assert np.isfinite(w.scores).all() and 0.0 <= w.activity <= 1.0


@pytest.fixture(scope="module")
def frontend():
    from birdsong.features import MelSpectrogram

    return MelSpectrogram(tiny_features())


@st.composite
def waveforms(draw):
    """Windows (batch, 16000) built from a shape (silence, constant, sine, noise, click,
    square, denormals) and a magnitude anywhere from 1e-45 to MAX_ABS_SAMPLE."""
    n = tiny_features().num_samples
    batch = draw(st.integers(1, 3))
    kind = draw(
        st.sampled_from(["zeros", "constant", "sine", "noise", "click", "square", "pattern"])
    )
    amp = draw(
        st.one_of(st.just(0.0), st.floats(-45, np.log10(MAX_ABS_SAMPLE)).map(lambda e: 10.0**e))
    )
    sign = draw(st.sampled_from([1.0, -1.0]))
    t = np.arange(n) / n
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "zeros":
        x = np.zeros((batch, n))
    elif kind == "constant":
        x = np.ones((batch, n))
    elif kind == "sine":
        x = np.sin(2 * np.pi * draw(st.floats(0, 8000)) * t)[None].repeat(batch, 0)
    elif kind == "noise":
        x = rng.standard_normal((batch, n))
    elif kind == "click":
        x = np.zeros((batch, n))
        x[:, draw(st.integers(0, n - 1))] = 1.0
    elif kind == "square":
        x = np.sign(np.sin(2 * np.pi * draw(st.floats(1, 8000)) * t))[None].repeat(batch, 0)
    else:
        pattern = draw(
            hnp.arrays(np.float32, st.integers(1, 64), elements=st.floats(-1, 1, width=32))
        )
        x = np.resize(pattern, (batch, n))
    x = np.clip(sign * amp * x, -MAX_ABS_SAMPLE, MAX_ABS_SAMPLE)
    return x.astype(np.float32)


@fuzz(50)
@given(x=waveforms())
def test_frontend_image_is_finite_and_in_range(frontend, x):
    image = np.asarray(frontend(x))
    assert image.shape == (x.shape[0], 32, 32, 1)
    assert np.isfinite(image).all()
    assert image.min() >= -1.0 and image.max() <= 1.0
    if not x.any():
        assert (image == -1.0).all()
