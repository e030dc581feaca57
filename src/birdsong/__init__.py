"""birdsong: folders of bird recordings -> a bird-song classifier that runs anywhere.

Importing the package is light: it never imports TensorFlow. Training, evaluation and
export (``birdsong.train``, ``birdsong.evaluate``, ``birdsong.export``) load TensorFlow
when called and need the ``train`` extra; inference (``birdsong.predict``,
``birdsong.Classifier``) runs on the LiteRT interpreter alone.
"""

from __future__ import annotations

import logging
from typing import Any

__version__ = "0.1.0"

from .audio import load_audio, stream_windows  # noqa: E402
from .config import AugmentConfig, FeatureConfig, TrainConfig  # noqa: E402
from .errors import (  # noqa: E402
    AudioError,
    BirdsongError,
    DatasetError,
    InvalidParameterError,
    MissingDependencyError,
    ModelError,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AudioError",
    "AugmentConfig",
    "BirdsongError",
    "Classifier",
    "DatasetError",
    "FeatureConfig",
    "InvalidParameterError",
    "MissingDependencyError",
    "ModelError",
    "Prediction",
    "TrainConfig",
    "__version__",
    "evaluate",
    "export",
    "load_audio",
    "predict",
    "stream_windows",
    "train",
]

_LAZY = {
    "Classifier": ("inference", "Classifier"),
    "Prediction": ("inference", "Prediction"),
    "predict": ("inference", "predict"),
    "train": ("training", "train"),
    "evaluate": ("evaluate", "evaluate"),
    "export": ("export", "export_model"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'birdsong' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
