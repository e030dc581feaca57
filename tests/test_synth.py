"""Tests for the synthetic bird-song generator (birdsong.synth)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from birdsong import synth
from birdsong.errors import InvalidParameterError

SR = 32000


EDGES = np.arange(0.0, 15001.0, 50.0)


def _spectrum(x: np.ndarray, sr: int = SR) -> np.ndarray:
    """Share of power in 50 Hz bins up to 15 kHz."""
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    hist, _ = np.histogram(np.fft.rfftfreq(len(x), 1.0 / sr), bins=EDGES, weights=power)
    return hist / hist.sum()


def _distance_hz(p: np.ndarray, q: np.ndarray) -> float:
    """Earth mover's distance between two spectra, in Hz (robust to small pitch shifts)."""
    return float(np.abs(np.cumsum(p - q)).sum() * (EDGES[1] - EDGES[0]))


def _band_share(x: np.ndarray, lo: float, hi: float, sr: int = SR) -> float:
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / sr)
    return float(power[(freqs >= lo) & (freqs < hi)].sum() / power.sum())


def test_default_species_are_the_twelve_folder_names():
    assert synth.DEFAULT_SPECIES == (
        "Arctic_Warbler", "Barn_Swallow", "Black-headed_Gull", "Black_Redstart", "Brambling",
        "Coal_Tit", "Common_Blackbird", "Common_Buzzard", "Common_Chaffinch",
        "Common_Grasshopper_Warbler", "Common_Whitethroat", "Common_Wood_Pigeon",
    )  # fmt: skip


@pytest.mark.parametrize("species", [*synth.DEFAULT_SPECIES, "Some Other Bird"])
def test_every_song_is_a_clean_float32_signal(species):
    y = synth.song(species, seed=3)
    assert y.dtype == np.float32 and y.ndim == 1
    assert np.all(np.isfinite(y))
    assert 0.2 * SR < len(y) < 8 * SR
    assert np.max(np.abs(y)) == pytest.approx(1.0, abs=1e-6)
    # Enveloped: no click at either edge.
    assert abs(y[0]) < 0.05 and abs(y[-1]) < 0.05


def test_song_is_deterministic_and_individuals_differ():
    a = synth.song("Coal_Tit", individual=2, seed=7)
    b = synth.song("Coal_Tit", individual=2, seed=7)
    np.testing.assert_array_equal(a, b)
    other_bird = synth.song("Coal_Tit", individual=3, seed=7)
    other_song = synth.song("Coal_Tit", individual=2, seed=8)
    for y in (other_bird, other_song):
        assert len(y) != len(a) or not np.array_equal(y, a)


def test_derived_templates_depend_on_the_name():
    a = synth.song("Synthetic_Species_13")
    np.testing.assert_array_equal(a, synth.song("Synthetic_Species_13"))
    b = synth.song("Synthetic_Species_14")
    assert len(a) != len(b) or not np.array_equal(a, b)


def test_recording_shape_range_and_determinism():
    y = synth.recording("Common_Chaffinch", duration_seconds=3.0, sample_rate=16000, seed=1)
    assert y.dtype == np.float32 and y.shape == (48000,)
    assert np.all(np.isfinite(y))
    peak = float(np.max(np.abs(y)))
    assert 0.05 - 1e-6 <= peak <= 0.9 + 1e-6
    again = synth.recording("Common_Chaffinch", duration_seconds=3.0, sample_rate=16000, seed=1)
    np.testing.assert_array_equal(y, again)
    other = synth.recording("Common_Chaffinch", duration_seconds=3.0, sample_rate=16000, seed=2)
    assert not np.array_equal(y, other)


def test_recording_shorter_than_a_song_still_works():
    y = synth.recording("Common_Grasshopper_Warbler", duration_seconds=1.0, seed=0)
    assert y.shape == (SR,) and np.all(np.isfinite(y)) and np.max(np.abs(y)) > 0


