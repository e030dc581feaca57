"""02 - train a classifier, read its honest evaluation, and get a .tflite model.

``birdsong.train`` splits the recordings by bird (never by window), trains a head on a
frozen MobileNetV2, fine-tunes the top of the backbone, evaluates on the held-out
recordings and exports a self-describing ``model.tflite`` into the run directory.

Run it on generated demo data (12 species, written to ``examples-output/demo-data``;
a few minutes on a laptop CPU)::

    python examples/02_train.py

or on your own folder-per-species tree of recordings::

    python examples/02_train.py path/to/recordings --out runs/my-birds

Pretrained ImageNet weights are used by default (downloaded once by Keras); pass
``--weights none`` to train from scratch, or the path of a MobileNetV2 weights file.
Needs the ``train`` extra: pip install "birdsong[train]". ``--fast`` is a tiny
smoke-test setting (3 species, 64 px images, one epoch per phase, no pretrained
weights) that trains in well under a minute and learns next to nothing.
Then try ``examples/03_predict.py --model RUN_DIR/model.tflite``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quieter TensorFlow start-up

import birdsong  # noqa: E402
from birdsong import synth  # noqa: E402
from birdsong.demo import demo_config  # noqa: E402

OUTPUT = Path("examples-output")


def fast_config() -> birdsong.TrainConfig:
    """Tiny settings: seconds per epoch on a CPU; for smoke tests, not for birds."""
    features = birdsong.FeatureConfig(
        sample_rate=16000,
        clip_seconds=1.0,
        n_fft=512,
        stft_hop_seconds=0.016,
        n_mels=48,
        fmax=7600.0,
        image_size=64,
    )
    return birdsong.TrainConfig(
        features=features,
        alpha=0.35,
        weights=None,
        epochs_frozen=1,
        epochs_finetune=1,
        batch_size=16,
        windows=birdsong.WindowRules(hop_seconds=0.5, max_windows=3),
        fine_tune_from="block_16_expand",
        finetune_learning_rate=1e-3,
        validation_min_groups=2,  # 3 birds per species: hold one out to show a report
    )


def make_config(weights: str | None, *, fast: bool, demo_data: bool) -> birdsong.TrainConfig:
    """The settings for a run; ``weights`` None means the default for the mode."""
    from dataclasses import replace

    if fast:
        config = fast_config()
        return config if weights is None else replace(config, weights=weights)
    weights = "imagenet" if weights is None else weights
    if demo_data:  # small and quick, tuned for the synthetic birds
        return demo_config(weights=None if weights.lower() == "none" else weights)
    return birdsong.TrainConfig(weights=weights)  # MobileNetV2 1.0 at 224 px, 3 s windows


def describe(config: birdsong.TrainConfig) -> str:
    return (
        f"MobileNetV2 (alpha {config.alpha}, {config.features.image_size} px, "
        f"{config.features.clip_seconds:g} s windows, weights {config.weights or 'none'}; "
        f"{config.epochs_frozen} frozen + {config.epochs_finetune} fine-tuning epochs "
        "at most)"
    )


def train(data_dir: Path, out: Path, args: argparse.Namespace, demo_data: bool):
    """``birdsong.train``; without network access ImageNet weights fall back to none."""
    config = make_config(args.weights, fast=args.fast, demo_data=demo_data)
    print(f"training {describe(config)} into {out}")
    try:
        return birdsong.train(data_dir, out, config=config, progress=True)
    except birdsong.ModelError as exc:
        if config.weights != "imagenet":
            raise
        config = make_config("none", fast=args.fast, demo_data=demo_data)
        print(
            f"\nImageNet weights are unavailable ({str(exc).splitlines()[0][:100]}...);\n"
            f"training {describe(config)} instead: expect lower accuracy\n"
        )
        return birdsong.train(data_dir, out, config=config, progress=True)


def print_result(result) -> None:
    print("\nhistory (best weights are kept):")
    for phase, rows in result.history.items():
        for row in rows:
            cells = "  ".join(f"{k} {v:.3f}" for k, v in row.items() if k != "epoch")
            print(f"  {phase} epoch {row['epoch']}: {cells}")
    if result.report is None:
        print(
            "\nno validation recordings: every species needs at least two birds "
            "(or recordings) for an honest split"
        )
    else:
        rec, win = result.report["per_recording"], result.report["per_window"]
        print(
            f"\nvalidation on held-out birds: per recording top-1 "
            f"{rec['top1_accuracy']:.3f} (n={rec['n']}), macro-F1 {rec['macro_f1']:.3f}; "
            f"per window top-1 {win['top1_accuracy']:.3f} (n={win['n']})"
        )
        print(f"  {'species':28s} {'precision':>9s} {'recall':>6s} {'F1':>6s} {'n':>3s}")
        for name, m in rec["per_species"].items():
            print(
                f"  {name:28s} {m['precision']:9.3f} {m['recall']:6.3f} {m['f1']:6.3f} "
                f"{m['support']:3d}"
            )
        print("  some validation recordings:")
        for r in result.report["recordings"][:6]:
            verdict = "right" if r["predicted"] == r["label"] else "wrong"
            print(
                f"    {Path(r['path']).name:40s} -> {r['predicted']:24s} "
                f"{r['score']:.2f}  {verdict}"
            )
    for item in result.skipped:
        print(f"skipped {item.path}: {item.reason}", file=sys.stderr)
    run = result.run_dir
    print(f"\nrun directory {run} ({result.seconds:.0f} s):")
    for name in (
        "model.tflite",
        "model.keras",
        "config.json",
        "labels.txt",
        "learning_curves.png",
        "report/report.md",
        "report/confusion_matrix_per_recording.png",
    ):
        if (run / name).exists():
            print(f"  {run / name}")
    print(f"\nnext: python examples/03_predict.py --model {result.tflite_path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        nargs="?",
        help="folder with one sub-folder of recordings per species (default: generate demo data)",
    )
    parser.add_argument(
        "--out", metavar="RUN_DIR", help="new run directory (default: examples-output/runs/<time>)"
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="'imagenet' (default), 'none', or a MobileNetV2 weights file",
    )
    parser.add_argument("--fast", action="store_true", help="tiny settings for a smoke test")
    args = parser.parse_args(argv)

    demo_data = args.data_dir is None
    if demo_data:
        data_dir = OUTPUT / ("demo-data-fast" if args.fast else "demo-data")
        demo = (
            dict(
                species=3,
                individuals=3,
                recordings_per_individual=1,
                duration_seconds=3.0,
                sample_rate=16000,
            )
            if args.fast
            else dict(species=12, individuals=3, recordings_per_individual=3, duration_seconds=8.0)
        )
        summary = synth.write_demo_dataset(data_dir, **demo)
        print(
            f"wrote demo data: {summary.files} recordings of {len(summary.species)} "
            f"species to {data_dir}"
        )
    else:
        data_dir = Path(args.data_dir)
    out = Path(args.out or OUTPUT / "runs" / time.strftime("%Y%m%d-%H%M%S"))
    result = train(data_dir, out, args, demo_data)
    print_result(result)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (birdsong.BirdsongError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")
