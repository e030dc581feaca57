"""birdsong: folders of bird recordings -> a bird-song classifier that runs anywhere.

Importing the package is light: it never imports TensorFlow. Training, evaluation and
export (``birdsong.train``, ``birdsong.evaluate``, ``birdsong.export``) load TensorFlow
when called and need the ``train`` extra; inference (``birdsong.predict``,
``birdsong.Classifier``) runs on the LiteRT interpreter alone.

The public API is what ``__all__`` lists, plus the modules :mod:`birdsong.audio`,
:mod:`birdsong.config`, :mod:`birdsong.errors`, :mod:`birdsong.inference`,
:mod:`birdsong.metadata` and :mod:`birdsong.rules`. Every other module is internal and
may change between releases.
"""

from __future__ import annotations

import logging
from typing import Any

from ._version import __version__
from .audio import load_audio, stream_windows  # noqa: E402
from .config import AugmentConfig, FeatureConfig, TrainConfig, WindowRules  # noqa: E402
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
    "TrainResult",
    "WindowRules",
    "__version__",
    "evaluate",
    "export",
    "load_audio",
    "predict",
    "stream_windows",
    "train",
]

# Public name -> (module, attribute), imported on first use. No module is named like a
# public function, so importing a submodule never hides one of these names.
_LAZY = {
    "Classifier": ("inference", "Classifier"),
    "Prediction": ("inference", "Prediction"),
    "predict": ("inference", "predict"),
    "train": ("workflow", "train"),
    "TrainResult": ("workflow", "TrainResult"),
    "evaluate": ("evaluation", "evaluate"),
    "export": ("exporting", "export_model"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'birdsong' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
