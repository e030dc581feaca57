"""Interrupted training runs, killed for real (SIGKILL), then resumed.

A resumed run continues from its last committed epoch with the optimizer state saved
beside it, keeps the best epoch across the interruption, and a run killed after
training (while saving its results) is finished from its best weights: the same model
an uninterrupted run gives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras")

from conftest import REPO, write_tone_dataset  # noqa: E402

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from conftest import tiny_config
    from birdsong import training, workflow
    from birdsong.rundir import RunDir

    where = {where!r}
    if where == "phase1-epoch2":
        real = training._progress_bar

        def progress_bar(phase, epochs, enabled):
            cb = real(phase, epochs, enabled)
            end = cb.on_epoch_end

            def on_epoch_end(epoch, logs=None):
                end(epoch, logs)
                if phase == 1 and epoch == 1:  # after the checkpoint and the backup
                    os.kill(os.getpid(), signal.SIGKILL)

            cb.on_epoch_end = on_epoch_end
            return cb

        training._progress_bar = progress_bar
    elif where == "final-save":
        def write_history(self, history):
            os.kill(os.getpid(), signal.SIGKILL)

        RunDir.write_history = write_history
    workflow.train({data!r}, {run!r}, config=tiny_config(epochs_frozen=3, epochs_finetune=2,
                                                          patience=5),
                   export=False)
""")


def _killed_run(tmp_path: Path, data: Path, where: str) -> Path:
    run = tmp_path / f"run-{where}"
    script = tmp_path / f"train_{where}.py"
    script.write_text(
        SCRIPT.format(tests=str(REPO / "tests"), where=where, data=str(data), run=str(run))
    )
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    return run


def _weights(path: Path) -> list[np.ndarray]:
    from birdsong.model import load_keras_model

    return load_keras_model(path).get_weights()


def test_killed_mid_phase_resumes_from_its_last_epoch(tmp_path):
    from birdsong import workflow

    data = write_tone_dataset(tmp_path / "data")
    run = _killed_run(tmp_path, data, "phase1-epoch2")
    state = json.loads((run / "state.json").read_text())
    assert (state["phase"], state["epoch"]) == (1, 2)
    assert state["backup"] == "phase1-epoch2.weights.h5"  # weights and optimizer state
    assert (run / ".backup" / state["backup"]).exists()
    assert not (run / "model.keras").exists()

    result = workflow.train(data, run, resume=True, export=False)
    assert [r["epoch"] for r in result.history["phase1"]] == [1, 2, 3]
    assert [r["epoch"] for r in result.history["phase2"]] == [1, 2]
    assert result.model_path.exists() and result.report is not None
    assert not (run / ".backup").exists()  # cleaned up once training ended


def test_killed_while_saving_resumes_to_the_same_model(tmp_path):
    from birdsong import workflow
    from conftest import tiny_config

    data = write_tone_dataset(tmp_path / "data")
    run = _killed_run(tmp_path, data, "final-save")
    assert json.loads((run / "state.json").read_text())["phase"] == "done"
    assert not (run / "report").exists()

    resumed = workflow.train(data, run, resume=True, export=False)
    whole = workflow.train(
        data,
        tmp_path / "whole",
        export=False,
        config=tiny_config(epochs_frozen=3, epochs_finetune=2, patience=5),
    )
    assert resumed.history == whole.history
    for a, b in zip(_weights(resumed.model_path), _weights(whole.model_path)):
        np.testing.assert_array_equal(a, b)
    assert resumed.report["per_recording"] == whole.report["per_recording"]

    # resuming a finished run reproduces its artifacts
    again = workflow.train(data, run, resume=True, export=False)
    for a, b in zip(_weights(again.model_path), _weights(resumed.model_path)):
        np.testing.assert_array_equal(a, b)
    assert again.report["per_recording"] == resumed.report["per_recording"]
