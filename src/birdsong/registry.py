"""Remember the model most recently trained or exported on this machine.

The record is a small JSON file in the user's cache directory (``$BIRDSONG_CACHE_DIR``,
else ``$XDG_CACHE_HOME/birdsong``, else ``~/.cache/birdsong``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ._io import atomic_write_text

__all__ = ["cache_dir", "latest_model", "remember_model"]


def cache_dir() -> Path:
    env = os.environ.get("BIRDSONG_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "birdsong"


def remember_model(path: str | os.PathLike) -> Path:
    """Record ``path`` as the latest model; returns the record file."""
    record = cache_dir() / "latest_model.json"
    data = {"path": str(Path(path).resolve()), "time": time.time()}
    return atomic_write_text(record, json.dumps(data) + "\n")


def latest_model() -> Path | None:
    """The latest recorded model, or None when none is recorded or it has gone."""
    record = cache_dir() / "latest_model.json"
    try:
        path = Path(json.loads(record.read_text(encoding="utf-8"))["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return path if path.exists() else None
