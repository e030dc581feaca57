"""The ``birdsong`` command line.

Silent library, talkative CLI: a dataset summary, phase names and progress bars on
stderr, results on stdout (a table a person can read, or JSON/CSV for machines).
``birdsong --help``, ``predict`` and ``info`` never import TensorFlow; the training
commands check their arguments and data first and import it only when they train.

Exit codes: 0 success; 1 some inputs failed or nothing was found to work on; 2 a bad
option, file or dataset (one line on stderr saying which and why); 130 interrupted.
Without ``-v`` the start-up chatter of TensorFlow, absl and LiteRT is suppressed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from ._io import printable
from ._version import __version__
from .errors import BirdsongError

log = logging.getLogger("birdsong")

EXIT_OK, EXIT_FAILED_INPUTS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: Python parameter -> the option that sets it on the command line (errors raised by the
#: library are re-phrased with these, so the message names what the user typed).
OPTION_NAMES = {
    "output_dir": "-o/--output",
    "output": "-o/--output",
    "out_dir": "-o/--output",
    "model": "--model",
    "min_score": "--min-score",
    "top_k": "--top-k",
    "overlap": "--overlap",
    "hop_seconds": "--hop-seconds",
    "num_threads": "--threads",
    "resume": "--resume",
    "strategy": "--strategy",
    "weights": "--weights",
    "windows.hop_seconds": "--hop-seconds",
    "validation_dir": "--validation-dir",
}


# ----------------------------------------------------------------------- commands
def _cmd_spectrogram(args: argparse.Namespace) -> int:
    from ._io import check_output_file
    from .images import render_recording

    check_output_file(args.output, inputs=[args.clip], name="--output")
    out = render_recording(
        args.clip,
        args.output,
        config=_features(args),
        windows=args.windows,
        hop_seconds=args.hop_seconds,
        start_seconds=args.start,
        max_seconds=args.duration,
    )
    print(f"wrote {printable(out)}")
    return EXIT_OK


def _cmd_spectrograms(args: argparse.Namespace) -> int:
    from .spectrograms import mirror_tree

    summary = mirror_tree(
        args.data_dir,
        args.out_dir,
        config=_features(args),
        hop_seconds=args.hop_seconds,
        progress=not args.quiet,
    )
    print(
        f"wrote {summary.images} image(s) for {summary.recordings} recording(s) into {args.out_dir}"
    )
    _print_skipped(summary.skipped)
    return EXIT_OK if summary.recordings else EXIT_FAILED_INPUTS


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from .synth import write_demo_dataset

    s = write_demo_dataset(
        args.out_dir,
        species=args.species,
        seed=args.seed,
        individuals=args.individuals,
        recordings_per_individual=args.recordings,
        duration_seconds=args.seconds,
        difficulty=args.difficulty,
    )
    print(
        f"wrote {s.files} recordings ({s.seconds / 60:.1f} min) of {len(s.species)} "
        f"species into {s.root}"
    )
    return EXIT_OK


def _train_config(args: argparse.Namespace):
    from .config import AugmentConfig, FeatureConfig, TrainConfig, from_dict, load_config, to_dict

    base = load_config(TrainConfig, args.config) if args.config else TrainConfig()
    data = to_dict(base)
    feats = data["features"]
    for key, value in (
        ("image_size", args.image_size),
        ("clip_seconds", args.clip_seconds),
        ("sample_rate", args.sample_rate),
    ):
        if value is not None:
            feats[key] = value
    if args.sample_rate is not None and (feats.get("fmax") or 0) > args.sample_rate / 2:
        feats["fmax"] = None  # min(15 kHz, the new Nyquist frequency)
    if args.clip_seconds is not None and not args.config:
        data["windows"]["hop_seconds"] = None  # half of the new window
    if args.hop_seconds is not None:
        data["windows"]["hop_seconds"] = args.hop_seconds
    for key in (
        "alpha",
        "weights",
        "epochs_frozen",
        "epochs_finetune",
        "batch_size",
        "seed",
        "fine_tune_from",
        "learning_rate",
        "finetune_learning_rate",
        "validation_fraction",
        "patience",
        "group_pattern",
        "label_smoothing",
        "target_precision",
    ):
        value = getattr(args, key)
        if value is not None:
            data[key] = value
    if args.weights is not None and not args.config:
        # a schedule left to the defaults follows the weights (see TrainConfig)
        for key in ("epochs_frozen", "epochs_finetune", "finetune_learning_rate", "patience"):
            if getattr(args, key) is None:
                data[key] = None
    if args.multi_label:
        data["multi_label"] = True
    if args.no_augment:
        data["augment"] = to_dict(AugmentConfig.off())
    if args.mixup is not None:
        data["augment"]["mixup_alpha"] = args.mixup
    return from_dict(TrainConfig, data | {"features": from_dict(FeatureConfig, feats)})


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import check_training_inputs
    from .workflow import train

    check_training_inputs(
        args.data_dir,
        args.output,
        resume=args.resume,
        strategy=args.strategy,
        validation_dir=args.validation_dir,
    )
    config = None if args.resume and not args.config else _train_config(args)
    if config is not None and not config.pretrained:
        print(
            f"no pretrained weights: training from scratch with the from-scratch "
            f"schedule ({config.epochs_frozen} frozen + up to {config.epochs_finetune} "
            f"epochs at {config.finetune_learning_rate:g}, patience {config.patience})",
            file=sys.stderr,
        )
    try:
        result = train(
            args.data_dir,
            args.output,
            config=config,
            resume=args.resume,
            strategy=args.strategy,
            validation_dir=args.validation_dir,
            annotations=args.annotations,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print(
            f"\nbirdsong: interrupted. Continue with: birdsong train {args.data_dir} "
            f"-o {args.output} --resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    _print_skipped(result.skipped)
    run = result.run_dir
    print(
        f"\ntrained in {result.seconds / 60:.1f} min"
        + "".join(f"; {k} {v:.0f} s" for k, v in result.phase_seconds.items())
    )
    if result.report:
        rec, win = result.report["per_recording"], result.report["per_window"]
        print(
            f"validation (held-out recordings): per recording top-1 "
            f"{rec['top1_accuracy']:.3f} (n={rec['n']}, chance {rec['chance_accuracy']:.3f}), "
            f"macro-F1 {rec['macro_f1']:.3f}; per window top-1 {win['top1_accuracy']:.3f} "
            f"(n={win['n']})"
        )
        if result.collapsed:
            print(
                "WARNING: the model gives the same output for every validation window: "
                "it has learnt nothing (see the report)."
            )
    else:
        print("no validation recordings: nothing was held out to measure accuracy")
    print(
        f"run directory: {run}  (model.keras, config.json, history, learning_curves.png, report/)"
    )
    if result.report:
        print(f"report:        {run / 'report' / 'report.md'}")
    if result.tflite_path:
        print(f"model:         {result.tflite_path}")
    print(
        f"next:          birdsong evaluate {run} TEST_DIR   |   birdsong predict CLIPS "
        f"--model {result.tflite_path or run}"
    )
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ._io import check_output_dir
    from .evaluation import evaluate

    if args.output:  # before the work, not after it
        check_output_dir(args.output, inputs=[args.data_dir], name="--output")
    report = evaluate(
        args.model,
        args.data_dir,
        output_dir=args.output,
        min_score=args.min_score,
        min_overlap=args.min_overlap,
        species_column=args.species_column,
        progress=not (args.json or args.quiet),
    )
    if report.get("kind") == "soundscapes":
        return _print_soundscape_report(report, args)
    if args.json:
        print(
            json.dumps(
                {k: report[k] for k in ("per_recording", "per_window", "collapsed", "skipped")}
            )
        )
        return EXIT_OK
    for level in ("per_recording", "per_window"):
        m = report[level]
        top3 = f"  top-3 {m['top3_accuracy']:.3f}" if "top3_accuracy" in m else ""
        print(
            f"{level.replace('_', ' ')} (n={m['n']}): top-1 {m['top1_accuracy']:.3f}"
            f"{top3}  macro-F1 {m['macro_f1']:.3f}  macro ROC-AUC "
            f"{m['macro_roc_auc']:.3f}  (chance {m['chance_accuracy']:.3f})"
        )
    if report.get("collapsed"):
        print("WARNING: the model gives the same output for every window: it has learnt nothing.")
    print("\nper species (per recording):")
    print(f"  {'species':28s} {'prec':>6s} {'recall':>6s} {'F1':>6s} {'n':>4s}")
    for name, v in report["per_recording"]["per_species"].items():
        print(
            f"  {printable(name, newlines=False):28s} {v['precision']:6.3f} "
            f"{v['recall']:6.3f} {v['f1']:6.3f} {v['support']:4d}"
        )
    if args.output:
        print(f"\nreport written to {args.output}")
    _print_skipped([_Skip(s["path"], s["reason"]) for s in report["skipped"]])
    return EXIT_OK


def _print_soundscape_report(report: dict, args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "pr_curves"}))
        return EXIT_OK
    wm, em = report["window_metrics"], report["event_metrics"]

    def num(v):
        return "  n/a" if v is None else f"{v:5.3f}"

    print(f"soundscapes: {report['recordings']} annotated recording(s), {wm['n_windows']} windows")
    print(f"per window: cmAP {num(wm['cmap'])}  macro ROC-AUC {num(wm['macro_roc_auc'])}")
    o = em["overall"]
    print(
        f"events (selections covered >= {em['min_overlap']:g}): precision "
        f"{num(o['precision'])}  recall {num(o['recall'])}  F1 {num(o['f1'])}"
    )
    print(
        f"\n  {'species':28s} {'AP':>5s} {'thresh':>6s} {'found':>5s} {'false':>5s} "
        f"{'missed':>6s} {'F1':>5s}"
    )
    for label in report["labels"]:
        e, w = em["per_species"][label], wm["per_species"][label]
        print(
            f"  {printable(label):28s} {num(w['ap'])} {report['thresholds'][label]:6.3f} "
            f"{e['tp']:5d} {e['fp']:5d} {e['fn']:6d} {num(e['f1'])}"
        )
    if args.output:
        print(f"\nreport written to {args.output}")
    _print_skipped([_Skip(s["path"], s["reason"]) for s in report["skipped"]])
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from ._io import check_output_file
    from .exporting import export_model

    run = Path(args.run)
    inputs = [p for p in run.iterdir() if p.is_file()] if run.is_dir() else [run]
    check_output_file(args.output, inputs=inputs, name="--output")  # before converting

    out = export_model(args.run, args.output, quantize=args.quantize)
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {args.quantize}) and "
        f"{out.with_name('labels.txt')}"
    )
    ms = _time_model(out)
    if ms is not None:
        print(
            f"speed here: {ms:.1f} ms per window (median; speed of quantized variants "
            "depends on the device: measure on yours)"
        )
    if args.quantize != "none" and not args.no_check:
        from .exporting import agreement_with_float32

        check = agreement_with_float32(args.run, out)
        print(
            f"top-1 agreement with float32 on {check['windows']} held-out windows: "
            f"{check['top1_agreement']:.1%} (largest score difference "
            f"{check['max_abs_difference']:.3f})"
        )
    return EXIT_OK


def _time_model(path) -> float | None:
    """Median milliseconds per window of an exported model on this machine."""
    import time

    import numpy as np

    from .inference import Classifier

    try:
        clf = Classifier(path)
    except BirdsongError:
        return None
    x = np.random.default_rng(0).standard_normal((1, clf.features.num_samples))
    x = (0.1 * x).astype(np.float32)
    clf.predict_windows(x)
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        clf.predict_windows(x)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def _cmd_predict(args: argparse.Namespace) -> int:
    from .predict_cli import run_predict

    return run_predict(args)


def _cmd_info(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .metadata import read_metadata

    path = Path(args.model)
    if path.is_dir():
        path = path / "model.tflite"
        if not path.exists():
            from .errors import ModelError

            raise ModelError(
                f"{args.model}: a folder without model.tflite (export the run "
                f"first: birdsong export {args.model} -o birds.tflite)"
            )
    info = read_metadata(path)
    doc = {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "name": info.name,
        "version": info.version,
        "labels": list(info.labels),
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "num_samples": info.num_samples,
        "settings": info.settings,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    s = info.settings if isinstance(info.settings, dict) else {}
    features = s.get("features") or (s.get("train") or {}).get("features") or {}
    windows = s.get("windows") or {}
    print(f"{printable(info.name or path.name)}  ({path}, {doc['size_bytes'] / 1e6:.2f} MB)")
    print(
        f"  input:        {info.num_samples / info.sample_rate:g} s of mono float32 audio "
        f"at {info.sample_rate} Hz ({info.num_samples} samples)"
    )
    print(f"  output:       {len(info.labels)} species scores")
    if features:
        print(
            f"  spectrogram:  {features.get('n_mels')} mel bands "
            f"{features.get('fmin'):g}-{features.get('fmax'):g} Hz, "
            f"{features.get('image_size')} px images"
        )
    if windows:
        print(
            f"  windows:      every {windows.get('hop_seconds')} s; a recording's answer is "
            f"the {windows.get('aggregation')} of up to {windows.get('max_windows')} "
            f"windows with activity >= {windows.get('min_activity')}"
        )
    if "quantization" in s:
        print(f"  quantization: {s['quantization']}")
    if s.get("birdsong_version"):
        print(f"  made by:      birdsong {s['birdsong_version']}")
    thresholds = s.get("thresholds")
    print("  species:")
    for i, label in enumerate(info.labels):
        extra = ""
        if isinstance(thresholds, dict) and label in thresholds:
            extra = f"  (threshold {thresholds[label]})"
        print(f"    {i:3d}  {printable(label)}{extra}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(
        args.out_dir, weights=args.weights, seed=args.seed, fast=args.fast, restart=args.restart
    )


class _Skip:
    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason


def _print_skipped(skipped: Sequence) -> None:
    if not skipped:
        return
    print(f"\nskipped {len(skipped)} file(s) or folder(s):", file=sys.stderr)
    for s in skipped[:50]:
        print(f"  {printable(s.path)}: {printable(s.reason)}", file=sys.stderr)
    if len(skipped) > 50:
        print(f"  ... and {len(skipped) - 50} more (see the report)", file=sys.stderr)


def _features(args: argparse.Namespace):
    from .config import FeatureConfig

    kw = {
        k: getattr(args, k)
        for k in ("sample_rate", "clip_seconds", "image_size")
        if getattr(args, k, None) is not None
    }
    return FeatureConfig(**kw)


# -------------------------------------------------------------------------- parser
def _feature_options(p: argparse.ArgumentParser) -> None:
    from .config import FeatureConfig

    d = FeatureConfig()
    p.add_argument(
        "--sample-rate", type=int, help=f"model sample rate in Hz (default {d.sample_rate})"
    )
    p.add_argument(
        "--clip-seconds", type=float, help=f"window length in s (default {d.clip_seconds:g})"
    )
    p.add_argument("--image-size", type=int, help=f"image side in px (default {d.image_size})")


def _hop_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--hop-seconds",
        "--hop",
        dest="hop_seconds",
        type=float,
        help=f"window hop in s ({what}); --hop is the old name",
    )


def build_parser() -> argparse.ArgumentParser:
    from .config import TrainConfig

    d = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="birdsong",
        description="Bird-song classifiers from folders of recordings: "
        "spectrograms, training, evaluation, TFLite export and prediction.",
        epilog="Exit codes: 0 success; 1 some inputs failed or none were found; 2 a bad "
        "option, file or dataset; 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"birdsong {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log details, including TensorFlow's and LiteRT's own messages",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="the whole job on generated demo data (minutes on 2 "
        "CPUs; see the README for measured times)",
    )
    p.add_argument("out_dir", nargs="?", default="birdsong-demo", help="default: birdsong-demo")
    p.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet (falls back to none when it cannot be downloaded), none, or a weights file",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fast", action="store_true", help="a much smaller run (a smoke test)")
    p.add_argument(
        "--restart",
        action="store_true",
        help="start again from scratch (default: reuse the data and continue an interrupted run)",
    )
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("spectrogram", help="draw one recording's mel spectrogram to a PNG")
    p.add_argument("clip")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument(
        "--windows", action="store_true", help="also draw the per-window images the model sees"
    )
    _hop_option(p, "for --windows; default: the window length")
    p.add_argument("--start", type=float, default=0.0, help="first second to draw (default 0)")
    p.add_argument(
        "--duration",
        type=float,
        default=600.0,
        help="seconds to draw (default 600; a longer file is cut, and says so)",
    )
    _feature_options(p)
    p.set_defaults(func=_cmd_spectrogram)

    p = sub.add_parser(
        "spectrograms",
        help="mirror a species tree of recordings as a species tree of model-image PNGs",
    )
    p.add_argument("data_dir")
    p.add_argument("out_dir")
    _hop_option(p, "default: the window length")
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
    p.add_argument(
        "--difficulty",
        choices=("demo", "field"),
        default="demo",
        help="demo: clean songs; field: noise, reverb, distractors, mixed formats",
    )
    p.set_defaults(func=_cmd_demo_data)

    p = sub.add_parser("train", help="train a classifier on DATA_DIR/<species>/<recordings>")
    p.add_argument("data_dir")
    p.add_argument("-o", "--output", required=True, help="run directory, e.g. runs/NAME")
    p.add_argument("--config", help="a TrainConfig JSON file (options below override it)")
    p.add_argument(
        "--weights",
        help="imagenet (default), none (from scratch, with the "
        "from-scratch schedule), or a weights file path",
    )
    p.add_argument(
        "--alpha", type=float, help=f"MobileNetV2 width (0.35 ... 1.4; default {d.alpha:g})"
    )
    p.add_argument(
        "--epochs-frozen", type=int, help="phase 1 epochs (default: 10 pretrained, 0 from scratch)"
    )
    p.add_argument(
        "--epochs-finetune",
        type=int,
        help="phase 2 epochs (default: 10 pretrained, 60 from scratch)",
    )
    p.add_argument("--fine-tune-from", help="first backbone layer to unfreeze (default auto)")
    p.add_argument("--learning-rate", type=float, help=f"phase 1 (default {d.learning_rate:g})")
    p.add_argument(
        "--finetune-learning-rate",
        type=float,
        help="phase 2 (default: 1e-5 pretrained, 2e-3 from scratch)",
    )
    p.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    p.add_argument("--validation-fraction", type=float, help=f"default {d.validation_fraction:g}")
    p.add_argument("--validation-dir", help="a separate species tree for validation")
    p.add_argument(
        "--annotations",
        help="also learn from this folder of recordings with Raven/Audacity/CSV "
        "tables (several species per recording; needs --multi-label)",
    )
    p.add_argument(
        "--multi-label",
        action="store_true",
        help="one sigmoid per species (several at once; _Background = none) instead of one softmax",
    )
    p.add_argument(
        "--target-precision",
        type=float,
        help="choose each species' detection threshold to reach this precision "
        "on validation (default: the threshold with the best F1)",
    )
    p.add_argument(
        "--group-pattern",
        help="regular expression: files whose names share a match stay on one "
        f"side of the split (default {d.group_pattern!r}: a bird or a "
        "xeno-canto recording)",
    )
    _hop_option(p, "of the windows learnt from and aggregated; default half a window")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    p.add_argument("--label-smoothing", type=float, help="default 0")
    p.add_argument("--no-augment", action="store_true", help="switch augmentation off")
    p.add_argument("--mixup", type=float, help="mixup alpha (0 = off)")
    p.add_argument("--seed", type=int)
    p.add_argument("--strategy", default="default", choices=["default", "mirrored"])
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    _feature_options(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="metrics of a model on a labelled species tree, or "
        "on annotated soundscapes (Raven/Audacity/CSV tables)",
    )
    p.add_argument("model", help="run directory, .keras or .tflite")
    p.add_argument("data_dir", help="a folder per species, or recordings with tables")
    p.add_argument("-o", "--output", help="folder for report.json/.md, confusion matrices")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--min-score",
        type=float,
        help="soundscapes: detection threshold for every species (default: the "
        "model's per-species thresholds)",
    )
    p.add_argument(
        "--min-overlap",
        type=float,
        default=0.5,
        help="soundscapes: share of a selection a detection (or window) must "
        "cover to count (default 0.5)",
    )
    p.add_argument("--species-column", help="Raven tables: the column naming the species")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("export", help="export a run to a self-describing .tflite")
    p.add_argument("run", help="run directory from `birdsong train`")
    p.add_argument("-o", "--output", required=True, help="e.g. birds.tflite")
    p.add_argument("--quantize", default="none", choices=["none", "float16", "dynamic", "int8"])
    p.add_argument(
        "--no-check", action="store_true", help="skip comparing a quantized variant with float32"
    )
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("predict", help="classify recordings with a .tflite model")
    p.add_argument("paths", nargs="+", help="audio files or folders (searched recursively)")
    p.add_argument(
        "--model",
        help="a .tflite or run directory (default: $BIRDSONG_MODEL, "
        "else the latest model trained or exported here)",
    )
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument(
        "--min-score",
        type=float,
        help="detection threshold for every species (default: the per-species "
        "thresholds inside the model, else 0.5)",
    )
    _hop_option(p, "default: the model's rule, half a window")
    p.add_argument(
        "--overlap",
        type=float,
        help="seconds shared by consecutive windows (another way to set the hop: "
        "hop = window - overlap)",
    )
    p.add_argument("--format", default="table", choices=["table", "json", "csv", "raven"])
    p.add_argument(
        "--tables",
        default="combined",
        choices=["combined", "per-recording"],
        help="--format raven: one table for every file (default; -o FILE or "
        "stdout), or one <recording>.birdsong.selections.txt per recording "
        "(-o FOLDER)",
    )
    p.add_argument("-o", "--output", help="write results to this file instead of stdout")
    p.add_argument("--shard", help="I/N: process only shard I (0-based) of N of the file list")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted -o output (csv or json): files already in "
        "it are skipped, the rest appended",
    )
    p.add_argument("--threads", type=int, help="interpreter threads")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("info", help="what a model says about itself (.tflite or run dir)")
    p.add_argument("model")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_info)
    return parser


# ------------------------------------------------------------------------ running
def cli_message(exc: BaseException) -> str:
    """An error's message phrased for the command line: the option a user typed
    (``--min-score``), not the Python parameter (``min_score``)."""
    text = str(exc)
    name = getattr(exc, "parameter", None)
    if name:
        option = OPTION_NAMES.get(name)
        owner = getattr(exc, "owner", None)
        if option is None and owner in (
            "TrainConfig",
            "FeatureConfig",
            "AugmentConfig",
            "WindowRules",
        ):
            option = "--" + name.split(".")[-1].replace("_", "-")
        if option:
            return (
                f"The {option} option must be {exc.requirement}. "  # type: ignore[attr-defined]
                f"Got {exc.value!r} instead."
            )  # type: ignore[attr-defined]
    for python, option in (("resume=True", "--resume"), ("model=", "--model ")):
        text = text.replace(python, option)
    return text


@contextlib.contextmanager
def quiet_native_output(enabled: bool) -> Iterator[None]:
    """Send what C++ libraries write to file descriptor 2 (TensorFlow's, absl's and
    LiteRT's start-up lines) to /dev/null, while Python's ``sys.stderr`` (progress
    bars, warnings, errors) still reaches the terminal."""
    try:
        real = sys.stderr.fileno() == 2  # not when a caller captured sys.stderr
    except (AttributeError, OSError, ValueError):
        real = False
    if not (enabled and real):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no real descriptor 2 (an embedding host): nothing to quiet
        yield
        return
    original = sys.stderr
    try:
        sys.stderr = os.fdopen(
            os.dup(saved),
            "w",
            buffering=1,
            encoding=original.encoding or "utf-8",
            errors="backslashreplace",
        )
        os.dup2(devnull, 2)
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        with contextlib.suppress(Exception):
            sys.stderr.close()
        sys.stderr = original
        os.close(saved)
        os.close(devnull)


def _os_error_text(exc: OSError) -> str:
    """One line for an operating-system condition: what, and on which file."""
    what = exc.strerror or str(exc) or type(exc).__name__
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    return f"{what}: {' -> '.join(map(os.fsdecode, names))}" if names else what


def _quiet_stdout() -> None:
    """After a broken pipe: send what is left in stdout's buffer to /dev/null, so that
    Python's flush at exit does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout replaced (tests) or closed
        pass


def _error(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr gone too: nothing to tell
        print(f"birdsong: error: {printable(text)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``birdsong`` command line; return the exit status.

    Exit status: 0 done; 1 an operating-system condition (permission denied, disk full,
    a folder where a file should be, ...) or every file failed; 2 a bad option, file or
    model; 130 interrupted; 141 the reader of stdout went away (``| head``). Each
    problem is one line on stderr, never a traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    try:
        with quiet_native_output(not args.verbose):
            return int(args.func(args) or 0)
    except FileNotFoundError as exc:
        _error(cli_message(exc) if exc.errno is None else _os_error_text(exc))
        return EXIT_USAGE
    except BirdsongError as exc:
        _error(cli_message(exc))
        return EXIT_USAGE
    except BrokenPipeError:
        _quiet_stdout()
        _error("output closed early (broken pipe)")
        return 141
    except OSError as exc:
        _error(_os_error_text(exc))
        return EXIT_FAILED_INPUTS
    except KeyboardInterrupt:
        print("birdsong: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
