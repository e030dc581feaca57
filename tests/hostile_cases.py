"""Shared pieces of the reliability tests (issue 11): a registry of hostile cases and
small real models whose outputs are a known function of the sound.

Registry: a test marked ``@pytest.mark.hostile("class")`` is one hostile case of that
class (each parametrisation counts once). The hooks below, imported by conftest.py,
count the cases that passed and print one line at the end of the session, e.g.
``hostile cases: 61 passed in 5 classes (datasets 6, model files 21, ...)``.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
SR = 16000

# --------------------------------------------------------------------------- registry
_KIND: dict[str, str] = {}
PASSED: Counter[str] = Counter()


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "hostile(kind): one hostile case of the reliability tests (counted in the session summary)",
    )


def pytest_collection_finish(session) -> None:
    for item in session.items:  # after -k / -m deselection
        mark = item.get_closest_marker("hostile")
        if mark is not None:
            _KIND[item.nodeid] = str(mark.args[0])


def pytest_runtest_logreport(report) -> None:
    if report.when == "call" and report.passed and report.nodeid in _KIND:
        PASSED[_KIND[report.nodeid]] += 1


def summary() -> str | None:
    if not _KIND:
        return None
    ran = Counter(_KIND.values())
    parts = ", ".join(f"{k} {PASSED[k]}/{ran[k]}" for k in sorted(ran))
    return (
        f"hostile cases: {sum(PASSED.values())} of {len(_KIND)} passed in {len(ran)} "
        f"classes ({parts})"
    )


def pytest_terminal_summary(terminalreporter) -> None:
    line = summary()
    if line:
        terminalreporter.write_sep("-", line)


# ------------------------------------------------------------------------ processes
def env() -> dict[str, str]:
    out = dict(os.environ)
    out["TF_CPP_MIN_LOG_LEVEL"] = "3"
    out["PYTHONUNBUFFERED"] = "1"
    out["PYTHONPATH"] = str(SRC) + os.pathsep + out.get("PYTHONPATH", "")
    return out


def cli(
    *args: str, timeout: float = 120, unprivileged: bool = False, **kwargs
) -> subprocess.CompletedProcess:
    """``python -m birdsong.cli ARGS`` in a real process. ``unprivileged``: without the
    capability that lets root write anywhere (so permissions apply, as for a user)."""
    cmd = [sys.executable, "-m", "birdsong.cli", *map(str, args)]
    if unprivileged:
        cmd = unprivileged_prefix() + cmd
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout, **kwargs)


def unprivileged_prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        import pytest

        pytest.skip("running as root without setpriv: permissions cannot apply")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def stderr_lines(text: str) -> list[str]:
    """Non-empty stderr lines, less LiteRT's own C++ log line when a model loads (not
    birdsong's to silence)."""
    return [
        x
        for x in text.splitlines()
        if x.strip() and not x.startswith("INFO: Created TensorFlow Lite XNNPACK delegate")
    ]


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The failure is one line on stderr, no traceback; return it."""
    assert proc.returncode not in (0, None), proc
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = stderr_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("birdsong: ")
    return lines[0]


# --------------------------------------------------------------------------- models
def tone(seconds: float, freq: float = 1000.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _probe_flatbuffer(kind: str) -> bytes:
    """A TFLite model (1, SR) -> 3 scores computed from the window's first 3 samples:
    ``softmax`` (probabilities), ``sqrt`` (NaN for a negative sample), ``scaled`` (5x:
    outside [0, 1]), ``reciprocal`` (infinite for a zero sample)."""
    import keras

    from birdsong.exporting import convert

    inp = keras.Input((SR,), name="waveform")
    pick = keras.layers.Dense(3, use_bias=False, name="first_three")
    x = pick(inp)
    if kind == "softmax":
        out = keras.layers.Activation("softmax")(keras.layers.Rescaling(10.0)(x))
    elif kind == "sqrt":
        out = keras.layers.Lambda(keras.ops.sqrt)(x)
    elif kind == "scaled":
        out = keras.layers.Rescaling(5.0)(x)
    elif kind == "reciprocal":
        out = keras.layers.Lambda(lambda v: 1.0 / v)(x)
    else:
        raise AssertionError(kind)
    model = keras.Model(inp, out)
    kernel = np.zeros((SR, 3), np.float32)
    kernel[0, 0] = kernel[1, 1] = kernel[2, 2] = 1.0
    pick.set_weights([kernel])
    return convert(model)


_FLAT: dict[str, bytes] = {}


def probe_model(
    path: Path,
    kind: str = "softmax",
    *,
    labels=("alpha", "beta", "gamma"),
    settings: dict | None = None,
) -> Path:
    """Write a probe model with birdsong metadata (labels, 16 kHz, 1-s windows)."""
    from birdsong.metadata import add_metadata

    if kind not in _FLAT:
        _FLAT[kind] = _probe_flatbuffer(kind)
    base = {"train": {"min_activity": 0.0}}
    data = add_metadata(
        _FLAT[kind],
        labels=list(labels),
        sample_rate=SR,
        num_samples=SR,
        settings=base if settings is None else settings,
    )
    path.write_bytes(data)
    return path


def with_members(
    model: bytes, members: dict[str, bytes | tuple[str, int]], *, compress: int = zipfile.ZIP_STORED
) -> bytes:
    """``model`` with its appended zip rebuilt: ``members`` replace or add files. A value
    ``(text, repeat)`` is streamed (``text * repeat``) so that huge members cost no
    memory here."""
    zf = zipfile.ZipFile(io.BytesIO(model))
    start = min(i.header_offset for i in zf.infolist())
    kept = {i.filename: zf.read(i) for i in zf.infolist() if i.filename not in members}
    out = io.BytesIO(model[:start])
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a") as z:
        for name, data in kept.items():
            z.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
        for name, data in members.items():
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            info.compress_type = compress
            if isinstance(data, tuple):
                chunk = (data[0] * 65536).encode()
                with z.open(info, "w", force_zip64=True) as fh:
                    for _ in range(data[1] // 65536):
                        fh.write(chunk)
            else:
                z.writestr(info, data)
    return out.getvalue()