@pytest.mark.parametrize("species", ["Black-headed_Gull", "Common_Grasshopper_Warbler", "Coal_Tit"])
def test_energy_stays_below_15_khz(species):
    y = synth.recording(species, duration_seconds=3.0, sample_rate=44100, seed=4)
    assert _band_share(y, 15000.0, 22050.0, sr=44100) < 1e-4


def test_species_differ_in_spectrum_more_than_individuals_do():
    def spectra(species):
        return [_spectrum(synth.song(species, individual=i, seed=i)) for i in range(3)]

    def spread(ss):
        return max(_distance_hz(p, q) for p in ss for q in ss)

    for a, b in [("Coal_Tit", "Common_Blackbird"), ("Common_Wood_Pigeon", "Common_Chaffinch")]:
        sa, sb = spectra(a), spectra(b)
        between = _distance_hz(np.mean(sa, axis=0), np.mean(sb, axis=0))
        assert between > 1500.0
        assert between > 3 * max(spread(sa), spread(sb))


def test_no_single_band_separates_the_species():
    shares = {sp: _band_share(synth.song(sp), 2000.0, 6000.0) for sp in synth.DEFAULT_SPECIES}
    assert sum(share > 0.45 for share in shares.values()) >= 6


def test_loudness_does_not_identify_the_species():
    def rms(species):
        levels = []
        for s in range(8):
            y = synth.recording(species, duration_seconds=2.0, individual=s, seed=s)
            levels.append(float(np.sqrt(np.mean(np.square(y)))))
        return levels

    a, b = rms("Common_Wood_Pigeon"), rms("Common_Grasshopper_Warbler")
    assert max(min(a), min(b)) < min(max(a), max(b))  # the ranges overlap
    assert max(a) / min(a) > 3 and max(b) / min(b) > 3


def test_long_recording_events_are_true_and_separated():
    species = ["Coal_Tit", "Common_Buzzard", "Brambling"]
    audio, events = synth.long_recording(species=species, duration_seconds=40.0, seed=5)
    assert audio.dtype == np.float32 and audio.shape == (40 * SR,)
    assert len(events) >= 3
    assert {e.species for e in events} <= set(species)
    for e in events:
        assert 0.0 <= e.start < e.end <= 40.0
    for first, second in zip(events, events[1:]):
        assert second.start - first.end >= 3.0 - 1e-9
    inside = np.zeros(len(audio), dtype=bool)
    for e in events:
        inside[round(e.start * SR) : round(e.end * SR)] = True
    power = np.square(audio.astype(np.float64))
    assert power[inside].mean() > 5 * power[~inside].mean()


def test_long_recording_explicit_events():
    audio, events = synth.long_recording(
        species=["Coal_Tit", "Common_Wood_Pigeon"],
        events=[(6.0, "Common_Wood_Pigeon"), (1.5, "Coal_Tit")],
        duration_seconds=12.0,
        seed=1,
    )
    assert [(e.start, e.species) for e in events] == [
        (1.5, "Coal_Tit"),
        (6.0, "Common_Wood_Pigeon"),
    ]
    for e in events:
        assert 0.3 < e.end - e.start < 5.0
    with pytest.raises(AttributeError):
        events[0].start = 2.0  # frozen


