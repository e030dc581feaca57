"""Indexing a species tree and splitting it by recording / individual."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from birdsong.dataset import index_dataset, split_from_csv, split_recordings
from birdsong.errors import DatasetError
from conftest import write_tone_dataset


def test_index_labels_sorted_and_groups_by_individual(tmp_path):
    root = write_tone_dataset(tmp_path / "d", species=("mid", "high", "low"), individuals=3)
    idx = index_dataset(root)
    assert idx.labels == ("high", "low", "mid")
    assert len(idx.recordings) == 3 * 3 * 2
    groups = {r.group for r in idx.recordings}
    assert "high/ind01" in groups and len(groups) == 9


def test_split_never_shares_a_group_and_is_stratified(tmp_path):
    root = write_tone_dataset(tmp_path / "d", individuals=5, recordings=3)
    idx = index_dataset(root)
    for seed in range(5):
        train, val = split_recordings(idx, validation_fraction=0.3, seed=seed)
        tg = {r.group for r in train.recordings}
        vg = {r.group for r in val.recordings}
        assert not tg & vg
        assert {r.label for r in val.recordings} == set(idx.labels)
        assert len(train.recordings) + len(val.recordings) == len(idx.recordings)
    a = split_recordings(idx, validation_fraction=0.3, seed=1)[1].recordings
    b = split_recordings(idx, validation_fraction=0.3, seed=1)[1].recordings
    assert a == b


def test_split_without_individuals_groups_by_recording(tmp_path):
    root = tmp_path / "d"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(5):
            sf.write(root / name / f"XC{i}.wav", np.zeros(800, np.float32) + 0.1, 8000)
    idx = index_dataset(root)
    train, val = split_recordings(idx, validation_fraction=0.2, seed=0)
    assert len(val.recordings) == 2 and len(train.recordings) == 8


def test_species_with_few_birds_train_on_all_of_them(tmp_path, caplog):
    """``min_groups``: a species with fewer birds than that keeps all of them for
    training (logged); the others are still validated; below 2 is refused."""
    from birdsong.errors import InvalidParameterError

    root = write_tone_dataset(tmp_path / "d", species=("high", "low"), individuals=3)
    write_tone_dataset(root, species=("mid",), individuals=5)
    idx = index_dataset(root)
    train, val = split_recordings(idx, validation_fraction=0.2, seed=0, min_groups=4)
    assert {r.label for r in val.recordings} == {"mid"}
    assert len(train.recordings) + len(val.recordings) == len(idx.recordings)
    assert "species high has 3 group(s)" in caplog.text and "fewer than 4" in caplog.text
    # the old rule (only a single bird stays in training) is min_groups=2
    _, val2 = split_recordings(idx, validation_fraction=0.2, seed=0, min_groups=2)
    assert {r.label for r in val2.recordings} == {"high", "low", "mid"}
    with pytest.raises(InvalidParameterError, match="min_groups"):
        split_recordings(idx, min_groups=1)


def test_bad_files_are_skipped_and_reported(tmp_path):
    root = write_tone_dataset(tmp_path / "d")
    (root / "high" / "broken.wav").write_bytes(b"RIFF....garbage")
    (root / "high" / "notes.txt").write_text("field notes")
    idx = index_dataset(root)
    reasons = {s.path.split("/")[-1]: s.reason for s in idx.skipped}
    assert "broken.wav" in reasons and "cannot decode" in reasons["broken.wav"]
    assert "notes.txt" in reasons and "not an audio file" in reasons["notes.txt"]
    assert len(idx.recordings) == 12


def test_single_species_is_an_error(tmp_path):
    root = write_tone_dataset(tmp_path / "d", species=("high",))
    with pytest.raises(DatasetError, match="found 1 species.*at least 2 are needed"):
        index_dataset(root)


def test_split_csv(tmp_path):
    root = write_tone_dataset(tmp_path / "d", individuals=1, recordings=2)
    idx = index_dataset(root)
    csv_path = tmp_path / "split.csv"
    csv_path.write_text(
        "path,split\nhigh/high_ind01_rec01.wav,train\nhigh/high_ind01_rec02.wav,test\n"
    )
    parts = split_from_csv(idx, csv_path)
    assert [r.path.name for r in parts["test"].recordings] == ["high_ind01_rec02.wav"]
    csv_path.write_text("path,split\nhigh/nope.wav,train\n")
    with pytest.raises(DatasetError, match="line 2.*nope.wav"):
        split_from_csv(idx, csv_path)
    csv_path.write_text("path,split,label\nhigh/high_ind01_rec01.wav,train,Dodo\n")
    with pytest.raises(DatasetError, match="unknown label 'Dodo'"):
        split_from_csv(idx, csv_path)


def test_png_tree_is_recognised(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "p" / name).mkdir(parents=True)
        (tmp_path / "p" / name / "x_w000.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert index_dataset(tmp_path / "p").kind == "images"
