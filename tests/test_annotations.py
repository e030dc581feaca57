"""Annotation tables: Raven, Audacity and CSV files written here, paired with real audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from birdsong.annotation_index import (
    AnnotatedRecording,
    index_annotations,
    recording_targets,
    window_labels,
)
from birdsong.annotations import (
    Annotation,
    read_audacity,
    read_csv,
    read_raven,
    read_table,
    write_raven,
)
from birdsong.dataset import Skipped
from birdsong.errors import InvalidParameterError

SR = 16000

RAVEN_HEADER = (
    "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
    "High Freq (Hz)\tSpecies\tNotes\n"
)


def write_wav(path: Path, seconds: float, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = 0.01 * np.random.default_rng(0).standard_normal(int(seconds * sr))
    sf.write(path, noise.astype(np.float32), sr, subtype="PCM_16")
    return path


def reasons(skipped) -> dict[int, str]:
    return {s.line: s.reason for s in skipped}


# ---------------------------------------------------------------------------------- Raven
def test_raven_reads_each_selection_once_and_reports_bad_rows_by_line(tmp_path):
    table = tmp_path / "rec1.Table.1.selections.txt"
    table.write_text(
        RAVEN_HEADER
        + "1\tWaveform 1\t1\t1.5\t3.25\t0\t0\tCoal_Tit\t\n"  # line 2: same selection ...
        + "1\tSpectrogram 1\t1\t1.5\t3.25\t4000\t7000\tCoal_Tit\tclear\n"  # ... line 3
        + "2\tSpectrogram 1\t1\t5.0\t4.0\t1000\t2000\tCoal_Tit\t\n"  # 4: end before start
        + "3\tSpectrogram 1\t1\tabc\t6.0\t1000\t2000\tCoal_Tit\t\n"  # 5: not a number
        + "\n"  # 6: blank lines are not rows
        + "4\tSpectrogram 1\t1\t7.0\t8.0\t1000\t2000\t  \t\n"  # 7: empty label
        + "5\tSpectrogram 1\t1\t9.0\t9.5\t2000\t1000\tBrambling\t\n"  # 8: high < low
        + "6\tSpectrogram 1\t1\t10.0\t12.0\t\t\tBrambling\t\n",  # 9: no band: fine
        encoding="utf-8",
    )
    parsed = read_raven(table, file="rec1.wav")
    assert parsed.format == "raven"
    assert [
        (a.start, a.end, a.label, a.low_freq, a.high_freq, a.line) for a in parsed.annotations
    ] == [(1.5, 3.25, "Coal_Tit", 4000.0, 7000.0, 3), (10.0, 12.0, "Brambling", None, None, 9)]
    assert all(a.file == "rec1.wav" and a.source == str(table) for a in parsed.annotations)
    why = reasons(parsed.skipped)
    assert set(why) == {4, 5, 7, 8}
    assert "not after start" in why[4] and "'abc' is not a number" in why[5]
    assert "empty label" in why[7] and "below low frequency" in why[8]
    assert all(s.table == str(table) for s in parsed.skipped)
    assert parsed.skipped[0].path == f"{table}:4"  # lists beside dataset.Skipped


def test_raven_species_column_default_names_custom_name_and_missing(tmp_path):
    table = tmp_path / "t.txt"
    table.write_text(
        "Selection\tBegin Time (s)\tEnd Time (s)\tAnnotation\tMy Bird\n"
        "1\t0.0\t1.0\tcoaltit\tCoal_Tit\n",
        encoding="utf-8",
    )
    assert read_raven(table).annotations[0].label == "coaltit"  # "Annotation" is tried
    custom = read_raven(table, species_column="my bird")  # case-insensitive
    assert custom.annotations[0].label == "Coal_Tit"
    missing = read_raven(table, species_column="Taxon")
    assert missing.annotations == []
    assert missing.skipped[0].line == 1 and "Taxon" in missing.skipped[0].reason
    other = tmp_path / "notraven.txt"
    other.write_text("Start\tStop\tSpecies\n", encoding="utf-8")
    assert "not a Raven selection table" in read_raven(other).skipped[0].reason


def test_raven_begin_file_and_file_offset_and_windows_paths(tmp_path):
    table = tmp_path / "listfile.txt"
    table.write_text(
        "Selection\tBegin Time (s)\tEnd Time (s)\tBegin Path\tFile Offset (s)\tSpecies\n"
        "1\t65.0\t67.5\tC:\\data\\site2\\b.wav\t5.0\tBrambling\n",
        encoding="utf-8",
    )
    a = read_raven(table).annotations[0]
    # on a table spanning several files the row starts at its offset within Begin File
    assert (a.file, a.start, a.end) == ("b.wav", 5.0, 7.5)


# ------------------------------------------------------------------------------- Audacity
def test_audacity_labels_with_frequency_lines_and_bad_rows(tmp_path):
    table = tmp_path / "rec2.txt"
    table.write_text(
        "0.500000\t2.000000\tCommon_Blackbird\n"  # 1
        "\\\t1500.000000\t2800.000000\n"  # 2: the band of the label above, not a label
        "3.000000\t3.000000\tCoal_Tit\n"  # 3: a point label has no duration
        "4.0\t5.5\t\n"  # 4: empty label
        "six\t7.0\tCoal_Tit\n"  # 5: not a number
        "8.0\t9.25\tCoal Tit\twith tab\n"  # 6: tabs inside the label are kept as text
        "10.0\n",  # 7: too few fields
        encoding="utf-8",
    )
    parsed = read_audacity(table, file="rec2.flac")
    assert read_table(table).format == "audacity"  # a .txt without Raven's header
    assert [
        (a.start, a.end, a.label, a.low_freq, a.high_freq, a.line) for a in parsed.annotations
    ] == [
        (0.5, 2.0, "Common_Blackbird", 1500.0, 2800.0, 1),
        (8.0, 9.25, "Coal Tit\twith tab", None, None, 6),
    ]
    assert set(reasons(parsed.skipped)) == {3, 4, 5, 7}
    assert "not after start" in reasons(parsed.skipped)[3]
    readme = tmp_path / "README.txt"  # prose beside the recordings: one record, not 3
    readme.write_text("Recorded at dawn.\n\nMic:\tSM4\nGain 12 dB\n", encoding="utf-8")
    assert [(s.line, s.reason) for s in read_table(readme).skipped] == [
        (1, "not an annotation table (no line starts with two times separated by a tab)")
    ]


# ------------------------------------------------------------------------------------ CSV
def test_csv_rows_and_bad_rows(tmp_path):
    table = tmp_path / "labels.csv"
    table.write_text(
        "File,Start,End,Label,low_freq\n"
        "a.wav,0.0,1.5,Coal_Tit,4000\n"  # 2
        "a.wav,2,1,Coal_Tit,\n"  # 3: end before start
        '"b.wav",1.0,2.0,"Brambling, male",\n'  # 4: quoted comma
        "b.wav,inf,2.0,Brambling,\n",  # 5: not finite
        encoding="utf-8",
    )
    parsed = read_csv(table)
    assert [(a.file, a.start, a.end, a.label, a.low_freq, a.line) for a in parsed.annotations] == [
        ("a.wav", 0.0, 1.5, "Coal_Tit", 4000.0, 2),
        ("b.wav", 1.0, 2.0, "Brambling, male", None, 4),
    ]
    assert set(reasons(parsed.skipped)) == {3, 5}
    bad = tmp_path / "bad.csv"
    bad.write_text("path,begin,end,species\n", encoding="utf-8")
    assert "lacks file, start, label" in read_csv(bad).skipped[0].reason


# -------------------------------------------------------------------------------- pairing
def test_index_pairs_tables_by_name_and_by_file_column_and_reports_problems(tmp_path):
    root = tmp_path / "field"
    write_wav(root / "rec1.wav", 10.0)
    write_wav(root / "site" / "rec2.flac", 6.0)  # rec2.txt <-> rec2.flac
    sf.write(root / "rec3.flac", np.zeros(SR * 4, np.float32), SR, subtype="PCM_16")
    write_wav(root / "lonely.wav", 2.0)  # no table names it
    (root / "rec1.Table.1.selections.txt").write_text(
        RAVEN_HEADER
        + "1\tSpectrogram 1\t1\t1.0\t2.0\t1000\t2000\tCoal_Tit\t\n"
        + "2\tSpectrogram 1\t1\t9.5\t10.005\t1000\t2000\tBrambling\t\n"  # clipped to 10 s
        + "3\tSpectrogram 1\t1\t9.0\t12.0\t1000\t2000\tBrambling\t\n"  # 4: past the end
        + "4\tSpectrogram 1\t1\t11.0\t12.0\t1000\t2000\tBrambling\t\n"  # 5: after the end
        + "5\tSpectrogram 1\t1\t3.0\t4.0\t1000\t2000\tWren\t\n",  # 6: not in labels
        encoding="utf-8",
    )
    (root / "site" / "rec2.txt").write_text("0.5\t1.5\tBrambling\n", encoding="utf-8")
    (root / "annotations").mkdir()
    (root / "annotations" / "all.csv").write_text(
        "file,start,end,label\n"
        "rec3.flac,0.5,1.0,Coal_Tit\n"  # found by file name anywhere under the root
        "missing.wav,0.5,1.0,Coal_Tit\n",  # 3: unknown file
        encoding="utf-8",
    )
    (root / "orphan.Table.1.selections.txt").write_text(
        RAVEN_HEADER + "1\tSpectrogram 1\t1\t1.0\t2.0\t1000\t2000\tCoal_Tit\t\n", encoding="utf-8"
    )
    index = index_annotations(root, labels=("Brambling", "Coal_Tit"), partial={"rec2"})
    assert index.labels == ("Brambling", "Coal_Tit")
    by_name = {r.path.name: r for r in index.recordings}
    assert set(by_name) == {"rec1.wav", "rec2.flac", "rec3.flac"}
    rec1 = by_name["rec1.wav"]
    assert rec1.duration == pytest.approx(10.0)
    assert [(a.start, a.end, a.label) for a in rec1.annotations] == [
        (1.0, 2.0, "Coal_Tit"),
        (9.5, 10.0, "Brambling"),
    ]
    assert all(a.file == str(root / "rec1.wav") for a in rec1.annotations)
    assert rec1.complete and not by_name["rec2.flac"].complete
    assert by_name["rec3.flac"].annotations[0].label == "Coal_Tit"
    assert index.unannotated == [root / "lonely.wav"]
    problems = {(Path(s.table).name, s.line): s.reason for s in index.skipped}
    assert "past the end" in problems[("rec1.Table.1.selections.txt", 4)]
    assert "after the recording ends" in problems[("rec1.Table.1.selections.txt", 5)]
    assert "'Wren' is not one of the labels" in problems[("rec1.Table.1.selections.txt", 6)]
    assert "unknown file 'missing.wav'" in problems[("all.csv", 3)]
    assert "no recording named orphan" in problems[("orphan.Table.1.selections.txt", 2)]
    assert "1 row(s)" in problems[("orphan.Table.1.selections.txt", 2)]  # once per table
    assert len(index.skipped) == 5


def test_index_reports_an_unreadable_recording_and_keeps_the_rest(tmp_path):
    write_wav(tmp_path / "good.wav", 3.0)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav file")
    for stem in ("good", "broken"):
        (tmp_path / f"{stem}.txt").write_text("0.5\t1.0\tCoal_Tit\n", encoding="utf-8")
    index = index_annotations(tmp_path)
    assert [r.path.name for r in index.recordings] == ["good.wav"]
    assert index.recordings[0].complete
    assert not index_annotations(tmp_path, partial="good").recordings[0].complete
    assert index_annotations(tmp_path, partial="goo").recordings[0].complete  # names, not text
    assert [Path(s.path).name for s in index.skipped if isinstance(s, Skipped)] == ["broken.wav"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        index_annotations(tmp_path / "nowhere")


# -------------------------------------------------------------------------------- windows
@pytest.mark.parametrize(
    ("window_start", "expected"),
    [
        (3.01, 0.0),  # 0.99 s of a 2-s selection lies in the 3-s window: just below half
        (3.0, 1.0),  # exactly half of the selection
        (2.99, 1.0),  # just above
    ],
)
def test_window_label_at_the_selection_fraction_boundary(window_start, expected):
    song = [Annotation("r.wav", 2.0, 4.0, "Coal_Tit")]
    got = window_labels(
        song, [window_start], clip_seconds=3.0, labels=["Brambling", "Coal_Tit"], min_overlap=0.5
    )
    assert got.dtype == np.float32 and got.shape == (1, 2)
    assert got.tolist() == [[0.0, expected]]


@pytest.mark.parametrize(
    ("window_start", "expected"),
    [
        (8.51, 0.0),  # a 20-s reeling song covers 0.49 of a 1-s window at the song's end
        (8.5, 1.0),  # half the window
        (8.49, 1.0),
    ],
)
def test_window_label_at_the_window_fraction_boundary(window_start, expected):
    song = [Annotation("r.wav", 0.0, 9.0, "Grasshopper")]
    got = window_labels(
        song, [window_start], clip_seconds=1.0, labels=["Grasshopper"], min_overlap=0.5
    )
    assert got[0, 0] == expected


def test_window_labels_multi_hot_over_many_windows_and_errors():
    songs = [
        Annotation("r.wav", 0.2, 0.8, "a"),
        Annotation("r.wav", 0.5, 2.6, "b"),
        Annotation("r.wav", 1.2, 1.4, "other"),
    ]  # not in labels: ignored
    got = window_labels(songs, np.arange(0.0, 3.0, 1.0), clip_seconds=1.0, labels=["a", "b"])
    assert got.tolist() == [[1, 1], [0, 1], [0, 1]]  # b: 0.5 s of window 0 = half of it
    assert window_labels([], [0.0, 1.0], clip_seconds=1.0, labels=["a"]).tolist() == [[0], [0]]
    with pytest.raises(InvalidParameterError, match="one recording"):
        window_labels(
            [Annotation("x.wav", 0, 1, "a"), Annotation("y.wav", 0, 1, "a")],
            [0.0],
            clip_seconds=1.0,
            labels=["a"],
        )
    with pytest.raises(InvalidParameterError, match="'min_overlap'.*Got 0"):
        window_labels(songs, [0.0], clip_seconds=1.0, labels=["a"], min_overlap=0)
    with pytest.raises(InvalidParameterError, match="'clip_seconds'"):
        window_labels(songs, [0.0], clip_seconds=float("nan"), labels=["a"])


def test_recording_targets_marks_empty_windows_of_partial_recordings_unknown():
    songs = (Annotation("r.wav", 1.0, 2.0, "a"),)
    starts = [0.0, 1.0, 2.0]
    full = AnnotatedRecording(Path("r.wav"), 3.0, songs, (), complete=True)
    targets, known = recording_targets(full, starts, clip_seconds=1.0, labels=["a"])
    assert targets[:, 0].tolist() == [0, 1, 0] and known.tolist() == [True, True, True]
    weak = AnnotatedRecording(Path("r.wav"), 3.0, songs, (), complete=False)
    _, known = recording_targets(weak, starts, clip_seconds=1.0, labels=["a"])
    assert known.tolist() == [False, True, False]


# ------------------------------------------------------------------------------ round trip
def test_raven_round_trip_of_detections_and_pairing_by_begin_file(tmp_path):
    from birdsong.inference import Detection

    write_wav(tmp_path / "audio" / "dawn.wav", 20.0)
    detections = [
        Detection(0.0, 3.0, "Coal_Tit", 0.91234567),
        Detection(1.5, 4.5, "Common_Blackbird", 0.5),
        Detection(12.25, 18.0, "Coal_Tit", 0.99),
    ]
    table = write_raven(
        tmp_path / "tables" / "dawn.birdsong.selections.txt",
        detections,
        file="/elsewhere/dawn.wav",
        freq_range=(0.0, 8000.0),
    )
    header = table.read_text(encoding="utf-8").splitlines()[0].split("\t")
    assert {"Begin File", "Species", "Score", "Begin Time (s)"} <= set(header)
    back = read_raven(table)
    assert back.skipped == []
    assert [(a.file, a.start, a.end, a.label, a.high_freq) for a in back.annotations] == [
        ("dawn.wav", d.start, d.end, d.label, 8000.0) for d in detections
    ]
    assert [a.score for a in back.annotations] == pytest.approx(
        [d.score for d in detections], abs=1e-6
    )
    index = index_annotations(tmp_path)  # Begin File finds audio/dawn.wav
    assert [r.path for r in index.recordings] == [tmp_path / "audio" / "dawn.wav"]
    assert len(index.recordings[0].annotations) == 3
    again = read_raven(write_raven(tmp_path / "again.txt", back.annotations))
    fields = [
        (a.file, a.start, a.end, a.label, a.low_freq, a.high_freq, a.score, a.line)
        for a in again.annotations
    ]
    assert fields == [
        (a.file, a.start, a.end, a.label, a.low_freq, a.high_freq, a.score, a.line)
        for a in back.annotations
    ]


def test_window_labels_equal_the_rule_written_out_on_a_long_recording():
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 3600, 2500)
    songs = [
        Annotation("long.wav", float(a), float(a + d), str(lab))
        for a, d, lab in zip(
            starts, rng.uniform(0.1, 8.0, 2500), rng.choice(["a", "b", "c"], 2500), strict=True
        )
    ]
    windows = np.arange(0.0, 3600.0, 1.0)  # more windows than one block of the computation
    got = window_labels(songs, windows, clip_seconds=3.0, labels=["a", "b", "c"], min_overlap=0.3)
    want = np.zeros_like(got)
    for a in songs:
        overlap = np.minimum(a.end, windows + 3.0) - np.maximum(a.start, windows)
        hit = (overlap > 0) & ((overlap >= 0.3 * (a.end - a.start)) | (overlap >= 0.9))
        want[hit, "abc".index(a.label)] = 1
    assert got.sum() > 1000
    np.testing.assert_array_equal(got, want)