def test_write_demo_dataset_tree_and_formats(tmp_path):
    summary = synth.write_demo_dataset(
        tmp_path / "demo",
        species=2,
        individuals=2,
        recordings_per_individual=2,
        duration_seconds=1.5,
        formats=("wav", "flac", "ogg", "mp3"),
    )
    root = tmp_path / "demo"
    assert summary.root == root
    assert summary.species == ("Arctic_Warbler", "Barn_Swallow")
    assert summary.files == 8 and summary.seconds == pytest.approx(12.0)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert len(files) == 8
    assert {p.suffix for p in files} == {".wav", ".flac", ".ogg", ".mp3"}
    pattern = re.compile(r"(?P<sp>.+)_ind(?P<ind>\d{2})_rec(?P<rec>\d{2})\.(wav|flac|ogg|mp3)")
    for path in files:
        match = pattern.fullmatch(path.name)
        assert match and match["sp"] == path.parent.name
        assert match["ind"] in ("01", "02") and match["rec"] in ("01", "02")
        data, rate = sf.read(path, dtype="float32")
        assert rate == SR and data.ndim == 1
        assert abs(len(data) - 1.5 * SR) < 0.1 * SR  # lossy codecs may pad a little
        assert np.max(np.abs(data)) > 0.01
    assert sf.info(root / "Arctic_Warbler" / "Arctic_Warbler_ind01_rec01.wav").subtype == "PCM_16"


def test_write_demo_dataset_is_byte_deterministic(tmp_path):
    kwargs = {"species": ["Coal_Tit"], "individuals": 2, "recordings_per_individual": 1}
    kwargs["duration_seconds"] = 1.0
    synth.write_demo_dataset(tmp_path / "a", **kwargs)
    synth.write_demo_dataset(tmp_path / "b", **kwargs)
    synth.write_demo_dataset(tmp_path / "c", seed=1, **kwargs)
    name = "Coal_Tit/Coal_Tit_ind02_rec01.wav"
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()


def test_write_demo_dataset_derives_extra_species(tmp_path):
    summary = synth.write_demo_dataset(
        tmp_path, species=13, individuals=1, recordings_per_individual=1, duration_seconds=0.5
    )
    assert summary.species[:12] == synth.DEFAULT_SPECIES
    assert summary.species[12] == "Synthetic_Species_13"
    assert (tmp_path / "Synthetic_Species_13" / "Synthetic_Species_13_ind01_rec01.wav").is_file()


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    def broken_write(file, *args, **kwargs):
        with open(file, "wb") as fh:
            fh.write(b"RIFF half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sf, "write", broken_write)
    with pytest.raises(RuntimeError, match="disk full"):
        synth.write_demo_dataset(tmp_path, species=1, individuals=1, duration_seconds=0.5)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    ("call", "kwargs", "param"),
    [
        ("write_demo_dataset", {"individuals": 0}, "individuals"),
        ("write_demo_dataset", {"recordings_per_individual": -1}, "recordings_per_individual"),
        ("write_demo_dataset", {"species": 0}, "species"),
        ("write_demo_dataset", {"species": "Coal_Tit"}, "species"),
        ("write_demo_dataset", {"species": ["Coal_Tit", "Coal_Tit"]}, "species"),
        ("write_demo_dataset", {"species": ["../escape"]}, "species"),
        ("write_demo_dataset", {"duration_seconds": 0}, "duration_seconds"),
        ("write_demo_dataset", {"formats": ("wav", "aiff")}, "formats"),
        ("write_demo_dataset", {"formats": ()}, "formats"),
        ("write_demo_dataset", {"formats": ("mp3",), "sample_rate": 37000}, "sample_rate"),
        ("write_demo_dataset", {"individuals": True}, "individuals"),
        ("write_demo_dataset", {"difficulty": "hard"}, "difficulty"),
        ("field_recording", {"channels": 3}, "channels"),
        ("field_recording", {"snr_db": (5.0, 1.0)}, "snr_db"),
        ("song", {"sample_rate": 1000}, "sample_rate"),
        ("song", {"individual": 1.5}, "individual"),
        ("recording", {"snr_db": (10.0, 0.0)}, "snr_db"),
        ("recording", {"duration_seconds": float("nan")}, "duration_seconds"),
        ("long_recording", {"species": "Coal_Tit"}, "species"),
        ("long_recording", {"species": []}, "species"),
        ("long_recording", {"events": [(100.0, "Coal_Tit")]}, "events"),
        ("long_recording", {"events": [(1.0, "Brambling")]}, "events"),
    ],
)
def test_invalid_parameters_are_named(tmp_path, call, kwargs, param):
    if call == "write_demo_dataset":
        args, kwargs = (tmp_path,), kwargs
    elif call == "long_recording":
        args, kwargs = (), {"species": ["Coal_Tit"], "duration_seconds": 10.0, **kwargs}
    else:
        args = ("Coal_Tit",)
    with pytest.raises(InvalidParameterError, match=f"'{param}' parameter of {call}") as info:
        getattr(synth, call)(*args, **kwargs)
    assert isinstance(info.value, ValueError)
    assert not any(tmp_path.iterdir())


