"""01 - what the model sees: mel-spectrogram pictures of recordings.

For one recording of each species this draws the whole recording's mel spectrogram
(time and frequency axes) with the per-window model images underneath, and writes the
model images themselves as grey PNGs: the exact images MobileNetV2 receives, rendered
by the model's own frontend layer (the one inside the exported ``.tflite``).

Run it on generated demo data (written to ``examples-output/demo-data``)::

    python examples/01_spectrograms.py

or on your own folder-per-species tree of recordings::

    python examples/01_spectrograms.py path/to/recordings --per-species 2

Pictures go to ``examples-output/spectrograms`` (``--out`` to change). Needs the
``train`` extra (TensorFlow runs the frontend, matplotlib draws): pip install
"birdsong[train]". ``--fast`` is a tiny smoke-test setting (3 species, 64 px images).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quieter TensorFlow start-up

import birdsong  # noqa: E402
from birdsong import synth  # noqa: E402
from birdsong.dataset import index_dataset  # noqa: E402
from birdsong.images import model_images, render_recording, save_image_png  # noqa: E402

OUTPUT = Path("examples-output")


def settings(fast: bool) -> tuple[birdsong.FeatureConfig, dict]:
    """Spectrogram settings and demo-data size: the defaults, or tiny ones."""
    if fast:
        features = birdsong.FeatureConfig(
            sample_rate=16000,
            clip_seconds=1.0,
            n_fft=512,
            stft_hop_seconds=0.016,
            n_mels=48,
            fmax=7600.0,
            image_size=64,
        )
        demo = dict(
            species=3,
            individuals=3,
            recordings_per_individual=1,
            duration_seconds=3.0,
            sample_rate=16000,
        )
    else:
        features = birdsong.FeatureConfig()  # 32 kHz, 3 s windows, 128 mels, 224 px
        demo = dict(species=12, individuals=3, recordings_per_individual=3, duration_seconds=8.0)
    return features, demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        nargs="?",
        help="folder with one sub-folder of recordings per species (default: generate demo data)",
    )
    parser.add_argument(
        "--out",
        default=str(OUTPUT / "spectrograms"),
        help="where to write the PNGs (default: %(default)s)",
    )
    parser.add_argument(
        "--per-species",
        type=int,
        default=1,
        metavar="N",
        help="recordings to draw per species (default: %(default)s)",
    )
    parser.add_argument("--fast", action="store_true", help="tiny settings for a smoke test")
    args = parser.parse_args(argv)

    features, demo = settings(args.fast)
    if args.data_dir is None:
        data_dir = OUTPUT / ("demo-data-fast" if args.fast else "demo-data")
        summary = synth.write_demo_dataset(data_dir, **demo)
        print(
            f"wrote demo data: {summary.files} recordings of {len(summary.species)} "
            f"species to {data_dir}"
        )
    else:
        data_dir = Path(args.data_dir)

    index = index_dataset(data_dir, group_pattern=None, min_species=1)
    chosen: dict[str, list] = defaultdict(list)
    for rec in index.recordings:
        if len(chosen[rec.label]) < args.per_species:
            chosen[rec.label].append(rec)
    print(
        f"{len(index.labels)} species, {len(index.recordings)} recordings in {data_dir}; "
        f"drawing {sum(map(len, chosen.values()))}"
    )
    print(
        f"model input: {features.clip_seconds:g} s windows at {features.sample_rate} Hz -> "
        f"{features.n_mels} mel bands, {features.fmin:g}-{features.fmax:g} Hz -> "
        f"{features.image_size}x{features.image_size}x3 image in [-1, 1]\n"
    )

    out = Path(args.out)
    for label, recordings in chosen.items():
        for rec in recordings:
            name = rec.path.stem
            picture = render_recording(
                rec.path,
                out / f"{name}.png",
                config=features,
                windows=True,
                title=f"{label}: {rec.path.name}",
            )
            signal, rate = birdsong.load_audio(rec.path, sample_rate=features.sample_rate)
            images, starts = model_images(signal, config=features)
            for i, image in enumerate(images):
                save_image_png(image, out / "model-images" / label / f"{name}_w{i:03d}.png")
            loudest = max(range(len(images)), key=lambda i: images[i].mean())
            print(
                f"{label}/{rec.path.name}: {signal.size / rate:.1f} s, "
                f"{len(images)} window(s); brightest window starts at "
                f"{starts[loudest]:.1f} s"
            )
            print(f"  wrote {picture}")
            print(f"  wrote {len(images)} model image(s) to {out / 'model-images' / label}")
    for item in index.skipped:
        print(f"skipped {item.path}: {item.reason}", file=sys.stderr)
    print(f"\nopen {out} to look at them")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (birdsong.BirdsongError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")
