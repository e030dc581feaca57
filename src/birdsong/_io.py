"""Safe file output: atomic writes (a temporary file in the same folder, then
``os.replace``), output-path checks made before any work, and text made safe to print."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from .errors import parameter_error

# C0 controls except tab and newline, DEL, C1 controls, the bidirectional overrides that
# can make a terminal show text in another order than it is stored, and lone surrogates
# (bytes of a file name that are not UTF-8, which a strict stream cannot encode).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_CONTROL_ALL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: object, *, newlines: bool = True) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``), so that a label or a
    file name read from a file cannot drive the user's terminal. ``newlines=False``
    escapes line breaks and tabs too (one table cell, one line)."""
    s = str(text)
    pattern = _CONTROL if newlines else _CONTROL_ALL
    return pattern.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), s)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _existing_ancestor(path: Path) -> Path:
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def check_output_file(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike] = (),
    name: str = "output",
    replace: bool = True,
) -> Path:
    """Check, before any work, that ``path`` can receive a file and holds no input.

    Parameters
    ----------
    path : path
        Where a file will be written.
    inputs : iterable of paths
        Files the command reads; writing over one of them (same real file) is refused.
    name : str
        The parameter to name in the message (``--output`` for the command line).
    replace : bool
        True when the file is written atomically (renamed into place): then an existing
        non-regular file (a device, a pipe) is refused as well, since it would be replaced.

    Raises
    ------
    InvalidParameterError
        ``path`` is an existing folder, lies below a file, is one of ``inputs``, or (with
        ``replace``) is an existing non-regular file; or its folder is not writable.
    """
    out = Path(path)
    text = os.fspath(path)
    if out.is_dir():
        raise parameter_error(name, "a file to write, not an existing folder", text)
    ancestor = _existing_ancestor(out)
    if not ancestor.is_dir():
        raise parameter_error(
            name, f"a file path whose folder can exist, but {ancestor} is a file", text
        )
    if out.exists():
        for item in inputs:
            if _same_file(out, Path(item)):
                raise parameter_error(
                    name, "a new file, not one of the inputs (it would be overwritten)", text
                )
        if replace and not out.is_file():
            raise parameter_error(
                name, "a regular file path (it exists and is not a regular file)", text
            )
    _check_writable(ancestor, name, text, out.exists() and not replace and out)
    return out


def check_output_dir(
    path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (), name: str = "output"
) -> Path:
    """Check, before any work, that ``path`` is or can become a writable folder that is
    neither an input nor inside one of the ``inputs`` folders."""
    out = Path(path)
    text = os.fspath(path)
    if out.exists() and not out.is_dir():
        raise parameter_error(name, "a folder, not an existing file", text)
    ancestor = out if out.is_dir() else _existing_ancestor(out)
    if not ancestor.is_dir():
        raise parameter_error(name, f"a folder path, but {ancestor} is a file", text)
    real = os.path.realpath(out)
    for item in inputs:
        top = os.path.realpath(item)
        if real == top or real.startswith(top.rstrip(os.sep) + os.sep):
            raise parameter_error(
                name,
                f"a folder outside the input {os.fspath(item)!r} "
                "(its files would mix with the inputs)",
                text,
            )
    _check_writable(ancestor, name, text, False)
    return out


def _check_writable(folder: Path, name: str, text: str, existing: Path | bool) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise parameter_error(name, f"in a writable folder ({folder}: permission denied)", text)
    if existing and not os.access(existing, os.W_OK):
        raise parameter_error(name, "a writable file (permission denied)", text)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's process, or cannot tell: leave its file alone
    return True


#: Hidden names seen in a folder at this process's first atomic write there. Leftovers
#: come from earlier, killed processes, so one listing per folder is enough; it keeps a
#: folder of 10,000 images from being listed 10,000 times.
_HIDDEN: dict[str, list[str]] = {}


def remove_stale_parts(path: str | os.PathLike) -> list[Path]:
    """Delete temporary files that interrupted atomic writes of ``path`` left behind
    (``.<name>.<pid>.<random>[suffix][.part]``) whose writing process is gone."""
    final = Path(path)
    folder = os.path.abspath(final.parent)
    hidden = _HIDDEN.get(folder)
    if hidden is None:
        try:
            with os.scandir(folder) as it:
                hidden = [e.name for e in it if e.name.startswith(".")]
        except OSError:
            hidden = []
        _HIDDEN[folder] = hidden
    removed: list[Path] = []
    prefix = f".{final.name}."
    for name in [n for n in hidden if n.startswith(prefix)]:
        rest = name[len(prefix) :]
        pid_text = rest.split(".", 1)[0]
        if pid_text.isdigit() and "." in rest:
            if _pid_alive(int(pid_text)):
                continue  # a write in progress (this or another live process)
        elif not rest.endswith(".part"):
            continue  # not a temporary file of ours
        target = os.path.join(folder, name)
        if os.path.islink(target) or not os.path.isfile(target):
            continue
        with contextlib.suppress(OSError):
            os.unlink(target)
            removed.append(Path(target))
        hidden.remove(name)
    return removed


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back at once
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    An interrupted write leaves no half-written file under the final name; a temporary
    file left by a killed process is removed by the next write of the same name.
    ``suffix`` keeps an extension that a writer insists on (e.g. ``.keras``).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(final)  # what an interrupted (killed) earlier write left behind
    fd, tmp = tempfile.mkstemp(
        prefix=f".{final.name}.{os.getpid()}.", suffix=suffix + ".part", dir=final.parent
    )
    # mkstemp makes the file private (0600); give it the mode a plain open() would
    with contextlib.suppress(OSError, AttributeError):  # no fchmod on Windows
        os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp_path = Path(tmp)
    if suffix:
        # Some writers (Keras) need the real extension at the very end.
        tmp_path.unlink()
        tmp_path = tmp_path.with_name(tmp_path.name[: -len(".part")])
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(
    path: str | os.PathLike, text: str, *, errors: str = "surrogateescape"
) -> Path:
    """Write UTF-8 text atomically. A file name that is not valid UTF-8 (decoded by
    Python with surrogate escapes) is written back as its original bytes instead of
    failing the whole report; read such files with ``errors="surrogateescape"``."""
    with atomic_open(path, "w", encoding="utf-8", errors=errors, newline="") as fh:
        fh.write(text)
    return Path(path)