def test_invalid_species_name_for_song():
    with pytest.raises(ValueError, match="'species' parameter of song"):
        synth.song("")
    with pytest.raises(ValueError, match="'species' parameter of recording"):
        synth.recording("a/b")


# ------------------------------------------------------------------ field conditions
def _measured_snr(rec) -> float:
    mask = np.zeros(len(rec.song), dtype=bool)
    for a, b in rec.song_spans:
        mask[round(a * rec.sample_rate) : round(b * rec.sample_rate)] = True
    song = np.mean(np.square(rec.song[mask].astype(np.float64)))
    return float(10 * np.log10(song / np.mean(np.square(rec.noise.astype(np.float64)))))


def test_field_recording_is_reproducible_from_its_seed():
    kwargs = {"duration_seconds": 2.0, "sample_rate": 22050, "individual": 4}
    a = synth.field_recording("Coal_Tit", seed=3, **kwargs)
    b = synth.field_recording("Coal_Tit", seed=3, **kwargs)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.snr_db == b.snr_db and a.audio.dtype == np.float32
    assert a.audio.shape == (44100,) and np.all(np.isfinite(a.audio))
    c = synth.field_recording("Coal_Tit", seed=4, **kwargs)
    assert not np.array_equal(a.audio, c.audio)
    stereo = synth.field_recording("Coal_Tit", seed=3, channels=2, **kwargs)
    assert stereo.audio.shape == (44100, 2)
    assert not np.array_equal(stereo.audio[:, 0], stereo.audio[:, 1])


def test_field_snr_is_what_the_audio_measures_and_spans_the_range():
    snrs = []
    for seed in range(16):
        rec = synth.field_recording(
            "Common_Blackbird", duration_seconds=3.0, sample_rate=16000, individual=seed, seed=seed
        )
        assert -1.0 <= rec.snr_db <= 19.0
        assert _measured_snr(rec) == pytest.approx(rec.snr_db, abs=0.05)
        snrs.append(rec.snr_db)
    assert max(snrs) - min(snrs) > 10.0  # drawn over the range, not one level
    low = synth.field_recording(
        "Coal_Tit", duration_seconds=3.0, sample_rate=16000, snr_db=(-1.0, -1.0)
    )
    assert _measured_snr(low) == pytest.approx(-1.0, abs=0.05)


def test_field_recordings_hold_distractors_silence_and_clipping():
    recs = [
        synth.field_recording(
            "Brambling",
            duration_seconds=2.5,
            sample_rate=16000,
            individual=s,
            seed=s,
            distractor_species=["Coal_Tit", "Brambling"],
        )
        for s in range(40)
    ]
    with_distractor = [r for r in recs if r.distractors]
    assert 8 <= len(with_distractor) <= 32  # about half
    assert all(set(r.distractors) == {"Coal_Tit"} for r in with_distractor)  # never itself
    assert all(np.any(r.distractor) for r in with_distractor)
    assert not any(np.any(r.distractor) for r in recs if not r.distractors)
    silent = [r for r in recs if r.silence_seconds > 0]
    assert silent and all(np.sum(r.audio == 0.0) >= 0.3 * 16000 for r in silent)
    clipped = [r for r in recs if r.clipped_fraction > 0]
    assert clipped and all(np.max(np.abs(r.audio)) == 1.0 for r in clipped)
    assert all(np.max(np.abs(r.audio)) < 1.0 for r in recs if r.clipped_fraction == 0)
    assert len({r.rt60_seconds for r in recs}) == 40
    assert max(r.rt60_seconds for r in recs) > 0.5


