"""Which phase-1 head? Compare heads on cached frozen-backbone window features (issue 9).

Extracts, once per seed and image size, the pooled MobileNetV2 features of the library's
windows (``pipeline.make_dataset``, no augmentation) for the training, validation (the
library's own split) and held-out test recordings of the synthetic field set, caches them,
then fits several heads on the training windows and scores each per recording on the
held-out birds with the library's rule (mean of window probabilities). Also fits the
recording-level probe (mean + max of window features, logistic regression) on the same
features, so the comparison is exact.

    .venv/bin/python benchmarks/head_lab.py --seeds 0 1 2 --image-size 128
    .venv/bin/python benchmarks/head_lab.py --seeds 0 --per-species 1   # N birds per species
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from accuracy import CACHE, WEIGHTS, scores, synthetic_set


def _features(seed: int, image_size: int, max_windows: int) -> dict:
    out = CACHE / "headlab" / f"s{seed}-px{image_size}-w{max_windows}.npz"
    if out.exists():
        return dict(np.load(out, allow_pickle=True))
    from birdsong.config import FeatureConfig, TrainConfig, WindowRules
    from birdsong.dataset import index_dataset, split_recordings
    from birdsong.model import build_model, feature_extractor
    from birdsong.pipeline import SkipLog, make_dataset

    train_dir, test_dir = synthetic_set(
        seed, species=12, individuals=12, recordings=3, test_individuals=3
    )
    cfg = TrainConfig(
        features=FeatureConfig(image_size=image_size),
        weights=str(WEIGHTS),
        windows=WindowRules(max_windows=max_windows),
        seed=seed,
    )
    index = index_dataset(train_dir, group_pattern=cfg.group_pattern)
    tr, va = split_recordings(index, validation_fraction=cfg.validation_fraction, seed=seed)
    te = index_dataset(test_dir, group_pattern=cfg.group_pattern, labels=index.labels)
    extract = feature_extractor(build_model(list(index.labels), cfg))
    arrays: dict[str, np.ndarray] = {"labels": np.asarray(index.labels)}
    for name, idx in (("train", tr), ("val", va), ("test", te)):
        xs, ys, rs = [], [], []
        for x, y, rid in make_dataset(idx, cfg, training=False, skips=SkipLog(), with_ids=True):
            xs.append(np.asarray(extract(x, training=False)))
            ys.append(np.asarray(y))
            rs.append(np.asarray(rid))
        arrays[f"x_{name}"] = np.concatenate(xs)
        arrays[f"y_{name}"] = np.concatenate(ys)
        arrays[f"r_{name}"] = np.concatenate(rs)
        arrays[f"g_{name}"] = np.asarray([r.group for r in idx.recordings])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    return arrays


def _per_recording(prob: np.ndarray, rid: np.ndarray, y: np.ndarray) -> tuple[list, list]:
    """Each recording's label by the library's own rule (``rules.aggregate``)."""
    from birdsong.config import WindowRules
    from birdsong.rules import aggregate

    true, pred = [], []
    for r in np.unique(rid):
        m = rid == r
        true.append(int(y[m][0].argmax()))
        pred.append(int(aggregate(prob[m], WindowRules()).argmax()))
    return true, pred


def _keras_head(
    d, *, epochs, lr, dropout, l2, normalise, smoothing, patience, seed, wd=0.0, monitor="val_loss"
):
    import keras

    keras.utils.set_random_seed(seed)
    x, y = d["x_train"], d["y_train"]
    n = y.shape[1]
    inp = keras.Input(x.shape[1:])
    h = inp
    if normalise:
        norm = keras.layers.Normalization()
        norm.adapt(x)
        h = norm(h)
    h = keras.layers.Dropout(dropout)(h)
    out = keras.layers.Dense(
        n, activation="softmax", kernel_regularizer=keras.regularizers.l2(l2) if l2 else None
    )(h)
    m = keras.Model(inp, out)
    opt = keras.optimizers.AdamW(lr, weight_decay=wd) if wd else keras.optimizers.Adam(lr)
    m.compile(
        opt,
        keras.losses.CategoricalCrossentropy(label_smoothing=smoothing),
        metrics=["accuracy"],
    )
    cb = []
    if patience:
        cb = [
            keras.callbacks.EarlyStopping("val_loss", patience=patience, restore_best_weights=True)
        ]
    h = m.fit(
        x,
        y,
        batch_size=32,
        epochs=epochs,
        validation_data=(d["x_val"], d["y_val"]),
        verbose=0,
        callbacks=cb,
    )
    return m.predict(d["x_test"], verbose=0), len(h.history["loss"])


def _window_lr(d, seed, C=1.0):
    """sklearn logistic regression on standardised window features, mean of probabilities."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))
    clf.fit(d["x_train"], d["y_train"].argmax(1))
    return _per_recording(clf.predict_proba(d["x_test"]), d["r_test"], d["y_test"])


