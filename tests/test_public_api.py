"""The package's public face: every name in ``__all__`` works, always.

Modelled on scikit-learn's public-functions test: walk ``__all__`` and check what each
name is, including after the submodules that implement them have been imported (an
import of ``birdsong.evaluation`` must never replace ``birdsong.evaluate``).
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from importlib import metadata

import birdsong

FUNCTIONS = {"evaluate", "export", "load_audio", "predict", "stream_windows", "train"}
ERRORS = {
    "AudioError",
    "BirdsongError",
    "DatasetError",
    "InvalidParameterError",
    "MissingDependencyError",
    "ModelError",
}


def _check_every_name() -> None:
    for name in birdsong.__all__:
        value = getattr(birdsong, name)
        if name in FUNCTIONS:
            assert inspect.isfunction(value), (name, value)
            params = inspect.signature(value).parameters.values()
            # options are explicit and keyword-only: no **kwargs hiding them
            assert not any(p.kind is p.VAR_KEYWORD for p in params), name
            assert value.__doc__, name
        elif name in ERRORS:
            assert issubclass(value, birdsong.BirdsongError)
        elif name == "__version__":
            assert value == metadata.version("birdsong")
        else:
            assert inspect.isclass(value) and value.__doc__, name


def test_every_public_name_is_what_it_says():
    assert set(birdsong.__all__) == set(dir(birdsong))
    _check_every_name()


def test_names_survive_importing_their_modules():
    for module in (
        "evaluation",
        "exporting",
        "workflow",
        "training",
        "inference",
        "rules",
        "rundir",
        "cli",
    ):
        importlib.import_module(f"birdsong.{module}")
    _check_every_name()
    assert birdsong.evaluate.__module__ == "birdsong.evaluation"
    assert birdsong.export.__module__ == "birdsong.exporting"
    assert birdsong.train.__module__ == "birdsong.workflow"


def test_importing_the_package_is_light():
    code = (
        "import sys, birdsong\n"
        "birdsong.Classifier, birdsong.predict, birdsong.WindowRules\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'librosa', 'matplotlib')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"
