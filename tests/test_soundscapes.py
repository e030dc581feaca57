"""Synthetic soundscapes: written tables parse and their selections are where the songs are."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from birdsong.annotation_index import index_annotations, window_labels
from birdsong.annotations import read_raven
from birdsong.errors import InvalidParameterError
from birdsong.soundscapes import soundscape, write_soundscapes


@pytest.fixture(scope="module")
def scapes(tmp_path_factory):
    out = tmp_path_factory.mktemp("soundscapes")
    return out, write_soundscapes(out, n=3, seconds=30.0, seed=1)


def spectrogram(x: np.ndarray, sr: int):
    """Frame times, frequencies and power: 1024-point Hann frames, 5 ms hop."""
    hop, size = sr // 200, 1024
    frames = np.lib.stride_tricks.sliding_window_view(x, size)[::hop] * np.hanning(size)
    times = (np.arange(len(frames)) * hop + size / 2) / sr
    return times, np.fft.rfftfreq(size, 1.0 / sr), np.abs(np.fft.rfft(frames, axis=1)) ** 2


def test_tables_parse_back_and_pair_with_their_recordings(scapes):
    root, written = scapes
    index = index_annotations(root)
    assert index.skipped == [] and index.unannotated == []
    assert [r.path for r in index.recordings] == [s.path for s in written]
    for rec, scape in zip(index.recordings, written, strict=True):
        assert rec.duration == pytest.approx(30.0)
        assert rec.complete
        got = [(a.start, a.end, a.label, a.low_freq, a.high_freq) for a in rec.annotations]
        want = [(a.start, a.end, a.label, a.low_freq, a.high_freq) for a in scape.songs]
        assert np.array([g[:2] for g in got]) == pytest.approx(
            np.array([w[:2] for w in want]), abs=1e-6
        )
        assert [g[2:] for g in got] == [w[2:] for w in want]
        assert read_raven(scape.table).annotations[0].file == scape.path.name
    labels = index.labels
    assert len(labels) >= 4  # several species sing
    songs = [a for s in written for a in s.songs]
    overlapping = sum(
        1
        for s in written
        for a, b in zip(s.songs, s.songs[1:], strict=False)
        if b.start < a.end and b.label != a.label
    )
    assert overlapping >= 2  # some songs overlap another species
    assert len(songs) >= 20
    for s in written:  # a quiet stretch: no song in it, windows there are "no bird"
        q0, q1 = s.quiet
        assert q1 - q0 == pytest.approx(4.5)
        assert all(a.end <= q0 or a.start >= q1 for a in s.songs)
        assert all(n1 <= q0 or n0 >= q1 for n0, n1 in s.noise_events)
        assert len(s.noise_events) >= 1
        starts = np.arange(q0, q1 - 1.0, 0.5)
        assert not window_labels(s.songs, starts, clip_seconds=1.0, labels=labels).any()


def test_selections_are_where_the_songs_sound(scapes):
    """Each selection's band is loud inside it, and where nothing else sounds nearby, the
    sound starts and stops at the selection's edges; shifted selections fail the test."""

    def onsets_offsets(shift: float) -> tuple[float, float]:
        good_on = good_off = n_on = n_off = 0
        for scape in scapes[1]:
            x, sr = sf.read(scape.path, dtype="float32")
            times, freqs, power = spectrogram(x, sr)
            spans = [(a.start, a.end) for a in scape.songs] + list(scape.noise_events)
            for a in scape.songs:
                band = (freqs >= a.low_freq) & (freqs <= a.high_freq)
                e = 10 * np.log10(power[:, band].sum(axis=1) + 1e-20)  # dB in the band
                quiet = np.median(e[(times >= scape.quiet[0]) & (times <= scape.quiet[1])])
                start, end = a.start + shift, a.end + shift
                inside = (times >= a.start) & (times <= a.end)
                assert np.percentile(e[inside], 90) > quiet + 10, a  # the song is there
                loud = e > quiet + 10
                rest = [s for s in spans if s != (a.start, a.end)]
                if all(s1 <= start - 0.1 or s0 >= start for s0, s1 in rest):
                    hit = np.flatnonzero(loud & (times >= start - 0.1) & (times <= end))
                    n_on += 1
                    good_on += bool(hit.size) and abs(times[hit[0]] - start) < 0.03
                if all(s0 >= end + 0.1 or s1 <= end for s0, s1 in rest):
                    hit = np.flatnonzero(loud & (times >= start) & (times <= end + 0.1))
                    n_off += 1
                    good_off += bool(hit.size) and abs(times[hit[-1]] - end) < 0.05
        assert n_on >= 10 and n_off >= 10
        return good_on / n_on, good_off / n_off

    on, off = onsets_offsets(0.0)
    print(f"onsets within 30 ms: {on:.2f}, offsets within 50 ms: {off:.2f}")
    assert on >= 0.9 and off >= 0.85, (on, off)
    late_on, late_off = onsets_offsets(0.2)  # a table 0.2 s late would be caught
    assert late_on < 0.3 and late_off < 0.3, (late_on, late_off)
    early_on, _ = onsets_offsets(-0.2)  # and one 0.2 s early
    assert early_on < 0.3, early_on


def test_same_seed_same_files_other_seed_other_songs(tmp_path):
    a = write_soundscapes(tmp_path / "a", n=1, seconds=12.0, seed=5, format="flac")
    b = write_soundscapes(tmp_path / "b", n=1, seconds=12.0, seed=5, format="flac")
    c = write_soundscapes(tmp_path / "c", n=1, seconds=12.0, seed=6, format="flac")
    assert a[0].path.suffix == ".flac"
    assert a[0].path.read_bytes() == b[0].path.read_bytes()
    assert a[0].table.read_text() == b[0].table.read_text()
    assert [s.start for s in a[0].songs] != [s.start for s in c[0].songs]


def test_soundscape_in_memory_and_bad_arguments():
    audio, scape = soundscape(
        species=["Coal_Tit"], seconds=10.0, sample_rate=16000, seed=2, overlap_probability=1.0
    )
    assert audio.dtype == np.float32 and audio.shape == (160000,)
    assert 0.1 <= float(np.max(np.abs(audio))) <= 0.8
    assert scape.songs and {a.label for a in scape.songs} == {"Coal_Tit"}  # no one to overlap
    assert all(a.high_freq <= 8000 for a in scape.songs)
    with pytest.raises(InvalidParameterError, match="'seconds'"):
        soundscape(seconds=2.0)
    with pytest.raises(InvalidParameterError, match="'species'"):
        soundscape(species=[])
    with pytest.raises(InvalidParameterError, match="'snr_db'"):
        soundscape(snr_db=(10.0, 0.0))
    with pytest.raises(InvalidParameterError, match="'format'"):
        write_soundscapes("unused", format="mp3")