def _probe(d, seed, with_val=True):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def pooled(x, r, y):
        feats, labs = [], []
        for i in np.unique(r):
            m = r == i
            feats.append(np.concatenate([x[m].mean(0), x[m].max(0)]))
            labs.append(int(y[m][0].argmax()))
        return np.asarray(feats), labs

    if with_val:
        xtr, ytr = pooled(
            np.concatenate([d["x_train"], d["x_val"]]),
            np.concatenate([d["r_train"], d["r_val"] + 100000]),
            np.concatenate([d["y_train"], d["y_val"]]),
        )
    else:
        xtr, ytr = pooled(d["x_train"], d["r_train"], d["y_train"])
    xte, yte = pooled(d["x_test"], d["r_test"], d["y_test"])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))
    clf.fit(xtr, ytr)
    return yte, list(clf.predict(xte))


def _subsample(d: dict, per_species: int, seed: int) -> dict:
    """Keep ``per_species`` training groups (birds) per species."""
    rng = np.random.default_rng(seed)
    d = dict(d)
    ytr, rtr, g = d["y_train"], d["r_train"], d["g_train"]
    keep_r = set()
    species_of = {int(r): int(ytr[rtr == r][0].argmax()) for r in np.unique(rtr)}
    for s in range(ytr.shape[1]):
        recs = [r for r, sp in species_of.items() if sp == s]
        groups = sorted({g[r] for r in recs})
        chosen = set(rng.choice(groups, size=min(per_species, len(groups)), replace=False))
        keep_r |= {r for r in recs if g[r] in chosen}
    m = np.isin(rtr, sorted(keep_r))
    for k in ("x_train", "y_train", "r_train"):
        d[k] = d[k][m]
    return d


HEADS = {
    "library (Adam 1e-3, 10 ep, dropout 0.2)": dict(
        epochs=10, lr=1e-3, dropout=0.2, l2=0, normalise=False, smoothing=0, patience=0
    ),
    "converged (200 ep, patience 10)": dict(
        epochs=200, lr=1e-3, dropout=0.2, l2=0, normalise=False, smoothing=0, patience=10
    ),
    "norm + converged": dict(
        epochs=200, lr=1e-3, dropout=0.2, l2=0, normalise=True, smoothing=0, patience=10
    ),
    "norm + dropout 0.5 + converged": dict(
        epochs=200, lr=1e-3, dropout=0.5, l2=0, normalise=True, smoothing=0, patience=10
    ),
    "norm + l2 1e-3 + smoothing 0.1": dict(
        epochs=200, lr=1e-3, dropout=0.2, l2=1e-3, normalise=True, smoothing=0.1, patience=10
    ),
    "fixed 100 epochs, no early stopping": dict(
        epochs=100, lr=1e-3, dropout=0.2, l2=0, normalise=False, smoothing=0, patience=0
    ),
    "norm + l2 1e-4, fixed 100 epochs": dict(
        epochs=100, lr=1e-3, dropout=0.0, l2=1e-4, normalise=True, smoothing=0, patience=0
    ),
    "converged on val_accuracy (patience 10)": dict(
        epochs=200,
        lr=1e-3,
        dropout=0.2,
        l2=0,
        normalise=False,
        smoothing=0,
        patience=10,
        monitor="val_accuracy",
    ),
    "patience 20 on val_loss": dict(
        epochs=200, lr=1e-3, dropout=0.2, l2=0, normalise=False, smoothing=0, patience=20
    ),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--max-windows", type=int, default=20)
    ap.add_argument("--per-species", type=int, default=0, help="training birds per species")
    ap.add_argument("--heads", nargs="+", default=list(HEADS))
    ap.add_argument("--window-lr", nargs="*", type=float, default=[1.0, 0.01])
    ap.add_argument("--out")
    args = ap.parse_args()
    rows: dict[str, list] = {}
    for seed in args.seeds:
        d = _features(seed, args.image_size, args.max_windows)
        if args.per_species:
            d = _subsample(d, args.per_species, seed)
        labels = list(range(d["y_train"].shape[1]))
        t, p = _probe(d, seed)
        rows.setdefault("probe (rec mean+max, LR)", []).append(scores(t, p, labels)["top1"])
        t, p = _probe(d, seed, with_val=False)
        rows.setdefault("probe, training birds only", []).append(scores(t, p, labels)["top1"])
        for C in args.window_lr:
            t, p = _window_lr(d, seed, C)
            rows.setdefault(f"window LR C={C:g}, mean prob", []).append(
                scores(t, p, labels)["top1"]
            )
        for name in args.heads:
            t0 = time.perf_counter()
            prob, ep = _keras_head(d, seed=seed, **HEADS[name])
            t, p = _per_recording(prob, d["r_test"], d["y_test"])
            acc = scores(t, p, labels)["top1"]
            rows.setdefault(name, []).append(acc)
            print(
                f"seed {seed} {name:45s} {acc:.3f} ({ep} epochs, {time.perf_counter() - t0:.0f} s)"
            )
        print(f"seed {seed} {'probe':45s} {rows['probe (rec mean+max, LR)'][-1]:.3f}", flush=True)
    print()
    for name, accs in rows.items():
        print(
            f"{name:45s} {np.mean(accs):.3f} +- {np.std(accs, ddof=1) if len(accs) > 1 else 0:.3f}  {accs}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
