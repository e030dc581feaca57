"""``birdsong demo``: the whole job on generated data, start to finish.

1. write a 12-species synthetic dataset (:mod:`birdsong.synth`);
2. train a small MobileNetV2 classifier (frozen backbone on cached features, then
   fine-tuning), with ImageNet weights when they can be downloaded;
3. evaluate on held-out birds (validation split by individual) and write the report;
4. export a self-describing ``.tflite`` (per-species thresholds inside);
5. predict new clips of birds never heard in training, and a long recording with songs
   at known times, with the LiteRT classifier alone;
6. evaluate it on annotated soundscapes (several species at once, Raven tables): cmAP
   and event precision/recall/F1 per species.

The model is multi-label (one sigmoid per species): the ``_Background`` recordings teach
it that no species is present, and several species can be named in one window.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from .config import AugmentConfig, FeatureConfig, TrainConfig, WindowRules
from .errors import ModelError

__all__ = ["demo_config", "run_demo"]

log = logging.getLogger(__name__)


def demo_config(*, weights: str | None, seed: int = 0, fast: bool = False) -> TrainConfig:
    """The demo's training settings: small and quick on a 2-core CPU.

    Pretrained (the intended use): MobileNetV2 alpha 1.0 at 128 px, 20 head epochs on
    cached features, then 4 fine-tuning epochs. From scratch (``weights=None``, e.g.
    offline): alpha 0.35 at 128 px, no frozen phase (a random backbone's features carry
    nothing to cache), up to 60 epochs of the whole network on more windows per
    recording.
    """
    if fast:
        return TrainConfig(
            features=FeatureConfig(image_size=96),
            alpha=0.35,
            weights=weights,
            seed=seed,
            validation_min_groups=2,  # 3 birds per species; the demo shows its report
            epochs_frozen=3,
            epochs_finetune=1,
            multi_label=True,
            windows=WindowRules(max_windows=4),
            batch_size=32,
        )
    if weights is not None:
        return TrainConfig(
            features=FeatureConfig(image_size=128),
            alpha=1.0,
            weights=weights,
            seed=seed,
            validation_min_groups=2,  # 3 birds per species; the demo shows its report
            epochs_frozen=20,
            epochs_finetune=4,
            finetune_learning_rate=1e-4,
            windows=WindowRules(max_windows=6),
            batch_size=32,
            patience=4,
            multi_label=True,
        )
    # from scratch: TrainConfig's from-scratch schedule, a small network, more windows
    return TrainConfig(
        features=FeatureConfig(image_size=128),
        alpha=0.35,
        weights=None,
        seed=seed,
        validation_min_groups=2,  # 3 birds per species; the demo shows its report
        windows=WindowRules(max_windows=12, hop_seconds=1.0),
        train_hop_seconds=1.0,
        batch_size=32,
        augment=AugmentConfig(freq_masks=0, time_masks=1),
        multi_label=True,
    )


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _write(path: Path, signal: np.ndarray, rate: int) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, signal, rate, subtype="PCM_16")
    return path


def run_demo(
    out_dir: str = "birdsong-demo",
    *,
    weights: str = "imagenet",
    seed: int = 0,
    fast: bool = False,
    restart: bool = False,
) -> int:
    """Run the demo into ``out_dir``. Run again, it reuses the data it wrote and
    continues an interrupted training run (``restart=True`` starts over)."""
    import json
    import shutil

    from . import synth
    from .evaluation import evaluate
    from .images import render_recording
    from .inference import Classifier
    from .rundir import RunDir
    from .soundscapes import write_soundscapes
    from .workflow import train

    started = time.perf_counter()
    out = Path(out_dir)
    data = out / "data"
    run_dir = out / "run"
    species = 4 if fast else 12
    marker = data / ".birdsong-demo.json"
    wanted = {"species": species, "seed": seed, "fast": fast}
    if restart:
        shutil.rmtree(run_dir, ignore_errors=True)
    try:
        have = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        have = None
    rate = FeatureConfig().sample_rate
    if have == wanted and not restart:
        print(f"[1/6] reusing the demo recordings in {data}")
        summary = synth.DemoDatasetSummary(
            root=data,
            species=tuple(
                sorted(p.name for p in data.iterdir() if p.is_dir() and not p.name.startswith("_"))
            ),
            files=0,
            seconds=0.0,
        )
    else:
        if data.exists():
            shutil.rmtree(data)
            shutil.rmtree(run_dir, ignore_errors=True)  # it was trained on other data
        print(f"[1/6] writing demo recordings of {species} species to {data}")
        summary = synth.write_demo_dataset(
            data,
            species=species,
            seed=seed,
            individuals=3,
            recordings_per_individual=2 if fast else 3,
            duration_seconds=6.0 if fast else 8.0,
        )
        for i in range(9):  # a "no bird" class, so that gaps in long recordings stay quiet
            _write(
                data / "_Background" / f"background_{i + 1:02d}.wav",
                synth.background(
                    duration_seconds=6.0 if fast else 8.0, sample_rate=rate, seed=seed * 100 + i
                ),
                rate,
            )
        marker.write_text(json.dumps(wanted) + "\n", encoding="utf-8")
    first = sorted((data / summary.species[0]).iterdir())[0]
    render_recording(first, out / "spectrogram.png", windows=True)

    chosen = None if weights.lower() == "none" else weights
    config = demo_config(weights=chosen, seed=seed, fast=fast)
    resume = RunDir(run_dir).is_run()
    if resume:
        config = RunDir(run_dir).read_config()
        print(f"[2/6] continuing the training run in {run_dir} (--restart starts over)")
    else:
        print(
            f"[2/6] training MobileNetV2 (alpha {config.alpha}, {config.features.image_size} "
            f"px, weights {chosen or 'none'}) into {run_dir}"
        )
    try:
        result = train(
            data, run_dir, config=None if resume else config, resume=resume, progress=True
        )
    except ModelError as exc:
        if chosen != "imagenet" or resume:
            raise
        print(
            f"      ImageNet weights unavailable ({str(exc).splitlines()[0][:160]}...);\n"
            "      training from scratch instead (weights none): expect lower accuracy"
        )
        shutil.rmtree(run_dir, ignore_errors=True)
        config = demo_config(weights=None, seed=seed, fast=fast)
        result = train(data, run_dir, config=config, progress=True)

    rec = result.report["per_recording"] if result.report else None
    print(
        f"[3/6] evaluation on held-out birds: per recording top-1 "
        f"{rec['top1_accuracy']:.3f} (n={rec['n']}), macro-F1 {rec['macro_f1']:.3f}"
        if rec
        else "[3/6] no validation recordings"
    )
    print(f"[4/6] exported {result.tflite_path}")

    clf = Classifier(result.tflite_path)
    print("[5/6] predicting new birds (never heard in training) with LiteRT:")
    correct = 0
    for i, name in enumerate(summary.species):
        clip = synth.recording(
            name, duration_seconds=6.0, sample_rate=rate, individual=100 + i, seed=seed + 1000 + i
        )
        path = _write(out / "new_clips" / f"{name}.wav", clip, rate)
        pred = clf.predict(path)
        correct += pred.label == name
        print(f"      {path.name:34s} -> {pred.label:28s} {pred.score:.2f}")
    print(f"      {correct}/{len(summary.species)} new clips right")

    picks = list(summary.species[:3])
    signal, events = synth.long_recording(
        species=picks, duration_seconds=60.0, sample_rate=rate, seed=seed + 7
    )
    long_path = _write(out / "long_recording.wav", signal, rate)
    pred = clf.predict(long_path, hop_seconds=1.0)
    print(f"      long recording {long_path} (60 s), true songs vs detections:")
    print(
        "        truth:      "
        + ", ".join(f"{e.species} {e.start:.1f}-{e.end:.1f}s" for e in events)
    )
    print(
        "        detections: "
        + (
            ", ".join(
                f"{d.label} {d.start:.1f}-{d.end:.1f}s ({d.score:.2f})" for d in pred.detections
            )
            or "none"
        )
    )
    scapes = out / "soundscapes"
    print(f"[6/6] annotated soundscapes (several species at once, Raven tables) in {scapes}:")
    if not any(scapes.glob("*.txt")):
        write_soundscapes(
            scapes,
            n=2 if fast else 4,
            seconds=60.0,
            species=summary.species[: min(6, len(summary.species))],
            sample_rate=rate,
            seed=seed,
        )
    report = evaluate(result.tflite_path, scapes, output_dir=out / "soundscape_report")
    wm, em = report["window_metrics"], report["event_metrics"]
    print(
        f"      per window cmAP {_fmt(wm['cmap'])}, macro ROC-AUC {_fmt(wm['macro_roc_auc'])}; "
        f"events: precision {_fmt(em['overall']['precision'])}, recall "
        f"{_fmt(em['overall']['recall'])}, F1 {_fmt(em['overall']['f1'])}"
    )
    for label, e in em["per_species"].items():
        if e["tp"] + e["fn"]:
            print(
                f"        {label:28s} event F1 {_fmt(e['f1'])}  ({e['tp']} found, "
                f"{e['fp']} false alarms, {e['fn']} missed)"
            )
    minutes = (time.perf_counter() - started) / 60
    figures = {
        "seed": seed,
        "weights": chosen or "none",
        "fast": fast,
        "minutes": minutes,
        "training_seconds": result.seconds,
        "per_recording_top1": rec["top1_accuracy"] if rec else None,
        "validation_recordings": rec["n"] if rec else 0,
        "new_clips_right": correct,
        "new_clips": len(summary.species),
        "soundscape_cmap": wm["cmap"],
        "soundscape_event_f1": em["overall"]["f1"],
        "soundscape_event_precision": em["overall"]["precision"],
        "soundscape_event_recall": em["overall"]["recall"],
        "event_f1_per_species": {k: v["f1"] for k, v in em["per_species"].items()},
    }
    (out / "demo_summary.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(
        f"\ndone in {minutes:.1f} min. Look at:\n"
        f"  {out / 'spectrogram.png'}  (what the model sees)\n"
        f"  {run_dir / 'learning_curves.png'}\n"
        f"  {run_dir / 'report' / 'report.md'} and confusion_matrix_per_recording.png\n"
        f"  {out / 'soundscape_report' / 'report.md'} and pr_curves.png\n"
        f"  model: {result.tflite_path}  (try: birdsong predict {long_path} --hop-seconds 1)"
    )
    return 0
