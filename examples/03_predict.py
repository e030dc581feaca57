"""03 - classify clips with an exported model, without TensorFlow.

Prediction runs the ``.tflite`` on the LiteRT interpreter alone (the inference tier:
numpy, soundfile, soxr, ai-edge-litert). The model file carries its labels and audio
settings, so any WAV/FLAC/OGG/MP3 at any sample rate, mono or stereo, goes straight in.
The one-liner is ``birdsong.predict("clip.wav")``; this script keeps one
``birdsong.Classifier`` for many clips.

With no clips it synthesises a new clip per species the model knows, sung by birds it
never heard in training, and shows which it gets right::

    python examples/03_predict.py --model examples-output/runs/RUN/model.tflite

or classify your own files (a folder is searched for audio; when a file's parent folder
is named after a species the model knows, the answer is marked right or wrong)::

    python examples/03_predict.py --model birds.tflite clip1.wav more-clips/

Without ``--model`` the model is found as ``birdsong.predict`` finds it: the
``BIRDSONG_MODEL`` environment variable, else the model trained or exported last on
this machine (by ``examples/02_train.py`` or ``birdsong demo``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import soundfile as sf

import birdsong
from birdsong import synth
from birdsong.audio import is_audio_file
from birdsong.inference import resolve_model

OUTPUT = Path("examples-output")


def audio_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and is_audio_file(p))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"No such clip or folder: {path}")
    return files


def synthesise_clips(clf: birdsong.Classifier, *, fast: bool) -> list[Path]:
    """One new clip per species (birds 100, 101, ... were never in the training data)."""
    folder = OUTPUT / "new-clips"
    species = clf.labels[:3] if fast else clf.labels
    seconds = max(3.0 if fast else 6.0, 2 * clf.clip_seconds)
    paths = []
    for i, name in enumerate(species):
        clip = synth.recording(
            name,
            duration_seconds=seconds,
            sample_rate=clf.sample_rate,
            individual=100 + i,
            seed=1000 + i,
        )
        path = folder / name / f"{name}_new.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, clip, clf.sample_rate, subtype="PCM_16")
        paths.append(path)
    print(f"no clips given: wrote {len(paths)} new {seconds:g} s clips to {folder}")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "clips",
        metavar="CLIP",
        nargs="*",
        help="audio files or folders (default: synthesise new clips)",
    )
    parser.add_argument(
        "--model",
        help="a .tflite or a run directory (default: "
        "$BIRDSONG_MODEL, else the latest trained model)",
    )
    parser.add_argument("--top-k", type=int, default=3, help="runners-up to show")
    parser.add_argument("--fast", action="store_true", help="fewer, shorter clips")
    args = parser.parse_args(argv)

    model = resolve_model(args.model)  # what birdsong.predict(...) uses without model=
    clf = birdsong.Classifier(model)
    print(f"model: {model}\n  {clf!r}")
    clips = audio_files(args.clips) if args.clips else synthesise_clips(clf, fast=args.fast)

    right = judged = 0
    for path in clips:
        try:
            pred = clf.predict(path, top_k=args.top_k)
        except birdsong.AudioError as exc:  # a broken file: say so and go on
            print(f"{path.name:34s}    cannot read: {exc}")
            continue
        others = ", ".join(f"{label} {score:.2f}" for label, score in pred.top_k[1:])
        line = f"{path.name:34s} -> {pred.label:26s} {pred.score:.2f}  ({others})"
        truth = path.parent.name
        if truth in clf.labels:
            judged += 1
            right += pred.label == truth
            line += "  right" if pred.label == truth else f"  wrong: it is {truth}"
        print(line)
    if judged:
        print(f"{right}/{judged} right")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (birdsong.BirdsongError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")