def test_field_birds_have_their_own_repertoire():
    from birdsong.synth_field import individual_template

    templates = {individual_template("Common_Blackbird", i) for i in range(10)}
    assert len(templates) == 10
    assert individual_template("Common_Blackbird", 3) == individual_template("Common_Blackbird", 3)
    counts = {len(individual_template("Common_Blackbird", i).phrases) for i in range(10)}
    assert counts == {4}  # 70 % of the species' six phrases, a different choice per bird
    chosen = {
        tuple(p.syls[0].kind for p in individual_template("Common_Blackbird", i).phrases)
        for i in range(10)
    }
    assert len(chosen) > 1


def test_field_dataset_mixes_formats_and_splits_by_individual(tmp_path):
    import csv

    from birdsong.dataset import index_dataset, split_recordings

    root = tmp_path / "field"
    summary = synth.write_demo_dataset(
        root,
        species=3,
        individuals=10,
        recordings_per_individual=1,
        duration_seconds=1.5,
        difficulty="field",
    )
    assert summary.files == 30
    rows = list(csv.DictReader((root / "field_conditions.csv").open()))
    assert len(rows) == 30
    rates, exts, channels = set(), set(), set()
    for row in rows:
        info = sf.info(root / row["path"])
        assert info.samplerate == int(row["sample_rate"])
        assert info.channels == int(row["channels"])
        assert -1.0 <= float(row["snr_db"]) <= 19.0
        assert 0.6 * 1.5 - 0.1 < info.duration < 1.6 * 1.5 + 0.1
        rates.add(info.samplerate)
        exts.add(Path(row["path"]).suffix)
        channels.add(info.channels)
    assert len(rates) >= 3 and exts == {".wav", ".flac", ".ogg"} and channels == {1, 2}
    index = index_dataset(root)
    assert len(index.recordings) == 30 and not index.skipped
    assert len({r.group for r in index.recordings}) == 30  # indNN: one group per bird
    train, val = split_recordings(index, validation_fraction=0.3, seed=0)
    assert {r.group for r in train.recordings}.isdisjoint({r.group for r in val.recordings})


def test_field_dataset_is_deterministic(tmp_path):
    kwargs = {
        "species": ["Coal_Tit", "Brambling"],
        "individuals": 1,
        "recordings_per_individual": 2,
        "duration_seconds": 1.0,
        "difficulty": "field",
    }
    synth.write_demo_dataset(tmp_path / "a", **kwargs)
    synth.write_demo_dataset(tmp_path / "b", **kwargs)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert len(files) == 5  # four recordings and field_conditions.csv
    for rel in files:
        a, b = tmp_path / "a" / rel, tmp_path / "b" / rel
        if rel.suffix == ".ogg":  # an Ogg stream carries a random serial number
            np.testing.assert_array_equal(sf.read(a)[0], sf.read(b)[0])
        else:
            assert a.read_bytes() == b.read_bytes()


def test_demo_data_cli_writes_a_field_set(tmp_path, capsys):
    from birdsong.cli import main

    out = tmp_path / "data"
    assert (
        main(
            [
                "demo-data",
                str(out),
                "--species",
                "2",
                "--individuals",
                "10",
                "--recordings",
                "1",
                "--seconds",
                "1",
                "--difficulty",
                "field",
            ]
        )
        == 0
    )
    assert "wrote 20 recordings" in capsys.readouterr().out
    assert (out / "field_conditions.csv").is_file()
    assert {p.suffix for p in out.rglob("*_ind10_rec01.*")} <= {".wav", ".flac", ".ogg"}
    assert len(list(out.rglob("*_ind10_rec01.*"))) == 2
