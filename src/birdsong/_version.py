"""The installed version of birdsong (from the package metadata)."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("birdsong")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0+unknown"
