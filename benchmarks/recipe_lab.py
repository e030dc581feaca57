"""Prototype of recipe changes that ``TrainConfig`` cannot express yet (issue 9).

One phase instead of two: the whole pretrained backbone (BatchNorm kept in inference
mode, as the library does) and the head train together with AdamW, a linear warm-up then
cosine decay, and label smoothing, on the library's own training pipeline
(``pipeline.make_dataset``: its windows, waveform augmentation, SpecAugment layer). Scored
with ``evaluate.evaluate_index``, the library's per-recording rule, on the held-out birds
of the synthetic field set. Fixed epochs, no validation split (all training birds train).

    .venv/bin/python benchmarks/recipe_lab.py --seed 0 --epochs 4 --lr 3e-4 --image-size 128
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from accuracy import HERE, WEIGHTS, scores, synthetic_set


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--warmup-epochs", type=float, default=0.5)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--max-windows", type=int, default=8)
    ap.add_argument("--fine-tune-from", default="0", help="backbone layer (0: all)")
    args = ap.parse_args()

    import keras
    import tensorflow as tf

    from birdsong.config import FeatureConfig, TrainConfig, WindowRules
    from birdsong.dataset import index_dataset
    from birdsong.evaluation import evaluate_index
    from birdsong.model import build_model, set_fine_tuning
    from birdsong.pipeline import SkipLog, make_dataset

    keras.utils.set_random_seed(args.seed)
    train_dir, test_dir = synthetic_set(
        args.seed, species=12, individuals=12, recordings=3, test_individuals=3
    )
    cfg = TrainConfig(
        features=FeatureConfig(image_size=args.image_size),
        weights=str(WEIGHTS),
        windows=WindowRules(max_windows=args.max_windows),
        seed=args.seed,
    )
    train_idx = index_dataset(train_dir, group_pattern=cfg.group_pattern)
    labels = list(train_idx.labels)
    model = build_model(labels, cfg)
    set_fine_tuning(
        model,
        int(args.fine_tune_from) if args.fine_tune_from.isdigit() else args.fine_tune_from,
        pretrained=True,
    )
    skips = SkipLog()
    ds = make_dataset(train_idx, cfg, training=True, skips=skips)
    t0 = time.perf_counter()
    steps = sum(1 for _ in ds)  # decodes and caches every window once
    total = steps * args.epochs
    warm = max(int(steps * args.warmup_epochs), 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, total - warm, alpha=0.01, warmup_target=args.lr, warmup_steps=warm
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=args.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing),
        metrics=["accuracy"],
    )
    hist = model.fit(ds, epochs=args.epochs, verbose=2)
    seconds = time.perf_counter() - t0
    test_idx = index_dataset(
        test_dir, group_pattern=cfg.group_pattern, labels=labels, min_species=1
    )
    report = evaluate_index(
        lambda x: np.asarray(model(x, training=False)),
        test_idx,
        features=cfg.features,
        rules=cfg.windows,
        labels=labels,
    )
    recs = report["recordings"]
    s = scores([r["label"] for r in recs], [r["predicted"] for r in recs], labels)
    print(
        f"lab seed {args.seed}: top-1 {s['top1']:.3f} macro-F1 {s['macro_f1']:.3f} "
        f"n={len(recs)} train {seconds:.0f} s ({vars(args)})"
    )
    out = HERE / "results" / f"recipe-lab-s{args.seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                **s,
                "train_seconds": seconds,
                "n": len(recs),
                "history": {k: [float(v) for v in vs] for k, vs in hist.history.items()},
                "tf": tf.__version__,
            },
            indent=1,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
