"""04 - find when each species sings in a long recording, without TensorFlow.

``Classifier.predict`` slides the model's window along the recording (reading it in
blocks, so an hour-long file needs little memory); consecutive windows that name one
species with at least ``--min-score`` merge into one timed detection. Runs on the
LiteRT interpreter alone, like ``examples/03_predict.py``.

With no recording it writes a synthetic one with songs at known times (60 s, three of
the model's species) and prints each true song next to the detections that overlap it::

    python examples/04_long_recording.py --model examples-output/runs/RUN/model.tflite

or analyse your own recording (any length, format or sample rate)::

    python examples/04_long_recording.py dawn-chorus.flac --model birds.tflite

Without ``--model`` the model is found as ``birdsong.predict`` finds it:
``BIRDSONG_MODEL``, else the model trained or exported last on this machine.
``--overlap`` sets the seconds shared by consecutive windows (default two thirds of a
window: finer timing, more work). ``--fast`` writes a shorter synthetic recording.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import soundfile as sf

import birdsong
from birdsong import synth
from birdsong.inference import resolve_model

OUTPUT = Path("examples-output")


def synthesise(clf: birdsong.Classifier, *, fast: bool) -> tuple[Path, list]:
    species = list(clf.labels[:3])
    seconds = 20.0 if fast else 60.0
    signal, events = synth.long_recording(
        species=species, duration_seconds=seconds, sample_rate=clf.sample_rate, seed=7
    )
    path = OUTPUT / "long_recording.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, signal, clf.sample_rate, subtype="PCM_16")
    print(
        f"no recording given: wrote {path} ({seconds:g} s, {len(events)} songs of "
        f"{', '.join(species)})"
    )
    return path, events


def span(start: float, end: float) -> str:
    return f"{start:.1f}-{end:.1f} s"


def overlapping(a_start: float, a_end: float, b_start: float, b_end: float) -> bool:
    return a_start < b_end and b_start < a_end


def print_against_truth(detections: list, events: list) -> None:
    print(f"\n  {'true song':14s} {'species':26s} detections overlapping it")
    found, used = 0, set()
    for e in events:
        hits = [d for d in detections if overlapping(e.start, e.end, d.start, d.end)]
        used.update(id(d) for d in hits)
        ok = any(d.label == e.species for d in hits)
        found += ok
        seen = (
            ", ".join(f"{d.label} {span(d.start, d.end)} ({d.score:.2f})" for d in hits) or "none"
        )
        print(f"  {span(e.start, e.end):>14s} {e.species:26s} {seen}{'' if ok else '  <- missed'}")
    extra = [d for d in detections if id(d) not in used]
    print(
        f"\nsongs found (right species at the right time): {found}/{len(events)}; "
        f"detections away from any song: {len(extra)}"
    )
    for d in extra:
        print(f"  {span(d.start, d.end):>14s} {d.label:26s} {d.score:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "recording",
        metavar="RECORDING",
        nargs="?",
        help="an audio file (default: synthesise one with known songs)",
    )
    parser.add_argument(
        "--model",
        help="a .tflite or a run directory (default: "
        "$BIRDSONG_MODEL, else the latest trained model)",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        default=None,
        help="seconds shared by consecutive windows (default: 2/3 window)",
    )
    parser.add_argument(
        "--min-score",
        type=float,
        default=0.5,
        help="score a window needs to count as a detection (default: 0.5)",
    )
    parser.add_argument("--fast", action="store_true", help="a shorter synthetic recording")
    args = parser.parse_args(argv)

    model = resolve_model(args.model)  # what birdsong.predict(...) uses without model=
    clf = birdsong.Classifier(model)
    print(f"model: {model}\n  {clf!r}")
    if args.recording is None:
        path, events = synthesise(clf, fast=args.fast)
    else:
        path, events = Path(args.recording), None
    overlap = round(clf.clip_seconds * 2 / 3, 3) if args.overlap is None else args.overlap

    pred = clf.predict(path, overlap=overlap, min_score=args.min_score)
    hop = clf.clip_seconds - overlap
    print(
        f"{path}: {pred.duration:.1f} s in {len(pred.windows)} windows of "
        f"{clf.clip_seconds:g} s, one every {hop:g} s"
    )
    print(
        f"whole recording: mostly {pred.label} ({pred.score:.2f}); "
        f"{len(pred.detections)} detection(s) with score >= {args.min_score:g}"
    )
    if events is not None:
        print_against_truth(pred.detections, events)
    else:
        for d in pred.detections:
            print(f"  {span(d.start, d.end):>16s}  {d.label:28s} {d.score:.2f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (birdsong.BirdsongError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")
