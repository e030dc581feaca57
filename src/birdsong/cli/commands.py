"""The ``birdsong`` commands: each takes the parsed arguments and returns an exit status.

Heavy modules are imported inside each command, so ``--help``, ``predict`` and ``info``
stay light and the training commands check their arguments before TensorFlow loads.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .._io import printable
from ..errors import BirdsongError

EXIT_OK, EXIT_FAILED_INPUTS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _cmd_spectrogram(args: argparse.Namespace) -> int:
    from .._io import check_output_file
    from ..images import render_recording

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
    from ..spectrograms import mirror_tree

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
    from ..synth import write_demo_dataset

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
    from ..config import (
        SCHEDULE_FIELDS,
        AugmentConfig,
        FeatureConfig,
        TrainConfig,
        from_dict,
        load_config,
        to_dict,
    )

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
        data["windows"]["hop_seconds"] = None  # a quarter of the new window
        data["train_hop_seconds"] = None  # half of it
    if args.hop_seconds is not None:
        data["windows"]["hop_seconds"] = args.hop_seconds
    if args.train_hop_seconds is not None:
        data["train_hop_seconds"] = args.train_hop_seconds
    for key in (
        "alpha",
        "weights",
        "epochs_frozen",
        "frozen_patience",
        "epochs_finetune",
        "batch_size",
        "seed",
        "fine_tune_from",
        "learning_rate",
        "finetune_learning_rate",
        "finetune_schedule",
        "finetune_average_epochs",
        "min_epoch_windows",
        "validation_fraction",
        "validation_min_groups",
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
        for key in SCHEDULE_FIELDS:
            if getattr(args, key) is None:
                data[key] = None
    if args.multi_label:
        data["multi_label"] = True
    if not args.config:
        data["augment"]["overlay_probability"] = None  # follows multi_label (TrainConfig)
    if args.no_augment:
        data["augment"] = to_dict(AugmentConfig.off())
    if args.mixup is not None:
        data["augment"]["mixup_alpha"] = args.mixup
    if args.overlay is not None:
        data["augment"]["overlay_probability"] = args.overlay
    return from_dict(TrainConfig, data | {"features": from_dict(FeatureConfig, feats)})


def _cmd_train(args: argparse.Namespace) -> int:
    from ..training import check_training_inputs
    from ..workflow import train

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
        print(
            "no validation recordings (validation fraction 0, or fewer birds per species "
            "than --validation-min-groups): nothing was held out to measure accuracy; "
            "measure on new recordings with birdsong evaluate"
        )
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
    from .._io import check_output_dir
    from ..evaluation import evaluate

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
    from .._io import check_output_file
    from ..exporting import export_model

    run = Path(args.run)
    inputs = [p for p in run.iterdir() if p.is_file()] if run.is_dir() else [run]
    check_output_file(args.output, inputs=inputs, name="--output")  # before converting

    from ..metadata import read_metadata

    out = export_model(args.run, args.output, quantize=args.quantize, int8_recipe=args.int8_recipe)
    settings = read_metadata(out).settings
    recipe = f", recipe {settings['int8_recipe']}" if "int8_recipe" in settings else ""
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {args.quantize}{recipe}) and "
        f"{out.with_name('labels.txt')}"
    )
    ms = _time_model(out)
    if ms is not None:
        print(
            f"speed here: {ms:.1f} ms per window (median; speed of quantized variants "
            "depends on the device: measure on yours)"
        )
    check = settings.get("agreement_with_float32")
    if check:
        print(
            f"top-1 agreement with float32 on {check['windows']} held-out windows: "
            f"{check['top1_agreement']:.1%} (largest score difference "
            f"{check['max_abs_difference']:.3f})"
        )
        if check["top1_agreement"] < 0.99:
            print(
                "WARNING: under 99 % agreement: this variant changes answers; ship the "
                "float32 or float16 export unless you have measured it on your own data"
            )
    elif args.quantize != "none":
        print("no validation windows in the run: agreement with float32 not measured")
    return EXIT_OK


def _time_model(path) -> float | None:
    """Median milliseconds per window of an exported model on this machine."""
    import time

    import numpy as np

    from ..inference import Classifier

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
    from .predict import run_predict

    return run_predict(args)


def _cmd_info(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..metadata import read_metadata

    path = Path(args.model)
    if path.is_dir():
        path = path / "model.tflite"
        if not path.exists():
            from ..errors import ModelError

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
    kind = "one sigmoid per species (multi-label)" if s.get("output") == "sigmoid" else "softmax"
    print(f"  output:       {len(info.labels)} species scores, {kind}")
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
        agree = s.get("agreement_with_float32") or {}
        extra = (f" ({s['int8_recipe']})" if "int8_recipe" in s else "") + (
            f", top-1 agreement with float32 {agree['top1_agreement']:.1%} on "
            f"{agree['windows']} held-out windows"
            if "top1_agreement" in agree
            else ""
        )
        print(f"  quantization: {s['quantization']}{extra}")
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
    from ..demo import run_demo

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
    from ..config import FeatureConfig

    kw = {
        k: getattr(args, k)
        for k in ("sample_rate", "clip_seconds", "image_size")
        if getattr(args, k, None) is not None
    }
    return FeatureConfig(**kw)
