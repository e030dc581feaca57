"""Reliability round two (issue 11), items 4 and 6: datasets are indexed by what files
are, not what they are called; parameters that cannot be meant are refused.

Datasets are real folders of real WAV files with real symlinks and hard links; the
parameter cases run the real command line in a real process (``--threads 100000``
crashed the interpreter before).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from birdsong.dataset import index_dataset, split_recordings
from birdsong.errors import InvalidParameterError
from conftest import write_tone_dataset
from hostile_cases import SR, cli, one_line_error, probe_model, tone

# ==================================================== 4. one file, one label, one side


def _identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _species(root: Path) -> Path:
    return write_tone_dataset(
        root,
        species=("Arctic_Warbler", "Black_Redstart", "Coal_Tit"),
        individuals=2,
        recordings=2,
        seconds=1.0,
    )


def _assert_each_file_once(index) -> None:
    ids = [_identity(r.path) for r in index.recordings]
    assert len(ids) == len(set(ids))


@pytest.mark.hostile("datasets")
def test_folder_symlink_into_another_species_is_skipped_not_used_twice(tmp_path):
    """``Arctic_Warbler/x -> ../Black_Redstart``: each Black_Redstart recording is
    reachable under two labels. It is skipped under both and reported naming both
    labels, so no recording is used twice or lands on both sides of a split. Before:
    indexed under both labels, silently."""
    root = _species(tmp_path / "data")
    (root / "Arctic_Warbler" / "x").symlink_to(Path("..") / "Black_Redstart")
    index = index_dataset(root)
    _assert_each_file_once(index)
    assert index.counts() == {"Arctic_Warbler": 4, "Coal_Tit": 4}
    reasons = {s.path: s.reason for s in index.skipped}
    for wav in sorted((root / "Black_Redstart").glob("*.wav")):
        for seen_as in (wav, root / "Arctic_Warbler" / "x" / wav.name):
            assert "Arctic_Warbler, Black_Redstart" in reasons[str(seen_as)]
    assert "no usable recordings" in reasons[str(root / "Black_Redstart")]
    train, val = split_recordings(index, validation_fraction=0.5)
    assert not {_identity(r.path) for r in train.recordings} & {
        _identity(r.path) for r in val.recordings
    }


@pytest.mark.hostile("datasets")
def test_hard_link_across_species_is_skipped(tmp_path):
    """A hard link (another name for the same file, no symlink to see) from one species
    into another: skipped under both and reported."""
    root = _species(tmp_path / "data")
    src = next(iter(sorted((root / "Coal_Tit").glob("*.wav"))))
    os.link(src, root / "Arctic_Warbler" / "renamed.wav")
    index = index_dataset(root)
    _assert_each_file_once(index)
    assert index.counts() == {"Arctic_Warbler": 4, "Black_Redstart": 4, "Coal_Tit": 3}
    reasons = {s.path: s.reason for s in index.skipped}
    assert "2 species" in reasons[str(src)]
    assert "2 species" in reasons[str(root / "Arctic_Warbler" / "renamed.wav")]


@pytest.mark.hostile("datasets")
def test_species_folder_that_is_a_symlink_to_another(tmp_path):
    """``Dunnock -> Coal_Tit``: neither can be told apart; both species are reported as
    having no usable recordings, the others train as usual."""
    root = _species(tmp_path / "data")
    (root / "Dunnock").symlink_to("Coal_Tit")
    index = index_dataset(root)
    _assert_each_file_once(index)
    assert index.counts() == {"Arctic_Warbler": 4, "Black_Redstart": 4}
    reasons = {s.path: s.reason for s in index.skipped}
    assert "no usable recordings" in reasons[str(root / "Dunnock")]
    assert "no usable recordings" in reasons[str(root / "Coal_Tit")]


@pytest.mark.hostile("datasets")
def test_same_file_twice_under_one_species_is_used_once(tmp_path):
    """A symlinked copy inside the same species folder (``sub -> .``-like duplicates,
    a file symlink): used once, the second name reported."""
    root = _species(tmp_path / "data")
    src = next(iter(sorted((root / "Coal_Tit").glob("*.wav"))))
    (root / "Coal_Tit" / "again.wav").symlink_to(src.name)
    index = index_dataset(root)
    _assert_each_file_once(index)
    assert index.counts()["Coal_Tit"] == 4
    reasons = {s.path: s.reason for s in index.skipped}
    assert "used once" in reasons[str(root / "Coal_Tit" / "again.wav")]


# ====================================================== 6. parameters that cannot be meant
@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    pytest.importorskip("keras")
    return probe_model(tmp_path_factory.mktemp("probe") / "probe.tflite")


@pytest.mark.hostile("parameters")
@pytest.mark.parametrize("threads", ["100000", "0", "-4", "65536"])
def test_absurd_thread_counts_are_refused(tmp_path, model, threads):
    """``--threads 100000`` crashed the interpreter (segmentation fault); now one line
    naming ``--threads`` and the bound, exit 2. The library names ``num_threads``."""
    from birdsong.inference import Classifier, max_threads

    clip = tmp_path / "c.wav"
    sf.write(clip, tone(1.0), SR)
    proc = cli("predict", clip, "--model", model, "--threads", threads)
    line = one_line_error(proc)
    assert proc.returncode == 2 and "'--threads'" in line and f"[1, {max_threads()}]" in line
    with pytest.raises(InvalidParameterError, match="'num_threads'"):
        Classifier(model, num_threads=int(threads))


def test_reasonable_thread_counts_still_work(model):
    from birdsong.inference import Classifier, max_threads

    assert max_threads() >= 64
    for n in (1, 64):
        assert Classifier(model, num_threads=n).predict_windows(
            np.zeros((1, SR), np.float32)
        ).shape == (1, 3)


@pytest.mark.hostile("parameters")
@pytest.mark.parametrize("overlap", ["0.999", "0.96", "1.0", "5"])
def test_overlap_leaving_almost_no_hop_is_refused_by_its_name(tmp_path, model, overlap):
    """On a 1-s model ``--overlap 0.999`` would cut 1000 windows per second of audio
    (the issue's 3-s model at 2.999: 57,000 windows for a minute). Refused naming
    ``--overlap`` and the largest allowed value (0.95: hops of at least 1/20 window),
    never an internal name (hop)."""
    from birdsong.inference import hop_for_overlap

    clip = tmp_path / "c.wav"
    sf.write(clip, tone(3.0), SR)
    proc = cli("predict", clip, "--model", model, "--overlap", overlap)
    line = one_line_error(proc)
    assert "'--overlap'" in line and "[0, 0.95]" in line and "hop" not in line.split("(")[0]
    with pytest.raises(InvalidParameterError, match="'overlap'"):
        hop_for_overlap(1.0, float(overlap))
    assert hop_for_overlap(1.0, 0.95) == pytest.approx(0.05)


def test_largest_overlap_allowed_still_predicts(tmp_path, model):
    clip = tmp_path / "c.wav"
    sf.write(clip, tone(3.0), SR)
    proc = cli("predict", clip, "--model", model, "--overlap", "0.95", "--format", "json")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.hostile("parameters")
def test_spectrogram_of_a_long_file_says_what_it_drew(tmp_path, caplog):
    """A 620-s recording: ``spectrogram`` draws the first 600 s and says so (a warning
    naming the stretch drawn, the length, and --start/--duration); ``--start 610
    --duration 5`` draws that stretch (and names it); ``--start 615`` draws to the end
    and says nothing. Before: silently cut at 600 s, no way to see the rest."""
    from birdsong.cli import main

    pytest.importorskip("keras")
    clip = tmp_path / "long.wav"
    sf.write(
        clip,
        (0.01 * np.random.default_rng(0).standard_normal(620 * 4000)).astype(np.float32),
        4000,
        subtype="PCM_16",
    )
    common = ["--sample-rate", "8000", "--image-size", "32", "--clip-seconds", "1"]
    with caplog.at_level(logging.WARNING, logger="birdsong"):
        assert main(["spectrogram", str(clip), "-o", str(tmp_path / "all.png"), *common]) == 0
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "drew 0.0-600.0 s of 620.0 s only" in said and "--start/--duration" in said
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="birdsong"):
        assert (
            main(
                [
                    "spectrogram",
                    str(clip),
                    "-o",
                    str(tmp_path / "mid.png"),
                    "--start",
                    "610",
                    "--duration",
                    "5",
                    *common,
                ]
            )
            == 0
        )
    assert "drew 610.0-615.0 s of 620.0 s only" in caplog.records[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="birdsong"):
        assert (
            main(
                [
                    "spectrogram",
                    str(clip),
                    "-o",
                    str(tmp_path / "end.png"),
                    "--start",
                    "615",
                    *common,
                ]
            )
            == 0
        )
    assert not caplog.records
    assert (tmp_path / "all.png").stat().st_size > 0 and (tmp_path / "end.png").exists()
    with pytest.raises(InvalidParameterError, match="'start_seconds'"):
        from birdsong.images import render_recording

        render_recording(clip, tmp_path / "late.png", start_seconds=700.0)


@pytest.mark.hostile("parameters")
def test_spectrogram_hop_below_a_twentieth_of_a_window_is_refused(tmp_path):
    from birdsong.cli import main

    clip = tmp_path / "c.wav"
    sf.write(clip, tone(2.0), SR)
    with pytest.raises(InvalidParameterError, match="'hop_seconds'"):
        from birdsong.config import FeatureConfig
        from birdsong.images import render_recording

        render_recording(
            clip,
            tmp_path / "x.png",
            windows=True,
            hop_seconds=1e-4,
            config=FeatureConfig(sample_rate=SR, clip_seconds=1.0),
        )
    assert (
        main(
            [
                "spectrogram",
                str(clip),
                "-o",
                str(tmp_path / "y.png"),
                "--windows",
                "--hop",
                "0.0001",
            ]
        )
        == 2
    )
    assert not (tmp_path / "y.png").exists()
