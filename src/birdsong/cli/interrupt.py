"""Ctrl-C that cannot be lost.

Python's own SIGINT handler raises ``KeyboardInterrupt`` at whatever bytecode runs
next. When that is a finaliser (an object's ``__del__`` or a weakref callback run by the
garbage collector, e.g. while a file is decoded), Python prints "Exception ignored in
..." and carries on: the interrupt is lost and ``birdsong predict`` went on to the end
and exited 0. The handler here raises the same ``KeyboardInterrupt`` and also latches
the signal, and the long loops call :func:`check` between files, so a swallowed
interrupt stops the run at the next file at the latest.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_seen = threading.Event()


def _handler(signum, frame) -> None:
    _seen.set()
    raise KeyboardInterrupt


@contextlib.contextmanager
def latched() -> Iterator[None]:
    """Install the latching handler for the duration, where Python's default one is in
    place and this is the main thread (an embedding host's own handler is left alone)."""
    _seen.clear()
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _seen.clear()


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C came and its exception was swallowed."""
    if _seen.is_set():
        raise KeyboardInterrupt
