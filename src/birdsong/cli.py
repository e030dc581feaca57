"""The ``birdsong`` command line.

Silent library, talkative CLI: progress bars on long work, results a person can read,
or JSON/CSV for machines. ``birdsong --help`` and ``birdsong predict`` never import
TensorFlow; the training commands import it when they run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from . import __version__
from .errors import BirdsongError

log = logging.getLogger("birdsong")


# ----------------------------------------------------------------------- commands
def _cmd_spectrogram(args: argparse.Namespace) -> int:
    from .images import render_recording

    out = render_recording(args.clip, args.output, config=_features(args),
                           windows=args.windows, hop_seconds=args.hop)
    print(f"wrote {out}")
    return 0


def _cmd_spectrograms(args: argparse.Namespace) -> int:
    from .spectrograms import mirror_tree

    summary = mirror_tree(args.data_dir, args.out_dir, config=_features(args),
                          hop_seconds=args.hop, progress=not args.quiet)
    print(f"wrote {summary.images} image(s) for {summary.recordings} recording(s) "
          f"into {args.out_dir}")
    _print_skipped(summary.skipped)
    return 0


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from .synth import write_demo_dataset

    s = write_demo_dataset(args.out_dir, species=args.species, seed=args.seed,
                           individuals=args.individuals,
                           recordings_per_individual=args.recordings,
                           duration_seconds=args.seconds, difficulty=args.difficulty)
    print(f"wrote {s.files} recordings ({s.seconds / 60:.1f} min) of {len(s.species)} "
          f"species into {s.root}")
    return 0


def _train_config(args: argparse.Namespace):
    from .config import AugmentConfig, FeatureConfig, TrainConfig, from_dict, load_config, to_dict

    base = load_config(TrainConfig, args.config) if args.config else TrainConfig()
    data = to_dict(base)
    feats = data["features"]
    for key, value in (("image_size", args.image_size), ("clip_seconds", args.clip_seconds),
                       ("sample_rate", args.sample_rate)):
        if value is not None:
            feats[key] = value
    if args.sample_rate is not None and (feats.get("fmax") or 0) > args.sample_rate / 2:
        feats["fmax"] = None  # min(15 kHz, the new Nyquist frequency)
    for key in ("alpha", "weights", "epochs_frozen", "epochs_finetune", "batch_size", "seed",
                "fine_tune_from", "learning_rate", "finetune_learning_rate",
                "validation_fraction", "patience"):
        value = getattr(args, key)
        if value is not None:
            data[key] = value
    if args.no_augment:
        data["augment"] = to_dict(AugmentConfig.off())
    if args.mixup is not None:
        data["augment"]["mixup_alpha"] = args.mixup
    data["features"] = from_dict(FeatureConfig, feats)
    data["augment"] = from_dict(AugmentConfig, data["augment"])
    return TrainConfig(**data)


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import train

    config = None if args.resume and not args.config else _train_config(args)
    result = train(args.data_dir, args.output, config=config, resume=args.resume,
                   strategy=args.strategy, validation_dir=args.validation_dir, verbose=True)
    print(f"\nrun directory: {result.run_dir}  ({result.seconds:.0f} s)")
    if result.report:
        rec, win = result.report["per_recording"], result.report["per_window"]
        print(f"validation: per recording top-1 {rec['top1_accuracy']:.3f} "
              f"(n={rec['n']}), macro-F1 {rec['macro_f1']:.3f}; per window top-1 "
              f"{win['top1_accuracy']:.3f} (n={win['n']})")
        print(f"report: {result.run_dir / 'report' / 'report.md'}")
    if result.tflite_path:
        print(f"model: {result.tflite_path}")
    _print_skipped(result.skipped)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    report = evaluate(args.model, args.data_dir, out_dir=args.output,
                      progress=not args.json)
    if args.json:
        print(json.dumps({k: report[k] for k in ("per_recording", "per_window", "skipped")}))
        return 0
    for level in ("per_recording", "per_window"):
        m = report[level]
        print(f"{level.replace('_', ' ')} (n={m['n']}): top-1 {m['top1_accuracy']:.3f}  "
              f"top-3 {m['top3_accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  "
              f"macro ROC-AUC {m['macro_roc_auc']:.3f}")
    print("\nper species (per recording):")
    print(f"  {'species':28s} {'prec':>6s} {'recall':>6s} {'F1':>6s} {'n':>4s}")
    for name, v in report["per_recording"]["per_species"].items():
        print(f"  {name:28s} {v['precision']:6.3f} {v['recall']:6.3f} {v['f1']:6.3f} "
              f"{v['support']:4d}")
    if args.output:
        print(f"\nreport written to {args.output}")
    _print_skipped([type("S", (), s) for s in report["skipped"]])
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_model

    out = export_model(args.run, args.output, quantize=args.quantize)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {args.quantize}) and "
          f"{out.with_name('labels.txt')}")
    if args.quantize != "none" and not args.no_check:
        from .export import agreement_with_float32

        check = agreement_with_float32(args.run, out)
        print(f"top-1 agreement with float32 on {check['windows']} held-out windows: "
              f"{check['top1_agreement']:.1%} (largest score difference "
              f"{check['max_abs_difference']:.3f})")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .predict_cli import run_predict

    return run_predict(args)


def _cmd_info(args: argparse.Namespace) -> int:
    from .metadata import read_metadata

    info = read_metadata(args.model)
    print(json.dumps({"name": info.name, "version": info.version, "labels": info.labels,
                      "sample_rate": info.sample_rate, "channels": info.channels,
                      "num_samples": info.num_samples, "settings": info.settings}, indent=2))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out_dir, weights=args.weights, seed=args.seed, fast=args.fast)


def _print_skipped(skipped: Sequence) -> None:
    if not skipped:
        return
    print(f"\nskipped {len(skipped)} file(s):", file=sys.stderr)
    for s in skipped[:50]:
        print(f"  {s.path}: {s.reason}", file=sys.stderr)
    if len(skipped) > 50:
        print(f"  ... and {len(skipped) - 50} more (see the report)", file=sys.stderr)


def _features(args: argparse.Namespace):
    from .config import FeatureConfig

    kw = {k: getattr(args, k) for k in ("sample_rate", "clip_seconds", "image_size")
          if getattr(args, k, None) is not None}
    return FeatureConfig(**kw)


# -------------------------------------------------------------------------- parser
def _feature_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sample-rate", type=int, help="model sample rate in Hz (default 32000)")
    p.add_argument("--clip-seconds", type=float, help="window length in s (default 3.0)")
    p.add_argument("--image-size", type=int, help="image side in px (default 224)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="birdsong", description="Bird-song classifiers from folders of recordings: "
        "spectrograms, training, evaluation, TFLite export and prediction.")
    parser.add_argument("--version", action="version", version=f"birdsong {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="the whole job on generated demo data (~10 min on 2 CPUs)")
    p.add_argument("out_dir", nargs="?", default="birdsong-demo", help="default: birdsong-demo")
    p.add_argument("--weights", default="imagenet",
                   help="imagenet (falls back to none when it cannot be downloaded), none, "
                        "or a weights file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fast", action="store_true", help="a much smaller run (a smoke test)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("spectrogram", help="draw one recording's mel spectrogram to a PNG")
    p.add_argument("clip")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--windows", action="store_true",
                   help="also draw the per-window images the model sees")
    p.add_argument("--hop", type=float, help="window hop in s for --windows")
    _feature_options(p)
    p.set_defaults(func=_cmd_spectrogram)

    p = sub.add_parser("spectrograms", help="mirror a species tree of recordings as a "
                                            "species tree of model-image PNGs")
    p.add_argument("data_dir")
    p.add_argument("out_dir")
    p.add_argument("--hop", type=float, help="window hop in s (default: clip length)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _feature_options(p)
    p.set_defaults(func=_cmd_spectrograms)

    p = sub.add_parser("demo-data", help="write a synthetic folder-per-species dataset")
    p.add_argument("out_dir")
    p.add_argument("--species", type=int, default=12, help="number of species (default 12)")
    p.add_argument("--individuals", type=int, help="birds per species (default 3; field 12)")
    p.add_argument("--recordings", type=int, default=3, help="recordings per bird")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each recording")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--difficulty", choices=("demo", "field"), default="demo",
                   help="demo: clean songs; field: noise, reverb, distractors, mixed formats")
    p.set_defaults(func=_cmd_demo_data)

    p = sub.add_parser("train", help="train a classifier on DATA_DIR/<species>/<recordings>")
    p.add_argument("data_dir")
    p.add_argument("-o", "--output", required=True, help="run directory, e.g. runs/NAME")
    p.add_argument("--config", help="a TrainConfig JSON file (options below override it)")
    p.add_argument("--weights", help="imagenet (default), none, or a weights file path")
    p.add_argument("--alpha", type=float, help="MobileNetV2 width (0.35 ... 1.4; default 1.0)")
    p.add_argument("--epochs-frozen", type=int, help="phase 1 epochs (default 10)")
    p.add_argument("--epochs-finetune", type=int, help="phase 2 epochs (default 10)")
    p.add_argument("--fine-tune-from", help="first backbone layer to unfreeze (default auto)")
    p.add_argument("--learning-rate", type=float, help="phase 1 (default 1e-3)")
    p.add_argument("--finetune-learning-rate", type=float, help="phase 2 (default 1e-5)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--validation-fraction", type=float)
    p.add_argument("--validation-dir", help="a separate species tree for validation")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    p.add_argument("--no-augment", action="store_true", help="switch augmentation off")
    p.add_argument("--mixup", type=float, help="mixup alpha (0 = off)")
    p.add_argument("--seed", type=int)
    p.add_argument("--strategy", default="default", choices=["default", "mirrored"])
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    _feature_options(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="metrics of a model on a labelled species tree")
    p.add_argument("model", help="run directory, .keras or .tflite")
    p.add_argument("data_dir")
    p.add_argument("-o", "--output", help="folder for report.json/.md, confusion matrices")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("export", help="export a run to a self-describing .tflite")
    p.add_argument("run", help="run directory from `birdsong train`")
    p.add_argument("-o", "--output", required=True, help="e.g. birds.tflite")
    p.add_argument("--quantize", default="none", choices=["none", "float16", "dynamic", "int8"])
    p.add_argument("--no-check", action="store_true",
                   help="skip comparing a quantized variant with float32")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("predict", help="classify recordings with a .tflite model")
    p.add_argument("paths", nargs="+", help="audio files or folders (searched recursively)")
    p.add_argument("--model", help="a .tflite (default: $BIRDSONG_MODEL, else the latest "
                                   "model trained or exported here)")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--min-score", type=float, default=0.5, help="detection threshold")
    p.add_argument("--overlap", type=float, default=0.0, help="window overlap in s")
    p.add_argument("--format", default="table", choices=["table", "json", "csv", "raven"])
    p.add_argument("-o", "--output", help="write results to this file instead of stdout")
    p.add_argument("--shard", help="I/N: process only shard I (0-based) of N of the file list")
    p.add_argument("--threads", type=int, help="interpreter threads")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("info", help="show the metadata inside a .tflite model")
    p.add_argument("model")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return int(args.func(args) or 0)
    except FileNotFoundError as exc:
        print(f"birdsong: error: {exc}", file=sys.stderr)
        return 2
    except BirdsongError as exc:
        print(f"birdsong: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("birdsong: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
