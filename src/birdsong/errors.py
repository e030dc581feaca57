"""One error hierarchy for birdsong.

Every error is a :class:`BirdsongError` and also the builtin a caller would
naturally catch, so ``except ValueError`` keeps working around bad parameters
and ``except ImportError`` around a missing extra.
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "BirdsongError",
    "DatasetError",
    "InvalidParameterError",
    "MissingDependencyError",
    "ModelError",
    "parameter_error",
]


class BirdsongError(Exception):
    """Base class of every error raised on purpose by birdsong."""


class InvalidParameterError(BirdsongError, ValueError):
    """A parameter (argument, config field, CLI option) has an unusable value."""


class AudioError(BirdsongError, ValueError):
    """A recording cannot be decoded or holds no usable signal."""


class DatasetError(BirdsongError, ValueError):
    """A dataset folder or split file cannot be used as a whole."""


class ModelError(BirdsongError, RuntimeError):
    """A model file is missing, truncated, foreign or lacks what birdsong needs."""


class MissingDependencyError(BirdsongError, ImportError):
    """An optional dependency (an extra) is needed for this operation."""


def parameter_error(
    name: str, requirement: str, value: object, *, owner: str | None = None
) -> InvalidParameterError:
    """The one message for a bad parameter, naming it and the value received:
    ``The 'fmax' parameter of FeatureConfig must be <= 16000. Got 20000.0 instead.``"""
    where = f" of {owner}" if owner else ""
    error = InvalidParameterError(
        f"The {name!r} parameter{where} must be {requirement}. Got {value!r} instead."
    )
    # kept so that the command line can say the same with its own option names
    error.parameter, error.requirement, error.value, error.owner = name, requirement, value, owner
    return error


def require(module: str, *, extra: str = "train", purpose: str = ""):
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        what = f" to {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"birdsong needs the '{module}' package{what}; install it with "
            f"pip install 'birdsong[{extra}]'. ({exc})"
        ) from exc
